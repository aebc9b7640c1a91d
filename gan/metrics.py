"""Sample-quality metrics on feature embeddings, in numpy alone (no scipy, no torch).

Every function takes ``(N, D)`` arrays of features (e.g. a domain classifier's
penultimate activations, see ``gan.products.classifier``) or flattened pixels:

- ``fid``: Frechet distance between Gaussians fitted to two sets (Heusel et al. 2017).
- ``precision_recall``: improved precision and recall with k-NN manifolds
  (Kynkaenniemi et al. 2019, k = 3).
- ``c2st``: classifier two-sample test (Lopez-Paz & Oquab 2017): held-out accuracy of a
  logistic regression told to separate the sets; 0.5 means indistinguishable.
- ``nearest_distances`` / ``memorisation``: nearest-training-neighbour distances of
  generated samples against those of real held-out samples, to catch copies.
- ``roc_curve`` / ``average_precision`` / ``tpr_at_fpr``: detector summaries.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np


def _as2d(x: np.ndarray) -> np.ndarray:
    # float32 stays float32 (pixel sets are large); anything else becomes float64.
    x = np.asarray(x)
    x = x if x.dtype == np.float32 else x.astype(np.float64)
    return x.reshape(len(x), -1)


def _sqrtm_psd(m: np.ndarray) -> np.ndarray:
    """Square root of a symmetric positive semi-definite matrix via eigh."""
    w, v = np.linalg.eigh((m + m.T) / 2)
    return (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T


def gaussian_stats(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and (unbiased) covariance of ``features`` (N, D), N >= 2."""
    x = _as2d(features).astype(np.float64)
    if len(x) < 2:
        raise ValueError(f"need at least 2 samples for a covariance, got {len(x)}")
    return x.mean(0), np.cov(x, rowvar=False)


def frechet_distance(
    mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray
) -> float:
    """||mu1 - mu2||^2 + Tr(S1 + S2 - 2 (S1 S2)^(1/2)) (Dowson & Landau 1982).

    ``Tr((S1 S2)^(1/2))`` equals ``Tr((A S2 A)^(1/2))`` with ``A = S1^(1/2)``; the latter
    is symmetric PSD, so two ``eigh`` calls replace scipy's general ``sqrtm`` and no
    complex parts or "singular product" fix-ups arise.
    """
    a = _sqrtm_psd(np.atleast_2d(sigma1))
    inner = a @ np.atleast_2d(sigma2) @ a
    tr_covmean = float(np.sqrt(np.clip(np.linalg.eigvalsh((inner + inner.T) / 2), 0, None)).sum())
    diff = np.asarray(mu1, dtype=np.float64) - np.asarray(mu2, dtype=np.float64)
    value = float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * tr_covmean)
    return max(value, 0.0)  # rounding can leave -1e-12 for identical sets


def fid(real: np.ndarray, fake: np.ndarray) -> float:
    """Frechet Inception Distance (Heusel et al. 2017) computed on the given features.

    Lower is better; 0 for identical sets. Like every FID it is biased upwards for small
    N, so only compare values computed with the same sample sizes and feature extractor.
    """
    return frechet_distance(*gaussian_stats(real), *gaussian_stats(fake))


