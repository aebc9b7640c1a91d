"""OIP v2 REST routes under /v2, with Triton's binary tensor data extension.

Mounted into the entry service, so they share its process, its port (3000) and its gateway.
"""

from __future__ import annotations

import json
import logging

import numpy as np
import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Match, Route

from serving import oip
from serving.edge import read_body
from serving.errors import InvalidInput, ServingError, Unavailable

logger = logging.getLogger("ecomgan.oip.http")
HEADER_LENGTH = "inference-header-content-length"


def _entry():
    import bentoml

    entry = bentoml.get_current_service()
    if entry is None or not hasattr(entry, "gateway"):
        raise Unavailable("the service is still starting")
    return entry


def _error(exc: ServingError) -> JSONResponse:
    return JSONResponse({"error": exc.message}, status_code=int(exc.http_status))


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    return await read_body(request.receive, limit, declared.encode() if declared else None)


def _split_body(raw_len: str | None, body: bytes) -> tuple[dict, memoryview]:
    """Separate the JSON inference header from the binary tensor section (`raw_len`: the
    Inference-Header-Content-Length header, None without binary data)."""
    if raw_len is None:
        header_bytes, binary = body, memoryview(b"")
    else:
        if not raw_len.strip().isdigit():
            raise InvalidInput(f"{HEADER_LENGTH} must be a non-negative integer, got {raw_len!r}")
        n = int(raw_len)
        if n > len(body):
            raise InvalidInput(f"{HEADER_LENGTH} is {n} but the body has only {len(body)} bytes")
        header_bytes, binary = body[:n], memoryview(body)[n:]
    try:
        header = json.loads(header_bytes)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"the inference request is not valid JSON ({exc})") from None
    except RecursionError:  # json's recursive parser on thousands of nested brackets
        raise InvalidInput("the inference request is nested too deeply") from None
    if not isinstance(header, dict) or not isinstance(header.get("inputs"), list):
        raise InvalidInput('the inference request must be a JSON object with an "inputs" list')
    _known_keys("the inference request", header, REQUEST_KEYS)
    params = header.get("parameters") or {}
    if not isinstance(params, dict):
        raise InvalidInput("the inference request's 'parameters' must be an object")
    oip.check_parameters("the inference request", params, oip.REQUEST_PARAMETERS["http"])
    return header, binary


# Members the OIP v2 REST spec defines; anything else is a typo we refuse rather than ignore.
REQUEST_KEYS = ("id", "parameters", "inputs", "outputs")
TENSOR_KEYS = ("name", "shape", "datatype", "parameters", "data")
OUTPUT_KEYS = ("name", "parameters")


def _known_keys(where: str, obj: dict, allowed: tuple[str, ...]) -> None:
    unknown = [k for k in obj if k not in allowed]
    if unknown:
        raise InvalidInput(
            f"{where}: unknown field{'s' if len(unknown) > 1 else ''} "
            f"{', '.join(repr(k) for k in unknown)}; allowed: {', '.join(allowed)}"
        )


def _decode_inputs(header: dict, binary: memoryview, max_bytes: int) -> dict[str, np.ndarray]:
    inputs: dict[str, np.ndarray] = {}
    offset = 0
    for i, tensor in enumerate(header["inputs"]):
        if not isinstance(tensor, dict) or not isinstance(tensor.get("name"), str):
            raise InvalidInput(f"inputs[{i}] must be an object with a string 'name'")
        name = tensor["name"]
        _known_keys(f"input {name!r}", tensor, TENSOR_KEYS)
        for key in ("datatype", "shape"):
            if key not in tensor:
                raise InvalidInput(f"input {name!r} is missing {key!r}")
        if name in inputs:
            raise InvalidInput(f"input {name!r} is given twice")
        params = tensor.get("parameters") or {}
        if not isinstance(params, dict):
            raise InvalidInput(f"input {name!r}: 'parameters' must be an object")
        oip.check_parameters(f"input {name!r}", params, oip.INPUT_PARAMETERS["http"])
        size = params.get("binary_data_size")
        raw = None
        if size is not None:
            if not isinstance(size, int) or isinstance(size, bool) or size < 0:
                raise InvalidInput(f"input {name!r}: binary_data_size must be an integer >= 0")
            if offset + size > len(binary):
                raise InvalidInput(
                    f"input {name!r}: binary_data_size {size} runs past the end of the body "
                    f"({len(binary) - offset} bytes left)"
                )
            raw = binary[offset : offset + size]
            offset += size
        if not isinstance(tensor["shape"], list):
            raise InvalidInput(f"input {name!r}: shape must be a list of integers")
        inputs[name] = oip.decode_tensor(
            name,
            tensor["datatype"],
            tensor["shape"],
            raw=raw,
            data=tensor.get("data"),
            max_bytes=max_bytes,
        )
    if offset != len(binary):
        raise InvalidInput(
            f"the body has {len(binary) - offset} bytes of binary data no input claims"
        )
    return inputs


