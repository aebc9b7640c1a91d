"""Aggregate facts about the training data that the web UI charts beside generated rows.

Nothing here reads raw rows: categorical columns carry the training frequencies stored in the
shoppers data transformer (`transformer.json`), and continuous columns get the probability mass
per bin of the Gaussian mixture fitted to the training data (the transformer's modes, in the
column's transformed space: `log1p` for counts, durations and `PageValues`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from functools import lru_cache
from typing import Any

import numpy as np

from ecomgan.families import get_family

BINS = 12


def _normal_cdf(x: np.ndarray) -> np.ndarray:
    return np.array([0.5 * (1.0 + math.erf(v / math.sqrt(2.0))) for v in x.ravel()])


def _mixture_mass(modes: dict[str, list[float]], edges_t: np.ndarray) -> np.ndarray:
    """Mass of a 1-D Gaussian mixture per cell; the end cells take the tails."""
    cells = len(edges_t) - 1
    inner = edges_t[1:-1]
    mass = np.zeros(cells)
    for mean, std, weight in zip(modes["means"], modes["stds"], modes["weights"], strict=True):
        if std <= 0:
            index = int(np.clip(np.searchsorted(edges_t, mean, side="right") - 1, 0, cells - 1))
            mass[index] += weight
        else:
            cdf = np.concatenate([[0.0], _normal_cdf((inner - mean) / std), [1.0]])
            mass += weight * np.diff(cdf)
    return mass


def mixture_histogram(column: dict[str, Any], bins: int = BINS) -> tuple[list[float], list[float]]:
    """Bin edges (the column's own units) and the fitted mixture's probability mass per bin.

    Args:
        column: One continuous column of a ``ecomgan.tabular/1`` transformer: ``min``, ``max``,
            ``transform`` (``log1p`` or ``none``) and ``modes`` (``means``, ``stds``,
            ``weights`` in the transformed space; a std of 0 is an exact value).
        bins: Number of equal-width bins in the transformed space.

    Returns:
        ``(edges, mass)``: ``bins + 1`` increasing edges and ``bins`` masses summing to 1. Mass
        outside ``[min, max]`` goes to the end bins, as the decoder clips values to that range;
        counts (``kind: count``) are first discretised to integers, as the decoder rounds them.
    """
    log = column.get("transform") == "log1p"
    forward = np.log1p if log else (lambda v: np.asarray(v, dtype=float))
    lo, hi = (float(forward(column["min"])), float(forward(column["max"])))
    if hi <= lo:
        hi = lo + 1.0
    edges_t = np.linspace(lo, hi, bins + 1)
    edges = np.expm1(edges_t) if log else edges_t
    if column.get("kind") == "count":
        # Counts are decoded to integers: the mixture's mass of each integer, then binned.
        values = np.arange(int(column["min"]), int(column["max"]) + 1)
        cells = forward(np.concatenate([values - 0.5, [values[-1] + 0.5]]).clip(min=0))
        index = np.clip(np.searchsorted(edges, values, side="right") - 1, 0, bins - 1)
        per_value = _mixture_mass(column["modes"], cells)
        mass = np.bincount(index, weights=per_value, minlength=bins)
    else:
        mass = _mixture_mass(column["modes"], edges_t)
    total = mass.sum()
    edges[0] = float(column["min"])
    edges[-1] = float(column["max"])
    return edges.tolist(), (mass / total if total > 0 else mass).tolist()


def column_marginals(spec: dict[str, Any]) -> list[dict[str, Any]]:
    """Per column of a shoppers transformer: its vocabulary or bins, and the training marginal.

    Args:
        spec: The parsed ``transformer.json``.

    Returns:
        One dict per column, in table order: ``name``, ``kind`` and either ``categories``
        (JSON-typed values, usable as conditions) or ``edges``, plus ``training``, the share of
        training sessions per category or per bin.
    """
    out = []
    for column in spec["columns"]:
        entry: dict[str, Any] = {"name": column["name"], "kind": column["kind"]}
        if "categories" in column:
            entry["categories"] = column["categories"]
            entry["training"] = column["frequencies"]
        else:
            entry["edges"], entry["training"] = mixture_histogram(column)
        out.append(entry)
    return out


@lru_cache(maxsize=4)
def _marginals_of_file(path: str) -> dict[str, Any]:
    with open(path) as f:
        spec = json.load(f)
    return {
        "source": "transformer.json of the served shoppers-generator (aggregates only)",
        "columns": column_marginals(spec),
    }


def shoppers_marginals(entry: Any) -> dict[str, Any]:
    """`column_marginals` of the served shoppers generator's transformer (read once per file).

    Args:
        entry: The entry service instance (its gateway knows the served models' artifacts).
    """
    served = entry.gateway.model(get_family("shoppers").model_name("generator"))
    return _marginals_of_file(served.artifacts["transformer.json"])


# Family -> function(entry) answering GET /ui/data/<family> (blocking; run in a worker thread).
PROVIDERS: dict[str, Callable[[Any], dict[str, Any]]] = {"shoppers": shoppers_marginals}


def provider(family: str) -> Callable[[Any], dict[str, Any]] | None:
    """The family's own provider, else (for any registered family) its API's request examples,
    the ones OpenAPI shows, from which a panel can prefill its forms; None if unknown."""
    if family in PROVIDERS:
        return PROVIDERS[family]
    from ecomgan.families import FAMILIES

    if family not in FAMILIES:
        return None

    def examples(entry: Any) -> dict[str, Any]:
        return {"examples": dict(FAMILIES[family].load_api().examples)}

    return examples
