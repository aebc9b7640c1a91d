"""Acceptance rules of INT8 models: how much each quality metric may worsen from FP32.

Core (numpy only): families name their rules here (``gan.<family>.QUANTIZATION_RULES``) and
``export.quantize`` applies them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Tolerance:
    """How much one quality metric may worsen from FP32 to INT8.

    Attributes:
        metric: Key in the ``quality`` callback's result.
        higher_is_better: Direction of the metric (AUROC: True; FID: False).
        max_worsening: Allowed worsening: absolute, or a fraction of the FP32 value if
            ``relative``.
        relative: Interpret ``max_worsening`` relative to the FP32 value.
    """

    metric: str
    higher_is_better: bool
    max_worsening: float
    relative: bool = False


# The acceptance rule proposed for the products family (benchmarks/results/quantization.md).
GENERATOR_RULE = (
    Tolerance("fid", higher_is_better=False, max_worsening=0.05, relative=True),
    Tolerance("class_consistency", higher_is_better=True, max_worsening=0.01),
)
DISCRIMINATOR_RULE = (Tolerance("auroc", higher_is_better=True, max_worsening=0.005),)


def check_quality(
    fp32: Mapping[str, float], int8: Mapping[str, float], rule: Sequence[Tolerance]
) -> dict[str, Any]:
    """Compare the FP32 and INT8 metrics against ``rule``.

    Returns:
        ``{"passed", "results": [{metric, fp32, int8, worsening, allowed, ok}], "failures"}``;
        ``worsening`` is positive when INT8 is worse.

    Raises:
        ValueError: A rule names a metric missing from either side.
    """
    results, failures = [], []
    for tol in rule:
        if tol.metric not in fp32 or tol.metric not in int8:
            raise ValueError(f"quality rule needs {tol.metric!r}; the metrics have {sorted(fp32)}")
        a, b = float(fp32[tol.metric]), float(int8[tol.metric])
        worse = (a - b) if tol.higher_is_better else (b - a)
        allowed = tol.max_worsening * abs(a) if tol.relative else tol.max_worsening
        ok = bool(np.isfinite(b) and worse <= allowed)
        results.append({"metric": tol.metric, "fp32": a, "int8": b, "worsening": worse,
                        "allowed": allowed, "ok": ok})  # fmt: skip
        if not ok:
            failures.append(
                f"{tol.metric}: FP32 {a:.4g} -> INT8 {b:.4g} worsens by {worse:.4g}, "
                f"allowed {allowed:.4g}"
            )
    return {"passed": not failures, "results": results, "failures": failures}
