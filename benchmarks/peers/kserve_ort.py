"""Peer (b): a KServe `ModelServer` with a `kserve.Model` wrapping ONNX Runtime.

The common non-batching OIP server (KServe Python runtime, Open Inference Protocol v2 over REST
and gRPC). Runs in its own venv (`.bench/kserve-venv`, from `requirements-kserve.txt`): it needs
only kserve, onnxruntime and numpy, never this project's packages. Per-request latency logging is
off so that the peer is measured at its best, not its log handler.

Usage: .bench/kserve-venv/bin/python benchmarks/peers/kserve_ort.py
    --model models/products/generator.onnx --name products-generator
    --http_port 8080 --grpc_port 8081 [--threads N]
"""

from __future__ import annotations

import argparse
import uuid

import kserve
import numpy as np
import onnxruntime as ort
from kserve import InferOutput, InferRequest, InferResponse

ORT_TYPES = {"tensor(float)": "FP32", "tensor(int64)": "INT64", "tensor(int32)": "INT32"}


class OnnxModel(kserve.Model):
    """One ORT session; `predict` runs it on the request's tensors (one request, one run)."""

    def __init__(self, name: str, path: str, threads: int) -> None:
        super().__init__(name)
        self.path, self.threads = path, threads
        self.session = None

    def load(self) -> bool:
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.intra_op_num_threads = self.threads
        opts.inter_op_num_threads = 1
        providers = [
            p
            for p in ("CUDAExecutionProvider", "CPUExecutionProvider")
            if p in ort.get_available_providers()
        ]
        self.session = ort.InferenceSession(self.path, sess_options=opts, providers=providers)
        self.outputs = self.session.get_outputs()
        self.ready = True
        return self.ready

    async def predict(
        self, payload: InferRequest, headers=None, response_headers=None
    ) -> InferResponse:
        feeds = {t.name: t.as_numpy() for t in payload.inputs}
        results = self.session.run([o.name for o in self.outputs], feeds)
        outputs = []
        for spec, arr in zip(self.outputs, results, strict=True):
            out = InferOutput(spec.name, list(arr.shape), ORT_TYPES[spec.type])
            out.set_data_from_numpy(np.ascontiguousarray(arr), binary_data=True)
            outputs.append(out)
        return InferResponse(
            response_id=payload.id or uuid.uuid4().hex,  # REST JSON answers need an id
            model_name=self.name,
            infer_outputs=outputs,
            use_binary_outputs=payload.use_binary_outputs,
            requested_outputs=payload.request_outputs,
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True, help="path of the .onnx file")
    ap.add_argument("--name", required=True, help="OIP model name")
    ap.add_argument("--http_port", type=int, required=True)
    ap.add_argument("--grpc_port", type=int, required=True)
    ap.add_argument("--threads", type=int, default=1, help="ORT intra-op threads")
    args, _ = ap.parse_known_args()  # kserve parses the same argv for its own flags
    model = OnnxModel(args.name, args.model, args.threads)
    model.load()
    kserve.ModelServer(
        http_port=args.http_port,
        grpc_port=args.grpc_port,
        workers=1,
        enable_latency_logging=False,
    ).start([model])


if __name__ == "__main__":
    main()
