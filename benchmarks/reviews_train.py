"""Train the shipped reviews models and measure the training's CPU time (issue target: <= 30
CPU-minutes). Writes ``OUT/train_cost.json`` beside the checkpoint.

Usage: ``python benchmarks/reviews_train.py --out runs/reviews`` (ECOMGAN_DATA_DIR set).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import time
from pathlib import Path

from gan.reviews.train import TrainConfig, train


def cpu_seconds() -> float:
    """User + system CPU seconds of this process and its waited-for children."""
    total = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        r = resource.getrusage(who)
        total += r.ru_utime + r.ru_stime
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("runs/reviews"))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    cfg = TrainConfig(seed=args.seed)
    wall, cpu = time.perf_counter(), cpu_seconds()
    checkpoint = train(cfg, args.out, progress=False)
    cost = {
        "checkpoint": str(checkpoint),
        "wall_s": round(time.perf_counter() - wall, 1),
        "cpu_s": round(cpu_seconds() - cpu, 1),
        "load_average_after": os.getloadavg(),
        "config": cfg.to_dict(),
    }
    (args.out / "train_cost.json").write_text(json.dumps(cost, indent=2) + "\n")
    print(json.dumps(cost))


if __name__ == "__main__":
    main()
