"""Known-answer tests of gan.metrics: FID, precision/recall, C2ST, memorisation, ROC."""

from __future__ import annotations

import numpy as np
import pytest

from ecomgan.calibration import auroc
from gan import metrics


@pytest.fixture(scope="module")
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


def test_fid_of_a_set_against_itself_is_zero(rng):
    x = rng.normal(size=(500, 8))
    assert metrics.fid(x, x) == pytest.approx(0.0, abs=1e-8)


def test_fid_matches_the_closed_form_for_gaussians():
    # N(0, I) vs N(m, s^2 I) in d dims: |m|^2 + d (1 + s^2 - 2 s).
    d, m, s = 4, 1.0, 2.0
    got = metrics.frechet_distance(np.zeros(d), np.eye(d), np.full(d, m), s**2 * np.eye(d))
    assert got == pytest.approx(d * m**2 + d * (1 + s**2 - 2 * s))
    # ...and for non-commuting covariances, against the definition Tr((S1 S2)^(1/2)).
    a = np.array([[2.0, 0.5], [0.5, 1.0]])
    b = np.array([[1.0, -0.3], [-0.3, 0.5]])
    w, v = np.linalg.eig(a @ b)
    tr = np.sqrt(w.astype(complex)).real.sum()
    want = np.trace(a) + np.trace(b) - 2 * tr
    assert metrics.frechet_distance(np.zeros(2), a, np.zeros(2), b) == pytest.approx(want)


def test_fid_is_small_for_one_distribution_and_large_for_shifted_sets(rng):
    a, b = rng.normal(size=(2000, 8)), rng.normal(size=(2000, 8))
    assert metrics.fid(a, b) < 0.1
    assert metrics.fid(a, b + 3.0) > 70  # ~ |shift|^2 = 8 * 9


def test_precision_recall_is_one_for_the_same_set_and_zero_for_disjoint_sets(rng):
    x = rng.normal(size=(300, 5))
    assert metrics.precision_recall(x, x) == {"precision": 1.0, "recall": 1.0}
    far = metrics.precision_recall(x, x + 50.0)
    assert far == {"precision": 0.0, "recall": 0.0}


def test_recall_drops_when_the_fakes_collapse_onto_one_mode(rng):
    real = rng.normal(size=(600, 2))
    collapsed = rng.normal(size=(600, 2)) * 0.05 + 1.0  # all fakes in one small region
    pr = metrics.precision_recall(real, collapsed)
    assert pr["precision"] > 0.9  # each fake is plausible...
    assert pr["recall"] < 0.1  # ...but they cover almost none of the real data


def test_c2st_is_chance_on_one_distribution_and_perfect_on_separable_sets(rng):
    a, b = rng.normal(size=(2000, 10)), rng.normal(size=(2000, 10))
    same = metrics.c2st(a, b)
    assert abs(same["accuracy"] - 0.5) < 0.04
    assert same["p_value"] > 0.01
    apart = metrics.c2st(a, b + 2.0)
    assert apart["accuracy"] > 0.99
    assert apart["p_value"] < 1e-6


def test_memorisation_flags_exact_copies_and_not_fresh_samples(rng):
    train, test = rng.normal(size=(2000, 16)), rng.normal(size=(500, 16))
    honest = metrics.memorisation(rng.normal(size=(300, 16)), train, test)
    assert honest["near_copies"] == 0
    assert honest["flagged_rate"] < 0.05
    assert 0.9 < honest["ratio_median"] < 1.1
    copier = np.concatenate([train[:100], rng.normal(size=(200, 16))])
    memo = metrics.memorisation(copier, train, test)
    assert memo["near_copies"] == 100
    assert memo["flagged_rate"] >= 100 / 300
    assert memo["fake_quantiles"]["0.25"] == pytest.approx(0.0, abs=1e-6)


def test_memorisation_works_in_float32_pixel_space(rng):
    train = rng.uniform(-1, 1, size=(1000, 784)).astype(np.float32)
    test = rng.uniform(-1, 1, size=(200, 784)).astype(np.float32)
    fakes = np.concatenate([train[:10], test[:40] * 0.9])
    assert metrics.memorisation(fakes, train, test)["near_copies"] == 10


def test_roc_summaries_agree_with_the_mann_whitney_auroc(rng):
    neg, pos = rng.normal(size=800), rng.normal(size=700) + 1.5
    fpr, tpr = metrics.roc_curve(neg, pos)
    assert np.trapezoid(tpr, fpr) == pytest.approx(auroc(neg, pos))
    assert fpr[0] == tpr[0] == 0.0 and fpr[-1] == tpr[-1] == 1.0
    assert 0.0 < metrics.tpr_at_fpr(neg, pos, 0.01) < metrics.tpr_at_fpr(neg, pos, 0.1) < 1.0
    assert metrics.average_precision(neg, pos + 100) == 1.0
    assert metrics.tpr_at_fpr(neg, pos + 100, 0.01) == 1.0
    # Random scores: AP ~ the positive share.
    assert metrics.average_precision(neg, rng.normal(size=700)) == pytest.approx(7 / 15, abs=0.05)
