"""The quality gates refuse a report below threshold and record an override."""

from __future__ import annotations

import copy
import json

import pytest

from ecomgan import gates
from ecomgan.gates import DEFAULTS, QualityGateError, check, enforce


def make_report(**subject) -> dict:
    """The parts of an evaluation report the gates read; every value passes by default."""
    entry = {
        "precision": 0.85,
        "recall": 0.65,
        "class_consistency": 0.92,
        "c2st": {"accuracy": 0.7},
        "memorisation_features": {"flagged_rate": 0.004},
        "memorisation_pixels": {"near_copies": 0},
    }
    entry.update(subject)
    return {
        "subject": "ours",
        "settings": {"n_samples": 10_000},
        "classifier": {"test_accuracy": 0.93},
        "generators": {"ours": entry, "baseline": {"precision": 0.1}},
        "detector": {"against": {"ours": {"auroc": 0.995, "tpr_at_1pct_fpr": 0.93}}},
    }


def test_a_good_report_passes_and_records_every_gate():
    report = make_report()
    assert check(report) == []
    meta = enforce(report)
    assert meta["passed"] and not meta["override_used"] and meta["failures"] == []
    assert {r["gate"] for r in meta["results"]} == set(DEFAULTS)
    assert meta["thresholds"] == DEFAULTS
    json.dumps(meta)  # goes into the manifest as it is


def test_a_report_below_threshold_is_refused_with_every_failure_listed():
    report = make_report(recall=0.1, class_consistency=0.80)
    failures = check(report)
    assert [f.split(":")[0] for f in failures] == ["class_consistency_gap_max", "recall_min"]
    with pytest.raises(QualityGateError) as err:
        enforce(report)
    assert err.value.failures == failures
    assert "recall_min" in str(err.value) and "--allow-below-gates" in str(err.value)


def test_the_override_exports_anyway_and_is_recorded():
    meta = enforce(make_report(precision=0.2), override=True)
    assert meta["override_used"] is True
    assert meta["passed"] is False
    assert meta["failures"] == ["precision_min: 0.2 is not >= 0.6"]
    row = next(r for r in meta["results"] if r["gate"] == "precision_min")
    assert row == {"gate": "precision_min", "value": 0.2, "op": ">=", "threshold": 0.6,
                   "ok": False}  # fmt: skip
    # An override of a passing report is not "used".
    assert enforce(make_report(), override=True)["override_used"] is False


def test_an_unmeasured_metric_fails_its_gate():
    report = make_report()
    del report["detector"]
    assert check(report) == [
        "detector_auroc_min: not measured in the report",
        "detector_tpr_min: not measured in the report",
    ]


def test_a_report_on_too_few_samples_is_refused():
    report = make_report()
    report["settings"]["n_samples"] = 1000  # small N inflates recall: no gaming the floors
    assert check(report) == ["samples_min: 1000 is not >= 10000"]


def test_thresholds_can_be_tightened_or_disabled():
    report = make_report()
    del report["detector"]
    relaxed = {**DEFAULTS, "detector_auroc_min": None, "detector_tpr_min": None}
    assert check(report, relaxed) == []
    assert check(report, {"precision_min": 0.9}) == ["precision_min: 0.85 is not >= 0.9"]
    with pytest.raises(ValueError, match="unknown quality gates"):
        check(report, {"fid_max": 10.0})


def test_gates_read_the_subject_not_another_generator():
    report = make_report()
    swapped = copy.deepcopy(report)
    swapped["subject"] = "baseline"
    assert check(report) == []
    assert any(f.startswith("precision_min") for f in check(swapped))
    assert gates.results(report)[0]["gate"] == "class_consistency_gap_max"