def _sq_dists(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    d = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * (a @ b.T)
    return np.clip(d, 0.0, None)


def _kth_nn_radius(x: np.ndarray, k: int, chunk: int) -> np.ndarray:
    # Distance of every point to its k-th nearest neighbour in x, itself excluded.
    radii = np.empty(len(x))
    for s in range(0, len(x), chunk):
        d = _sq_dists(x[s : s + chunk], x)
        d[np.arange(len(d)), np.arange(s, s + len(d))] = np.inf
        radii[s : s + chunk] = np.sqrt(np.partition(d, k - 1, axis=1)[:, k - 1])
    return radii


def _coverage(queries: np.ndarray, ref: np.ndarray, radii: np.ndarray, chunk: int) -> float:
    # Share of queries inside at least one ball B(ref_j, radii_j).
    inside = np.zeros(len(queries), dtype=bool)
    r2 = radii**2
    for s in range(0, len(queries), chunk):
        inside[s : s + chunk] = (_sq_dists(queries[s : s + chunk], ref) <= r2[None, :]).any(1)
    return float(inside.mean())


def precision_recall(
    real: np.ndarray, fake: np.ndarray, k: int = 3, chunk: int = 1024
) -> dict[str, float]:
    """Improved precision and recall (Kynkaenniemi et al. 2019).

    Each set's manifold is the union of balls around its points with radius the distance
    to the k-th nearest neighbour. Precision is the share of fakes inside the real
    manifold (fidelity); recall is the share of reals inside the fake manifold (coverage
    of the real distribution). Use equal set sizes: the radii shrink as N grows.

    Returns:
        ``{"precision": ..., "recall": ...}``, each in [0, 1].
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    real, fake = _as2d(real), _as2d(fake)
    if min(len(real), len(fake)) <= k:
        raise ValueError(f"need more than k={k} samples in each set")
    precision = _coverage(fake, real, _kth_nn_radius(real, k, chunk), chunk)
    recall = _coverage(real, fake, _kth_nn_radius(fake, k, chunk), chunk)
    return {"precision": precision, "recall": recall}


def _logistic_fit(x: np.ndarray, y: np.ndarray, l2: float, iters: int = 50) -> np.ndarray:
    # L2-regularised logistic regression by Newton's method (IRLS); x has a bias column.
    w = np.zeros(x.shape[1])
    reg = l2 * np.eye(x.shape[1])
    reg[-1, -1] = 0.0  # no penalty on the bias
    for _ in range(iters):
        p = 1.0 / (1.0 + np.exp(-np.clip(x @ w, -30, 30)))
        grad = x.T @ (p - y) + reg @ w
        hess = (x * (p * (1 - p))[:, None]).T @ x + reg + 1e-9 * np.eye(len(w))
        step = np.linalg.solve(hess, grad)
        w -= step
        if np.abs(step).max() < 1e-8:
            break
    return w


def c2st(
    real: np.ndarray, fake: np.ndarray, *, seed: int = 0, test_fraction: float = 0.5,
    l2: float = 1.0,
) -> dict[str, float]:  # fmt: skip
    """Classifier two-sample test (Lopez-Paz & Oquab 2017) with a logistic regression.

    The two sets are subsampled to equal size, shuffled and split; a standardised,
    L2-regularised logistic regression is fit on one part and scored on the other.
    Held-out accuracy near 0.5 means the classifier cannot tell the sets apart (under
    H0 it is ~ N(0.5, 0.25 / n_test)); near 1 means they are separable. A linear model on
    good features is a deliberately modest critic: the fine-tuned detector
    (``gan.products.detector``) is the strong one.

    Returns:
        ``accuracy`` (held-out), ``p_value`` (one-sided, normal approximation under H0),
        ``n_train`` and ``n_test``.
    """
    real, fake = _as2d(real), _as2d(fake)
    n = min(len(real), len(fake))
    rng = np.random.default_rng(seed)
    x = np.concatenate([real[rng.permutation(len(real))[:n]], fake[rng.permutation(len(fake))[:n]]])
    y = np.r_[np.zeros(n), np.ones(n)]
    order = rng.permutation(2 * n)
    x, y = x[order], y[order]
    n_test = max(2, int(round(test_fraction * 2 * n)))
    if 2 * n - n_test < 2:
        raise ValueError("too few samples for a two-sample test")
    xtr, ytr, xte, yte = x[n_test:], y[n_test:], x[:n_test], y[:n_test]
    mu, sd = xtr.mean(0), xtr.std(0) + 1e-8
    w = _logistic_fit(np.c_[(xtr - mu) / sd, np.ones(len(xtr))], ytr, l2)
    acc = float(((np.c_[(xte - mu) / sd, np.ones(len(xte))] @ w > 0) == (yte == 1)).mean())
    z = (acc - 0.5) / math.sqrt(0.25 / n_test)
    p_value = 0.5 * math.erfc(z / math.sqrt(2.0))
    return {"accuracy": acc, "p_value": p_value, "n_train": len(xtr), "n_test": n_test}


def nearest_distances(queries: np.ndarray, ref: np.ndarray, chunk: int = 512) -> np.ndarray:
    """Euclidean distance of each query (N, D) to its nearest neighbour in ``ref`` (M, D)."""
    queries, ref = _as2d(queries), _as2d(ref)
    out = np.empty(len(queries))
    chunk = max(1, min(chunk, (1 << 26) // max(len(ref), 1)))  # <= 512 MB per block
    for s in range(0, len(queries), chunk):
        out[s : s + chunk] = np.sqrt(_sq_dists(queries[s : s + chunk], ref).min(1))
    return out


QUANTILES = (0.01, 0.05, 0.25, 0.5)


def memorisation(
    fake: np.ndarray, train: np.ndarray, heldout: np.ndarray, *, chunk: int = 512
) -> dict[str, Any]:
    """Compare generated-to-train with held-out-real-to-train nearest-neighbour distances.

    A generator that copies training images puts many samples much closer to the
    training set than fresh real images ever are. Held-out reals set the scale: a fake
    is flagged when it is closer to its nearest training image than 99% of held-out reals
    are (the 1% quantile), so an honest generator flags about 1% or fewer. A near copy is
    a fake within 1% of the held-out median distance of a training sample: visually the
    same image (the margin absorbs float32 rounding in pixel space).

    Args:
        fake: Generated samples (N, D) (features or flattened pixels).
        train: The training set, or a subset of it (M, D).
        heldout: Real samples not in ``train`` (e.g. the test split), (K, D).
        chunk: Queries per distance block (memory ~ chunk * M * 8 bytes).

    Returns:
        ``ratio_median`` (median fake NN distance / median held-out NN distance; < 1
        means closer than real data), per-quantile distances of both, ``flagged_rate``,
        ``near_copies`` (count) and the distances themselves (``fake_distances``,
        ``heldout_distances``) for plotting.
    """
    d_fake = nearest_distances(fake, train, chunk)
    d_real = nearest_distances(heldout, train, chunk)
    threshold = float(np.quantile(d_real, 0.01))
    return {
        "ratio_median": float(np.median(d_fake) / max(np.median(d_real), 1e-12)),
        "fake_quantiles": {str(q): float(np.quantile(d_fake, q)) for q in QUANTILES},
        "heldout_quantiles": {str(q): float(np.quantile(d_real, q)) for q in QUANTILES},
        "flag_threshold": threshold,
        "flagged_rate": float((d_fake < threshold).mean()),
        "near_copies": int((d_fake <= 0.01 * np.median(d_real)).sum()),
        "fake_distances": d_fake,
        "heldout_distances": d_real,
    }


def roc_curve(neg: np.ndarray, pos: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(FPR, TPR) at every threshold, for scores where higher means "positive"."""
    neg, pos = np.asarray(neg, np.float64).ravel(), np.asarray(pos, np.float64).ravel()
    thresholds = np.unique(np.concatenate([neg, pos]))[::-1]
    neg_s, pos_s = np.sort(neg), np.sort(pos)
    fpr = 1.0 - np.searchsorted(neg_s, thresholds, side="left") / len(neg)
    tpr = 1.0 - np.searchsorted(pos_s, thresholds, side="left") / len(pos)
    return np.r_[0.0, fpr], np.r_[0.0, tpr]


def tpr_at_fpr(neg: np.ndarray, pos: np.ndarray, fpr: float = 0.01) -> float:
    """Largest TPR over thresholds whose FPR on ``neg`` is at most ``fpr``."""
    f, t = roc_curve(neg, pos)
    return float(t[f <= fpr + 1e-12].max())


def average_precision(neg: np.ndarray, pos: np.ndarray) -> float:
    """Average precision (area under the precision-recall curve, step-wise) for ``pos``."""
    neg, pos = np.asarray(neg, np.float64).ravel(), np.asarray(pos, np.float64).ravel()
    scores = np.r_[neg, pos]
    labels = np.r_[np.zeros(len(neg)), np.ones(len(pos))]
    order = np.argsort(-scores, kind="mergesort")
    s, y = scores[order], labels[order]
    tp, fp = np.cumsum(y), np.cumsum(1 - y)
    last = np.r_[s[1:] != s[:-1], True]  # evaluate at the end of each run of ties
    tp, fp = tp[last], fp[last]
    precision, recall = tp / (tp + fp), tp / len(pos)
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))
