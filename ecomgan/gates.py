"""Quality gates: refuse to ship a model whose evaluation falls below documented floors.

``ecomgan evaluate --family products`` writes a report (``gan.products.evaluate``); the
export checks it with ``enforce`` before the model may become the default, and records
the outcome (thresholds, values, whether ``--allow-below-gates`` overrode a failure) in
the manifest. This module only reads a dict, so it imports neither torch nor numpy.

The floors are deliberately looser than the shipped models' targets (see README,
"Quality"): they catch a broken or collapsed model, not a slightly worse one.

=============================  =======  =====================================================
gate                           default  why
=============================  =======  =====================================================
class_consistency_gap_max      0.05     fakes must be classified as the requested category
                                        almost as often as real test images are (a
                                        conditional model that ignores its label fails)
precision_min                  0.60     share of fakes on the real-data manifold
                                        (Kynkaenniemi et al. 2019, k=3); real train images
                                        score ~0.75 in the classifier's 128-d features
recall_min                     0.40     share of real images the fakes cover; mode
                                        collapse drives it towards 0
c2st_accuracy_max              0.90     a linear classifier on features must not separate
                                        fakes from reals almost perfectly (Lopez-Paz &
                                        Oquab 2017; 0.5 = indistinguishable)
memorisation_flagged_max       0.05     share of fakes closer to a training image than 99%
                                        of real test images are (~0.01 when not copying)
near_copies_max                0        fakes that are pixel copies of training images
detector_auroc_min             0.95     the shipped discriminator must detect the shipped
                                        generator's fakes (held-out AUROC)
detector_tpr_min               0.50     ...and flag at least half of them at 1% FPR
samples_min                    10000    fakes per generator in the report: precision, recall
                                        and FID move with the sample size, and the floors
                                        above were set at 10,000
=============================  =======  =====================================================

A threshold set to ``None`` disables its gate. A metric missing from the report fails its
gate: an unmeasured model is not a passing one.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Any

DEFAULTS: dict[str, float | None] = {
    "class_consistency_gap_max": 0.05,
    "precision_min": 0.60,
    "recall_min": 0.40,
    "c2st_accuracy_max": 0.90,
    "memorisation_flagged_max": 0.05,
    "near_copies_max": 0,
    "detector_auroc_min": 0.95,
    "detector_tpr_min": 0.50,
    "samples_min": 10_000,
}


class QualityGateError(RuntimeError):
    """The report is below at least one gate; ``failures`` lists them."""

    def __init__(self, failures: list[str]) -> None:
        super().__init__(
            "quality gates failed: "
            + "; ".join(failures)
            + " (pass --allow-below-gates to export anyway; the override is recorded)"
        )
        self.failures = failures


def _subject(r: dict[str, Any]) -> dict[str, Any]:
    return r["generators"][r["subject"]]


# gate -> (metric read from the report, comparison that must hold against the threshold)
_GATES: dict[str, tuple[Callable[[dict[str, Any]], float], str]] = {
    "class_consistency_gap_max": (
        lambda r: r["classifier"]["test_accuracy"] - _subject(r)["class_consistency"], "<="),
    "precision_min": (lambda r: _subject(r)["precision"], ">="),
    "recall_min": (lambda r: _subject(r)["recall"], ">="),
    "c2st_accuracy_max": (lambda r: _subject(r)["c2st"]["accuracy"], "<="),
    "memorisation_flagged_max": (
        lambda r: _subject(r)["memorisation_features"]["flagged_rate"], "<="),
    "near_copies_max": (lambda r: _subject(r)["memorisation_pixels"]["near_copies"], "<="),
    "detector_auroc_min": (lambda r: r["detector"]["against"][r["subject"]]["auroc"], ">="),
    "detector_tpr_min": (
        lambda r: r["detector"]["against"][r["subject"]]["tpr_at_1pct_fpr"], ">="),
    "samples_min": (lambda r: r["settings"]["n_samples"], ">="),
}  # fmt: skip
_OPS = {"<=": operator.le, ">=": operator.ge}


def results(
    report: dict[str, Any], thresholds: dict[str, float | None] = DEFAULTS
) -> list[dict[str, Any]]:
    """Every enabled gate with its measured value and verdict.

    Args:
        report: An evaluation report (``gan.products.evaluate.evaluate_generators``).
        thresholds: Gate -> threshold; ``None`` disables a gate. Unknown names raise.

    Returns:
        ``[{"gate", "value" (None if not measured), "op", "threshold", "ok"}, ...]``.

    Raises:
        ValueError: On a gate name that does not exist.
    """
    unknown = set(thresholds) - set(_GATES)
    if unknown:
        raise ValueError(f"unknown quality gates {sorted(unknown)}; known: {sorted(_GATES)}")
    out = []
    for gate, threshold in thresholds.items():
        if threshold is None:
            continue
        get, op = _GATES[gate]
        try:
            value: float | None = float(get(report))
        except (KeyError, TypeError):
            value = None
        ok = value is not None and _OPS[op](value, threshold)
        out.append({"gate": gate, "value": value, "op": op, "threshold": threshold, "ok": ok})
    return out


def check(report: dict[str, Any], thresholds: dict[str, float | None] = DEFAULTS) -> list[str]:
    """Human-readable failures; an empty list means every enabled gate passed."""
    return [
        f"{g['gate']}: not measured in the report" if g["value"] is None
        else f"{g['gate']}: {g['value']:.4g} is not {g['op']} {g['threshold']:g}"
        for g in results(report, thresholds) if not g["ok"]
    ]  # fmt: skip


def enforce(
    report: dict[str, Any],
    override: bool = False,
    thresholds: dict[str, float | None] = DEFAULTS,
) -> dict[str, Any]:
    """Check the report; raise unless it passes or ``override`` is set.

    Args:
        report: An evaluation report.
        override: Export even below the gates (``--allow-below-gates``); recorded.
        thresholds: Gate -> threshold (``None`` disables a gate).

    Returns:
        JSON-able metadata for the manifest: ``thresholds``, ``results``, ``failures``,
        ``passed`` and ``override_used`` (True only when a failure was overridden).

    Raises:
        QualityGateError: If a gate fails and ``override`` is False.
    """
    rows = results(report, thresholds)
    failures = check(report, thresholds)
    if failures and not override:
        raise QualityGateError(failures)
    return {
        "thresholds": dict(thresholds),
        "results": rows,
        "failures": failures,
        "passed": not failures,
        "override_used": bool(failures) and override,
    }
