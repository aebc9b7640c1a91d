"""Peer (a): a minimal hand-written Starlette + ONNX Runtime server speaking OIP v2 REST.

What a user would write instead of a serving framework: one process, one ORT session, no
batching, inference called inline in the async handler (for a model that runs in about a
millisecond a thread-pool hop costs more than it saves). Spec: KServe Open Inference Protocol
v2 REST, with Triton's binary tensor data extension (`Inference-Header-Content-Length`).

It also answers `POST /products/generate` as our JSON API does (same request fields, the same
seeded latents, the same answer, lists or base64), encoded with orjson as a careful user would,
so the JSON API is compared like with like.

Usage: python -m benchmarks.peers.starlette_ort --model models/products/generator.onnx
    --name products-generator --port 8000 [--threads N]
"""

from __future__ import annotations

import argparse
import base64
import json

import numpy as np
import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

DTYPES = {"FP32": np.float32, "INT64": np.int64, "INT32": np.int32, "FP64": np.float64}
ORT_TYPES = {"tensor(float)": "FP32", "tensor(int64)": "INT64", "tensor(int32)": "INT32"}
HEADER = "inference-header-content-length"
CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker",
           "Bag", "Ankle boot")  # fmt: skip


def build_app(model_path: str, name: str, threads: int) -> Starlette:
    """The OIP routes over one ORT session of `model_path`, served as model `name`."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    providers = [
        p
        for p in ("CUDAExecutionProvider", "CPUExecutionProvider")
        if p in ort.get_available_providers()
    ]
    session = ort.InferenceSession(model_path, sess_options=opts, providers=providers)
    outputs = [o.name for o in session.get_outputs()]
    out_types = [ORT_TYPES[o.type] for o in session.get_outputs()]

    def meta(args) -> list[dict]:
        return [
            {
                "name": a.name,
                "datatype": ORT_TYPES.get(a.type, a.type),
                "shape": [d if isinstance(d, int) else -1 for d in a.shape],
            }
            for a in args
        ]

    metadata = {
        "name": name,
        "versions": ["1"],
        "platform": "onnxruntime",
        "inputs": meta(session.get_inputs()),
        "outputs": meta(session.get_outputs()),
    }

    def error(message: str, status: int = 400) -> JSONResponse:
        return JSONResponse({"error": message}, status_code=status)

    async def ready(request: Request) -> Response:
        return JSONResponse({"ready": True})

    async def model_metadata(request: Request) -> Response:
        if request.path_params["model"] != name:
            return error(f"unknown model {request.path_params['model']!r}", 404)
        return JSONResponse(metadata)

    async def infer(request: Request) -> Response:
        if request.path_params["model"] != name:
            return error(f"unknown model {request.path_params['model']!r}", 404)
        body = await request.body()
        n = int(request.headers.get(HEADER, len(body)))
        try:
            header = json.loads(body[:n])
            feeds, offset = {}, n
            for t in header["inputs"]:
                dtype = DTYPES[t["datatype"]]
                size = (t.get("parameters") or {}).get("binary_data_size")
                if size is None:
                    arr = np.asarray(t["data"], dtype=dtype)
                else:
                    count = size // np.dtype(dtype).itemsize
                    arr = np.frombuffer(body, dtype=dtype, count=count, offset=offset)
                    offset += size
                feeds[t["name"]] = arr.reshape(t["shape"])
            results = session.run(outputs, feeds)
        except (KeyError, ValueError, TypeError) as exc:
            return error(f"bad inference request: {exc}")
        except Exception as exc:  # ORT rejects shapes/types with its own exception types
            return error(f"inference failed: {exc}")
        binary = {
            o["name"]: (o.get("parameters") or {}).get("binary_data", False)
            for o in header.get("outputs") or []
        }
        reply, blobs = {"model_name": name, "outputs": []}, []
        for out_name, datatype, arr in zip(outputs, out_types, results, strict=True):
            entry = {"name": out_name, "datatype": datatype, "shape": list(arr.shape)}
            if binary.get(out_name, False):
                blob = arr.tobytes()
                entry["parameters"] = {"binary_data_size": len(blob)}
                blobs.append(blob)
            else:
                entry["data"] = arr.ravel().tolist()
            reply["outputs"].append(entry)
        head = json.dumps(reply).encode()
        if not blobs:
            return Response(head, media_type="application/json")
        return Response(
            head + b"".join(blobs),
            media_type="application/octet-stream",
            headers={"Inference-Header-Content-Length": str(len(head))},
        )

    async def generate(request: Request) -> Response:
        # The JSON API's work: seeded latents, one run, uint8 pixels, lists or base64.
        try:
            req = orjson.loads(await request.body())
            label = req["category"]
            label = label if isinstance(label, int) else CLASSES.index(label)
            count, seed = int(req.get("count", 1)), int(req["seed"])
            if not (0 <= label < len(CLASSES) and 1 <= count <= 256):
                raise ValueError("category or count out of range")
        except (KeyError, ValueError, TypeError, orjson.JSONDecodeError) as exc:
            return error(f"bad request: {exc}")
        z = np.random.Generator(np.random.PCG64(seed)).standard_normal(
            (count, int(metadata["inputs"][0]["shape"][1])), dtype=np.float32
        )
        (image,) = session.run(outputs[:1], {"z": z, "label": np.full(count, label, np.int64)})
        pixels = np.clip(np.rint((image[:, 0] + 1.0) * 127.5), 0, 255).astype(np.uint8)
        encoding = req.get("encoding", "lists")
        images = (
            base64.b64encode(pixels.tobytes()).decode()
            if encoding == "base64"
            else pixels.tolist()
        )
        reply = {"category": CLASSES[label], "label": label, "seed": seed,
                 "shape": list(pixels.shape), "encoding": encoding, "images": images}  # fmt: skip
        return Response(orjson.dumps(reply), media_type="application/json")

    return Starlette(
        routes=[
            Route("/products/generate", generate, methods=["POST"]),
            Route("/v2/health/ready", ready),
            Route("/v2/models/{model}", model_metadata),
            Route("/v2/models/{model}/infer", infer, methods=["POST"]),
        ]
    )


def main() -> None:
    import uvicorn

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True, help="path of the .onnx file")
    ap.add_argument("--name", required=True, help="OIP model name")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--threads", type=int, default=1, help="ORT intra-op threads")
    args = ap.parse_args()
    app = build_app(args.model, args.name, args.threads)
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
