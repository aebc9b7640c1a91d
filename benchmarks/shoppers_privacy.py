"""The privacy check of `ecomgan evaluate` on the shipped shoppers generator.

    python -m benchmarks.shoppers_privacy [--rows 7882] [--seed 1] [--folder models/shoppers]

Samples the exported generator as `/shoppers/generate` does (no conditions), then compares each
row's distance to the closest training row with the held-out test rows' (`privacy` in
`gan/shoppers/evaluate.py`); prints the result as JSON.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import pandas as pd

from benchmarks.machine import REPO
from gan.shoppers.data import load_split
from gan.shoppers.evaluate import privacy
from serving.sampling import from_folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=7882, help="default: the train split's size")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--folder", type=Path, default=REPO / "models" / "shoppers")
    args = parser.parse_args()
    family, run, nz, artifacts = from_folder(args.folder)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "rows.csv"
        family.load_api().write_samples(run, nz, artifacts, out, count=args.rows, seed=args.seed,
                                        category=None, conditions={})  # fmt: skip
        synthetic = pd.read_csv(out)
    train, test = load_split()
    print(json.dumps(privacy(synthetic, train, test), indent=1))


if __name__ == "__main__":
    main()