def _encode_response(served, header: dict, outputs: dict[str, np.ndarray]) -> Response:
    requested = header.get("outputs") or []
    if not isinstance(requested, list) or not all(
        isinstance(o, dict) and isinstance(o.get("name"), str) for o in requested
    ):
        raise InvalidInput("'outputs' must be a list of objects with a string 'name'")
    for o in requested:
        _known_keys(f"output {o['name']!r}", o, OUTPUT_KEYS)
        params = o.get("parameters") or {}
        if not isinstance(params, dict):
            raise InvalidInput(f"output {o['name']!r}: 'parameters' must be an object")
        oip.check_parameters(f"output {o['name']!r}", params, oip.OUTPUT_PARAMETERS["http"])
    params = header.get("parameters") or {}
    binary_default = bool(params.get("binary_data_output", False))
    want_binary = {
        o["name"]: bool((o.get("parameters") or {}).get("binary_data", binary_default))
        for o in requested
    }
    chosen = oip.output_arrays(served, outputs, [o["name"] for o in requested])
    body: dict = {"model_name": served.name, "model_version": served.version, "outputs": []}
    if "id" in header:
        body["id"] = header["id"]
    blobs: list[bytes] = []
    for name, arr in chosen:
        entry = {"name": name, "datatype": oip.datatype_of(arr), "shape": list(arr.shape)}
        if want_binary.get(name, binary_default):
            blob = oip.raw_bytes(arr)
            entry["parameters"] = {"binary_data_size": len(blob)}
            blobs.append(blob)
        else:
            entry["data"] = oip.json_data(name, arr)
        body["outputs"].append(entry)
    head = orjson.dumps(body)
    if not blobs:
        return Response(head, media_type="application/json")
    return Response(
        head + b"".join(blobs),
        media_type="application/octet-stream",
        headers={"Inference-Header-Content-Length": str(len(head))},
    )


async def server_live(request: Request) -> Response:
    try:
        _entry()
    except Unavailable:
        return JSONResponse({"live": False}, status_code=503)
    return JSONResponse({"live": True})


async def server_ready(request: Request) -> Response:
    try:
        ready = await _entry().dependencies_ready()
    except Unavailable:
        ready = False
    return JSONResponse({"ready": ready}, status_code=200 if ready else 503)


async def server_metadata(request: Request) -> Response:
    return JSONResponse(oip.server_metadata())


async def model_metadata(request: Request) -> Response:
    try:
        entry = _entry()
        served = entry.gateway.model(
            request.path_params["model"], request.path_params.get("version")
        )
    except ServingError as exc:
        return _error(exc)
    return JSONResponse(oip.model_metadata(served))


async def model_ready(request: Request) -> Response:
    try:
        entry = _entry()
        served = entry.gateway.model(
            request.path_params["model"], request.path_params.get("version")
        )
        ready = await entry.dependencies_ready()
    except ServingError as exc:
        return _error(exc)
    return JSONResponse({"name": served.name, "ready": ready}, status_code=200 if ready else 503)


async def model_infer(request: Request) -> Response:
    try:
        entry = _entry()
        entry.gateway.model(request.path_params["model"], request.path_params.get("version"))
        body = await _read_body(request, entry.limits.max_body_bytes)
    except ServingError as exc:
        return _error(exc)
    return await infer(
        entry,
        request.path_params["model"],
        request.path_params.get("version"),
        body,
        request.headers.get(HEADER_LENGTH),
    )


async def infer(
    entry, model: str, version: str | None, body: bytes, header_length: str | None
) -> Response:
    """Answer one OIP inference request whose body has been read (this route and
    `serving.fastlane` share it).

    Args:
        entry: The entry service instance (its gateway and limits).
        model: Model name from the path.
        version: Version from the path, or None.
        body: The request body.
        header_length: The Inference-Header-Content-Length header, None when absent.

    Returns:
        The inference response, or ``{"error": ...}`` with the status of the refusal.
    """
    try:
        served = entry.gateway.model(model, version)
        header, binary = _split_body(header_length, body)
        inputs = _decode_inputs(header, binary, entry.limits.max_body_bytes)
        outputs = await entry.gateway.infer(served.name, inputs, served.version)
        return _encode_response(served, header, outputs)
    except ServingError as exc:
        return _error(exc)


def _model_routes(prefix: str) -> list[Route]:
    return [
        Route(prefix, model_metadata, methods=["GET"]),
        Route(prefix + "/ready", model_ready, methods=["GET"]),
        Route(prefix + "/infer", model_infer, methods=["POST"]),
    ]


ROUTES_HELP = (
    "GET /v2, /v2/health/live, /v2/health/ready, /v2/models/{m}[/versions/{v}][/ready]; "
    "POST /v2/models/{m}[/versions/{v}]/infer"
)


async def not_found(request: Request) -> Response:
    """The catch-all under /v2: 405 where another route has this path, else 404."""
    for route in app.routes:
        if route.endpoint is not not_found and route.matches(request.scope)[0] == Match.PARTIAL:
            return JSONResponse(
                {
                    "error": f"{request.method} is not allowed on {request.url.path}; "
                    f"use {', '.join(sorted(route.methods - {'HEAD'}))}"
                },
                status_code=405,
            )
    return JSONResponse(
        {"error": f"no OIP route {request.method} {request.url.path}; routes: {ROUTES_HELP}"},
        status_code=404,
    )


# Mounted at the root (BentoML only routes here what these routes match), so that `GET /v2`
# answers itself instead of redirecting to `/v2/`, which tritonclient does not follow.
app = Starlette(
    routes=[
        Route("/v2", server_metadata, methods=["GET"]),
        Route("/v2/health/live", server_live, methods=["GET"]),
        Route("/v2/health/ready", server_ready, methods=["GET"]),
        *_model_routes("/v2/models/{model}/versions/{version}"),
        *_model_routes("/v2/models/{model}"),
        Route("/v2/{rest:path}", not_found, methods=["GET", "POST", "PUT", "DELETE", "PATCH"]),
    ],
)
