"""How many generated shoppers sessions break a cross-column rule of the real data, without
and with the transformer enforcing its rules (`ecomgan.tabular.Rule`).

    python -m benchmarks.shoppers_rules [--rows 10000] [--seed 11] [--folder models/shoppers]

The rows are what `/shoppers/generate` returns for the seed (no conditions), decoded once by a
transformer without rules and once by the shipped one; writes a Markdown table to stdout.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from benchmarks.machine import REPO
from ecomgan.tabular import TabularTransformer
from serving.sampling import from_folder
from serving.shoppers import TRANSFORMER_FILE, finish_rows, generator_inputs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--folder", type=Path, default=REPO / "models" / "shoppers")
    args = parser.parse_args()
    _, run, nz, artifacts = from_folder(args.folder)
    tf = TabularTransformer.from_dict(json.loads(artifacts[TRANSFORMER_FILE].read_text()))
    bare = TabularTransformer(tf.columns, tf.cooccurrence)  # the same decoder, no rules
    x = run(generator_inputs(tf, {}, args.rows, args.seed, nz))["x"]
    tables = {"without rules": finish_rows(bare, x, {}), "with rules": finish_rows(tf, x, {})}
    print(f"{args.rows} generated sessions (seed {args.seed}), share breaking each rule\n")
    print("| rule | " + " | ".join(tables) + " |\n|---|" + "---:|" * len(tables))
    for rule in tf.rules:
        shares = [f"{rule.violations(rows).mean():.1%}" for rows in tables.values()]
        print(f"| {rule.describe()} | " + " | ".join(shares) + " |")
    anyone = [np.any([r.violations(rows) for r in tf.rules], axis=0).mean() for rows in tables.values()]  # noqa: E501
    print("| any rule | " + " | ".join(f"{a:.1%}" for a in anyone) + " |")


if __name__ == "__main__":
    main()
