"""In-process ONNX Runtime throughput of the shipped products models on each available provider.

Usage: python benchmarks/ort_device.py [--seconds 2] [--out FILE.md]

Creates sessions with the service's options (`benchmarks.ceiling.ort_session`), checks that
every provider's outputs match the CPU provider's, and times batch 1..256. Needs only numpy and
onnxruntime (or onnxruntime-gpu), so it also runs on a GPU machine without the serving stack.
`python -m benchmarks.run` reports the same ceiling beside the served numbers.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.ceiling import BATCHES, MODELS, feeds, ort_session  # noqa: E402


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
            session = ort_session(MODELS / f"{name}.onnx", provider)
            actual = session.get_providers()[0]
            nz = session.get_inputs()[0].shape[1] if name == "generator" else 0
            check = feeds(name, nz, 64)
            out = session.run(None, check)[0]
            ref = out if ref is None else ref
            diff = float(np.abs(out - ref).max())
            for n in BATCHES:
                x = feeds(name, nz, n)
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
