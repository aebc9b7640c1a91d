"""Turn a discriminator's raw logit into a calibrated probability that an input is synthetic.

Platt scaling (J. Platt, "Probabilistic outputs for support vector machines", 1999):
``p_fake = sigmoid(a * logit + b)``, fit by Newton's method on the cross-entropy with
Platt's smoothed targets, as in Lin, Lin and Weng (2007). A GAN discriminator scores
real inputs HIGH, so ``a`` usually comes out negative; nothing here assumes a sign.

The service imports this module: it must depend on numpy and the standard library only.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def _log_sigmoid(z: np.ndarray) -> np.ndarray:
    return -np.logaddexp(0.0, -z)


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return np.exp(_log_sigmoid(z))


def _platt_fit(x: np.ndarray, y: np.ndarray, max_iter: int = 100) -> tuple[float, float]:
    n_pos = int(y.sum())
    n_neg = y.size - n_pos
    # Platt's targets: a perfectly separable set still has a finite optimum.
    t = np.where(y == 1, (n_pos + 1.0) / (n_pos + 2.0), 1.0 / (n_neg + 2.0))

    def loss(a: float, b: float) -> float:
        z = a * x + b
        return float(-(t * _log_sigmoid(z) + (1 - t) * _log_sigmoid(-z)).sum())

    a, b = 0.0, float(np.log((n_pos + 1.0) / (n_neg + 1.0)))
    f = loss(a, b)
    for _ in range(max_iter):
        p = _sigmoid(a * x + b)
        d, w = p - t, p * (1 - p)
        grad = np.array([(d * x).sum(), d.sum()])
        if np.abs(grad).max() < 1e-9 * y.size:
            break
        hess = np.array([[(w * x * x).sum(), (w * x).sum()], [(w * x).sum(), w.sum()]])
        step = np.linalg.solve(hess + 1e-12 * np.eye(2), grad)
        lr = 1.0
        while lr > 1e-10:
            na, nb = a - lr * step[0], b - lr * step[1]
            nf = loss(na, nb)
            if nf < f + 1e-4 * lr * float(grad @ -step):
                break
            lr /= 2
        else:
            break
        a, b, f = na, nb, nf
    return float(a), float(b)


def auroc(scores_neg: np.ndarray, scores_pos: np.ndarray) -> float:
    """Area under the ROC curve via the Mann-Whitney U statistic (ties count one half).

    Args:
        scores_neg: Scores of the negative class (real inputs).
        scores_pos: Scores of the positive class (fakes); higher should mean "positive".

    Returns:
        P(score_pos > score_neg) + 0.5 * P(score_pos == score_neg).
    """
    neg = np.asarray(scores_neg, dtype=np.float64).ravel()
    pos = np.asarray(scores_pos, dtype=np.float64).ravel()
    both = np.concatenate([neg, pos])
    order = np.argsort(both, kind="mergesort")
    sorted_vals = both[order]
    ranks = np.empty(both.size)
    # Average the 1-based ranks within each run of equal values.
    starts = np.flatnonzero(np.r_[True, sorted_vals[1:] != sorted_vals[:-1]])
    ends = np.r_[starts[1:], both.size]
    ranks[order] = np.repeat((starts + ends + 1) / 2.0, ends - starts)
    rank_sum = ranks[neg.size :].sum()
    u = rank_sum - pos.size * (pos.size + 1) / 2.0
    return float(u / (pos.size * neg.size))


def apply(calibration: dict[str, Any], logits: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Calibrated probability that each input is synthetic, and the thresholded decision.

    Args:
        calibration: The dict `fit_detector` returned (needs ``a``, ``b``, ``threshold``).
        logits: Raw discriminator logits, any shape.

    Returns:
        ``(p_fake, is_fake)``: float64 probabilities and booleans, shaped like ``logits``;
        ``is_fake`` is ``p_fake > threshold``.
    """
    z = float(calibration["a"]) * np.asarray(logits, dtype=np.float64) + float(calibration["b"])
    p_fake = _sigmoid(z)
    return p_fake, p_fake > float(calibration["threshold"])


def fit_detector(
    real_logits: np.ndarray, fake_logits: np.ndarray, *, target_fpr: float = 0.01
) -> dict[str, Any]:
    """Fit Platt scaling on real (class 0) and generated (class 1) logits, and pick a threshold.

    The threshold is the smallest probability such that at most ``floor(target_fpr * n_real)``
    real inputs score strictly above it, so the measured false-positive rate on the real
    set never exceeds ``target_fpr``.

    Args:
        real_logits: Discriminator logits of real inputs.
        fake_logits: Discriminator logits of generated inputs.
        target_fpr: Largest acceptable share of real inputs flagged as synthetic, in (0, 1).

    Returns:
        JSON-able dict: ``method`` ("platt"), ``a``, ``b``, ``threshold``, ``target_fpr``,
        measured ``fpr`` and ``tpr`` at the threshold, ``auroc``, ``n_real``, ``n_fake``.

    Raises:
        ValueError: Empty or non-finite logits, or ``target_fpr`` outside (0, 1).
    """
    real = np.asarray(real_logits, dtype=np.float64).ravel()
    fake = np.asarray(fake_logits, dtype=np.float64).ravel()
    if not 0.0 < target_fpr < 1.0:
        raise ValueError(f"target_fpr must be in (0, 1), got {target_fpr}")
    for name, arr in (("real_logits", real), ("fake_logits", fake)):
        if arr.size == 0:
            raise ValueError(f"{name} is empty")
        if not np.isfinite(arr).all():
            raise ValueError(f"{name} has {int((~np.isfinite(arr)).sum())} non-finite values")

    x = np.concatenate([real, fake])
    y = np.concatenate([np.zeros(real.size), np.ones(fake.size)])
    a, b = _platt_fit(x, y)
    calibration: dict[str, Any] = {"method": "platt", "a": a, "b": b}

    p_real = np.sort(apply({**calibration, "threshold": 0.0}, real)[0])[::-1]
    allowed = int(np.floor(target_fpr * real.size))
    calibration["threshold"] = float(p_real[min(allowed, real.size - 1)])
    _, real_flagged = apply(calibration, real)
    _, fake_flagged = apply(calibration, fake)
    calibration.update(
        target_fpr=float(target_fpr),
        fpr=float(real_flagged.mean()),
        tpr=float(fake_flagged.mean()),
        auroc=auroc(a * real + b, a * fake + b),
        n_real=int(real.size),
        n_fake=int(fake.size),
    )
    return calibration
