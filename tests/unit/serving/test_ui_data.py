"""Training marginals for the web UI: aggregates of the shipped shoppers transformer."""

from __future__ import annotations

import json

import numpy as np

from ecomgan.families import get_family
from serving.ui_data import column_marginals, mixture_histogram

SPEC = json.loads((get_family("shoppers").shipped_dir / "transformer.json").read_text())


def test_every_column_has_a_distribution_over_its_vocabulary_or_bins():
    columns = column_marginals(SPEC)
    assert [c["name"] for c in columns] == [c["name"] for c in SPEC["columns"]]
    for column, source in zip(columns, SPEC["columns"], strict=True):
        shares = np.asarray(column["training"])
        assert np.all(shares >= 0) and abs(shares.sum() - 1) < 1e-6, column["name"]
        if "categories" in source:
            assert column["categories"] == source["categories"]
            assert column["training"] == source["frequencies"]
        else:
            edges = np.asarray(column["edges"])
            assert len(edges) == len(shares) + 1 and np.all(np.diff(edges) > 0)
            assert (edges[0], edges[-1]) == (source["min"], source["max"])


def test_point_modes_and_tails_land_in_their_bins():
    column = {
        "name": "x",
        "kind": "rate",
        "transform": "none",
        "min": 0.0,
        "max": 1.0,
        "modes": {"means": [0.0, 1.0, 0.5], "stds": [0.0, 0.0, 10.0], "weights": [0.5, 0.25, 0.25]},
    }
    edges, mass = mixture_histogram(column, bins=4)
    assert edges == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert mass[0] > 0.5 and mass[-1] > 0.25
    assert abs(mass[0] - mass[-1] - 0.25) < 1e-9  # a wide mode's tails split evenly
