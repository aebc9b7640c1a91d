"""In-process ONNX Runtime throughput of the shipped products models on each available provider.

Usage: python benchmarks/ort_device.py [--seconds 2] [--out FILE.md]

Creates sessions exactly as the service does (`serving.runtime.create_session`), checks that
every provider's outputs match the CPU provider's, and times batch 1..256. Needs only numpy and
onnxruntime (or onnxruntime-gpu), so it also runs on a GPU machine without the serving stack.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from serving.runtime import create_session, session_signature  # noqa: E402

MODELS = REPO / "models" / "products"
BATCHES = (1, 8, 32, 64, 128, 256)


def feeds(name: str, sig, n: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    out = {}
    for spec in sig.inputs:
        shape = (n, *spec.item_shape)
        if spec.datatype == "INT64":
            out[spec.name] = rng.integers(0, 10, shape, dtype=np.int64)
        else:
            out[spec.name] = rng.standard_normal(shape, dtype=np.float32).clip(-1, 1)
    return out


def main() -> None:
    import onnxruntime as ort

    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    providers = [
        p
        for p in ("CUDAExecutionProvider", "CPUExecutionProvider")
        if p in ort.get_available_providers()
    ]
    lines = [
        f"onnxruntime {ort.__version__}, providers {providers}",
        "",
        "| model | provider | batch | images/s | max abs diff vs CPU |",
        "|---|---|---:|---:|---:|",
    ]
    for name in ("generator", "discriminator"):
        ref = None
        for provider in reversed(providers):  # CPU first: it is the reference
            os.environ["ECOMGAN_ORT_PROVIDERS"] = provider
            session = create_session(MODELS / f"{name}.onnx")
            actual = session.get_providers()[0]
            sig = session_signature(session)
            check = feeds(name, sig, 64)
            out = session.run(None, check)[0]
            ref = out if ref is None else ref
            diff = float(np.abs(out - ref).max())
            for n in BATCHES:
                x = feeds(name, sig, n)
                session.run(None, x)
                count, t0 = 0, time.perf_counter()
                while time.perf_counter() - t0 < args.seconds:
                    session.run(None, x)
                    count += 1
                rate = count * n / (time.perf_counter() - t0)
                lines.append(f"| {name} | {actual} | {n} | {rate:,.0f} | {diff:.1e} |")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
