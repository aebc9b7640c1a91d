"""OIP v2 gRPC (`inference.GRPCInferenceService`) and `grpc.health.v1`, run inside the entry worker.

Stubs come from tritonclient's generated `service_pb2` modules, so a tritonclient imported in the
same process shares the one copy of the `inference.*` protobuf symbols.
"""

from __future__ import annotations

import logging

import grpc
import numpy as np
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from tritonclient.grpc import service_pb2, service_pb2_grpc

from serving import oip
from serving.errors import InvalidInput, ServingError

logger = logging.getLogger("ecomgan.oip.grpc")

# InferTensorContents field holding each datatype's typed values.
_CONTENTS_FIELD = {
    "BOOL": "bool_contents",
    "INT8": "int_contents",
    "INT16": "int_contents",
    "INT32": "int_contents",
    "INT64": "int64_contents",
    "UINT8": "uint_contents",
    "UINT16": "uint_contents",
    "UINT32": "uint_contents",
    "UINT64": "uint64_contents",
    "FP32": "fp32_contents",
    "FP64": "fp64_contents",
    "BYTES": "bytes_contents",
}


class InferenceServicer(service_pb2_grpc.GRPCInferenceServiceServicer):
    """OIP RPCs over the entry service's gateway; RPCs not overridden answer UNIMPLEMENTED."""

    def __init__(self, entry) -> None:
        self.entry = entry

    async def _abort(self, context, exc: ServingError):
        await context.abort(exc.grpc_code, exc.message)

    async def ServerLive(self, request, context):
        return service_pb2.ServerLiveResponse(live=self.entry.accepting)

    async def ServerReady(self, request, context):
        return service_pb2.ServerReadyResponse(ready=await self.entry.dependencies_ready())

    async def ModelReady(self, request, context):
        try:
            self.entry.gateway.model(request.name, request.version)
        except ServingError as exc:
            await self._abort(context, exc)
        return service_pb2.ModelReadyResponse(ready=await self.entry.dependencies_ready())

    async def ServerMetadata(self, request, context):
        return service_pb2.ServerMetadataResponse(**oip.server_metadata())

    async def ModelMetadata(self, request, context):
        try:
            served = self.entry.gateway.model(request.name, request.version)
        except ServingError as exc:
            await self._abort(context, exc)
        meta = oip.model_metadata(served)
        tensor = service_pb2.ModelMetadataResponse.TensorMetadata
        return service_pb2.ModelMetadataResponse(
            name=meta["name"],
            versions=meta["versions"],
            platform=meta["platform"],
            inputs=[tensor(**t) for t in meta["inputs"]],
            outputs=[tensor(**t) for t in meta["outputs"]],
        )

    async def ModelInfer(self, request, context):
        try:
            served = self.entry.gateway.model(request.model_name, request.model_version)
            inputs = self._decode(request)
            outputs = await self.entry.gateway.infer(served.name, inputs, served.version)
            requested = [o.name for o in request.outputs]
            chosen = oip.output_arrays(served, outputs, requested)
        except ServingError as exc:
            await self._abort(context, exc)
        response = service_pb2.ModelInferResponse(
            model_name=served.name, model_version=served.version, id=request.id
        )
        for name, arr in chosen:
            response.outputs.add(name=name, datatype=oip.datatype_of(arr), shape=arr.shape)
            response.raw_output_contents.append(oip.raw_bytes(arr))
        return response

    def _decode(self, request) -> dict[str, np.ndarray]:
        raw = request.raw_input_contents
        if raw and len(raw) != len(request.inputs):
            raise InvalidInput(
                f"raw_input_contents has {len(raw)} entries for {len(request.inputs)} inputs; "
                "give one per input or use typed contents"
            )
        limit = self.entry.limits.max_grpc_message_bytes
        oip.check_parameters(
            "the inference request", request.parameters, oip.REQUEST_PARAMETERS["grpc"]
        )
        for out in request.outputs:
            oip.check_parameters(
                f"output {out.name!r}", out.parameters, oip.OUTPUT_PARAMETERS["grpc"]
            )
        inputs: dict[str, np.ndarray] = {}
        for i, tensor in enumerate(request.inputs):
            oip.check_parameters(
                f"input {tensor.name!r}", tensor.parameters, oip.INPUT_PARAMETERS["grpc"]
            )
            if tensor.name in inputs:
                raise InvalidInput(f"input {tensor.name!r} is given twice")
            if raw and tensor.contents.ByteSize():
                # As Triton does: with both, which one wins would be undefined.
                raise InvalidInput(
                    f"input {tensor.name!r} has typed 'contents' while the request also has "
                    "raw_input_contents; send every input one way: all raw or all typed"
                )
            if raw:
                inputs[tensor.name] = oip.decode_tensor(
                    tensor.name, tensor.datatype, tensor.shape, raw=raw[i], max_bytes=limit
                )
                continue
            field = _CONTENTS_FIELD.get(tensor.datatype)
            data = list(getattr(tensor.contents, field)) if field else None
            inputs[tensor.name] = oip.decode_tensor(
                tensor.name, tensor.datatype, tensor.shape, data=data, max_bytes=limit
            )
        return inputs


async def start(entry, port: int, *, max_message_bytes: int, max_concurrent_rpcs: int):
    """Start the OIP gRPC server and health service on `port` (all interfaces).

    SO_REUSEPORT lets every entry worker bind the same port; the kernel spreads connections.
    A port held by any other process is refused (`serving.ports.check_shared_port`).

    Returns:
        (server, health_servicer).
    """
    from serving.auth import GrpcAuthInterceptor, configured_token
    from serving.ports import check_shared_port

    # SO_REUSEPORT would also let this worker join an unrelated server's port: refuse that.
    check_shared_port(port, "ECOMGAN_GRPC_PORT (ecomgan serve --grpc-port)")
    token = configured_token()
    server = grpc.aio.server(
        interceptors=[GrpcAuthInterceptor(token)] if token else None,
        options=[
            ("grpc.so_reuseport", 1),
            ("grpc.max_receive_message_length", max_message_bytes),
            ("grpc.max_send_message_length", max_message_bytes),
        ],
        maximum_concurrent_rpcs=max_concurrent_rpcs,
    )
    service_pb2_grpc.add_GRPCInferenceServiceServicer_to_server(InferenceServicer(entry), server)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    bound = server.add_insecure_port(f"[::]:{port}")
    if bound == 0:
        raise RuntimeError(
            f"cannot bind the gRPC port {port}; set ECOMGAN_GRPC_PORT to a free port"
        )
    await server.start()
    await health_servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    await health_servicer.set(
        "inference.GRPCInferenceService", health_pb2.HealthCheckResponse.SERVING
    )
    logger.info("OIP gRPC listening on port %d (max message %d bytes)", port, max_message_bytes)
    return server, health_servicer


async def stop(server, health_servicer, grace: float = 5.0) -> None:
    """Report NOT_SERVING, then drain in-flight RPCs for up to `grace` seconds."""
    await health_servicer.enter_graceful_shutdown()
    await server.stop(grace)
