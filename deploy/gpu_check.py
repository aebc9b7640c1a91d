"""One check of ONNX Runtime's CUDA provider on the shipped models, for a machine with a GPU.

    python deploy/gpu_check.py [--models models] [--out gpu_check.json]

Needs numpy and onnxruntime-gpu with CUDA 12 + cuDNN 9 (`pip install
"onnxruntime-gpu[cuda,cudnn]<1.27"` brings them as wheels), or run it inside the GPU image, which
has all of it and the models:

    podman run --rm --device nvidia.com/gpu=all --entrypoint python ecomgan-gpu:0.1.0 \\
        /home/bentoml/bento/src/deploy/gpu_check.py --models /home/bentoml/bento/models

For every FP32 model file under --models (the repo's `models/<family>/*.onnx`, or a BentoML
store's `<name>/<version>/model.onnx`): images (rows) per second at batch 1 and 64 on CUDA and on
CPU, and the largest difference between their outputs on the same inputs (TF32 off, so CUDA
computes in full FP32). Exits 1 when CUDA is not the session's provider or a difference exceeds
--atol. Writes the results as JSON to --out and stdout.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort

BATCHES = (1, 64)
CUDA = ("CUDAExecutionProvider", {"use_tf32": 0})


def model_files(root: Path) -> dict[str, Path]:
    """label -> FP32 ONNX file (INT8 twins are CPU-only and skipped)."""
    out = {}
    for path in sorted(root.rglob("*.onnx")):
        if ".int8." in path.name:
            continue
        rel = path.relative_to(root)
        label = str(rel.parent) if path.name == "model.onnx" else str(rel.with_suffix(""))
        out[label] = path
    return out


def feeds(session: ort.InferenceSession, batch: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Inputs of the session's signature: floats in [-1, 1], integers 0 (a valid class)."""
    rng = np.random.default_rng(seed)
    out = {}
    for arg in session.get_inputs():
        shape = [batch if not isinstance(d, int) else d for d in arg.shape]
        if "float" in arg.type:
            out[arg.name] = rng.uniform(-1, 1, shape).astype(np.float32)
        else:
            out[arg.name] = np.zeros(shape, dtype=np.int64)
    return out


def throughput(session: ort.InferenceSession, batch: int, seconds: float) -> float:
    """Rows per second, after a warm-up, over at least `seconds`."""
    x = feeds(session, batch)
    for _ in range(5):
        session.run(None, x)
    runs, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        session.run(None, x)
        runs += 1
    return batch * runs / elapsed


def check(path: Path, seconds: float) -> dict:
    """Throughput on both providers and the largest output difference, for one model."""
    cuda = ort.InferenceSession(str(path), providers=[CUDA, "CPUExecutionProvider"])
    cpu = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    result: dict = {"providers": cuda.get_providers()}
    x = feeds(cuda, 64, seed=1)
    diffs = [
        float(np.max(np.abs(a.astype(np.float64) - b)))
        for a, b in zip(cuda.run(None, x), cpu.run(None, x), strict=True)
    ]
    result["max_abs_diff"] = max(diffs)
    for batch in BATCHES:
        result[f"cuda_rows_per_s_b{batch}"] = round(throughput(cuda, batch, seconds), 1)
        result[f"cpu_rows_per_s_b{batch}"] = round(throughput(cpu, batch, seconds), 1)
    return result


def main(argv: list[str] | None = None) -> int:
    """Run the check on every model; exit 1 on a failure."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", type=Path, default=Path(__file__).parents[1] / "models")
    parser.add_argument("--out", type=Path, default=Path("gpu_check.json"))
    parser.add_argument("--atol", type=float, default=1e-3)
    parser.add_argument("--seconds", type=float, default=3.0, help="per measurement")
    args = parser.parse_args(argv)
    report: dict = {
        "onnxruntime": ort.__version__,
        "available_providers": ort.get_available_providers(),
        "atol": args.atol,
        "models": {},
    }
    failures = []
    files = model_files(args.models)
    if not files:
        failures.append(f"no .onnx files under {args.models}")
    for label, path in files.items():
        r = report["models"][label] = check(path, args.seconds)
        if r["providers"][0] != CUDA[0]:
            failures.append(f"{label}: ran on {r['providers'][0]}, not CUDA")
        if r["max_abs_diff"] > args.atol:
            failures.append(f"{label}: CUDA vs CPU differ by {r['max_abs_diff']:.3g}")
    report["failures"] = failures
    text = json.dumps(report, indent=1)
    args.out.write_text(text)
    print(text)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
