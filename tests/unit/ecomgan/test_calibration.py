"""ecomgan.calibration: Platt scaling, a conservative threshold, and numpy-only imports."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from ecomgan.calibration import apply, auroc, fit_detector


def logits(seed: int, real_mean: float, fake_mean: float, n_real=2000, n_fake=2000):
    rng = np.random.default_rng(seed)
    return rng.normal(real_mean, 1.0, n_real), rng.normal(fake_mean, 1.0, n_fake)


def test_separable_logits():
    real, fake = logits(0, 6.0, -6.0)
    cal = fit_detector(real, fake)
    assert cal["auroc"] > 0.9999
    assert cal["a"] < 0  # discriminators score real inputs high
    assert cal["fpr"] <= 0.01 and cal["tpr"] > 0.99
    assert (cal["n_real"], cal["n_fake"], cal["method"], cal["target_fpr"]) == (
        2000,
        2000,
        "platt",
        0.01,
    )


def test_inseparable_logits():
    real, fake = logits(1, 0.0, 0.0)
    cal = fit_detector(real, fake)
    assert cal["auroc"] == pytest.approx(0.5, abs=0.03)
    assert abs(cal["a"]) < 0.1
    assert cal["fpr"] <= 0.01 and cal["tpr"] < 0.05


def test_recovers_true_log_odds():
    # Unit-variance Gaussians at +1 (real) and -1 (fake): log-odds of "fake" is exactly -2x.
    real, fake = logits(2, 1.0, -1.0, 20000, 20000)
    cal = fit_detector(real, fake)
    assert cal["a"] == pytest.approx(-2.0, abs=0.1)
    assert cal["b"] == pytest.approx(0.0, abs=0.05)


def test_sign_is_learned_not_assumed():
    real, fake = logits(3, -4.0, 4.0)
    cal = fit_detector(real, fake)
    assert cal["a"] > 0 and cal["auroc"] > 0.99


@pytest.mark.parametrize("target_fpr", [0.001, 0.01, 0.05, 0.2])
@pytest.mark.parametrize("n_real", [7, 50, 999])
def test_measured_fpr_never_exceeds_target(target_fpr, n_real):
    rng = np.random.default_rng(n_real)
    real = np.round(rng.normal(1.0, 1.0, n_real), 1)  # rounding creates ties
    fake = rng.normal(-1.0, 1.0, 300)
    cal = fit_detector(real, fake, target_fpr=target_fpr)
    _, flagged = apply(cal, real)
    assert cal["fpr"] == flagged.mean() <= target_fpr
    _, flagged_fake = apply(cal, fake)
    assert cal["tpr"] == flagged_fake.mean()


def test_apply_keeps_shape_and_thresholds():
    real, fake = logits(4, 2.0, -2.0)
    cal = fit_detector(real, fake)
    batch = np.array([[5.0, -5.0], [0.0, 1.0]], dtype=np.float32)
    p_fake, is_fake = apply(cal, batch)
    assert p_fake.shape == is_fake.shape == (2, 2)
    assert ((p_fake > 0) & (p_fake < 1)).all()
    assert np.array_equal(is_fake, p_fake > cal["threshold"])
    assert p_fake[0, 1] > p_fake[0, 0]


def test_result_is_plain_json():
    cal = fit_detector(*logits(5, 1.0, -1.0, 100, 80))
    assert json.loads(json.dumps(cal, allow_nan=False)) == cal
    assert all(type(v) in (str, int, float) for v in cal.values())


def test_auroc_rank_statistic():
    assert auroc([0.0, 1.0], [1.0, 2.0]) == 0.875
    assert auroc([1.0, 1.0], [1.0]) == 0.5
    assert auroc([3.0], [1.0, 2.0]) == 0.0


@pytest.mark.parametrize(
    ("real", "fake", "kwargs", "match"),
    [
        ([], [1.0], {}, "real_logits is empty"),
        ([1.0], [np.nan], {}, "fake_logits has 1 non-finite"),
        ([1.0], [2.0], {"target_fpr": 0.0}, "target_fpr"),
        ([1.0], [2.0], {"target_fpr": 1.0}, "target_fpr"),
    ],
)
def test_rejects_bad_input(real, fake, kwargs, match):
    with pytest.raises(ValueError, match=match):
        fit_detector(np.array(real), np.array(fake), **kwargs)


def test_imports_only_numpy_and_stdlib():
    code = (
        "import sys, ecomgan.calibration\n"
        "heavy = {'torch', 'onnx', 'onnxruntime', 'bentoml', 'gan', 'export'}\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
