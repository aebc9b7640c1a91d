"""Fit the shoppers table's ``TabularTransformer`` (CTGAN's mode-specific normalisation).

Each continuous column gets a variational Gaussian mixture (scikit-learn's
``BayesianGaussianMixture``) with the settings of Xu et al. 2019: at most 10 components, a
Dirichlet-process weight prior of concentration 1e-3, and only the modes with weight > 0.005
kept. Heavy-tailed columns (counts, durations, PageValues) are fitted on ``log1p`` of their
values: their raw spread covers four orders of magnitude, which a 10-mode mixture in raw space
resolves poorly near zero, where most sessions are. Frequent exact values are atoms (see
``ATOM_SHARE``), as the "mixed" columns of CTAB-GAN (Zhao et al. 2021).
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import BayesianGaussianMixture

from ecomgan.tabular import ColumnSpec, TabularTransformer, derive_rules
from gan.shoppers.data import COLUMNS, validate_table

MAX_MODES = 10
WEIGHT_PRIOR = 1e-3
MIN_WEIGHT = 0.005
LOG_KINDS = ("count", "duration", "amount")
MIN_STD = 1e-3  # floor of a Gaussian mode's std
# Values shared by >= 1% of rows (0 for most durations, PageValues and rates; 0.2 for the
# bounce and exit rates of one-page sessions) become exact "atoms" (modes of std 0), so
# that generated rows reproduce them exactly instead of as a cloud around them.
ATOM_SHARE = 0.01
MAX_ATOMS = 10


def _atoms(values: np.ndarray) -> np.ndarray:
    """Raw values shared by at least ``ATOM_SHARE`` of the rows (at most ``MAX_ATOMS``)."""
    uniq, counts = np.unique(values, return_counts=True)
    top = np.argsort(-counts, kind="stable")[:MAX_ATOMS]
    return np.sort(uniq[top][counts[top] >= ATOM_SHARE * len(values)])


def _fit_column(name: str, kind: str, values: np.ndarray, seed: int) -> ColumnSpec:
    transform = "log1p" if kind in LOG_KINDS else "none"
    forward = np.log1p if transform == "log1p" else np.asarray
    # Counts are rounded on decoding anyway, so they need no atoms.
    atoms = np.empty(0) if kind == "count" else _atoms(values)
    rest = values[~np.isin(values, atoms)].astype(np.float64)
    means, stds = [forward(atoms)], [np.zeros(len(atoms))]
    weights = [np.array([np.mean(values == a) for a in atoms])]
    if len(rest) > 1:
        bgm = BayesianGaussianMixture(
            n_components=min(MAX_MODES, len(rest)),
            weight_concentration_prior_type="dirichlet_process",
            weight_concentration_prior=WEIGHT_PRIOR,
            max_iter=100,
            random_state=seed,
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            bgm.fit(forward(rest).reshape(-1, 1))
        keep = bgm.weights_ > MIN_WEIGHT
        means.append(bgm.means_[keep, 0])
        stds.append(np.maximum(np.sqrt(bgm.covariances_[keep].reshape(-1)), MIN_STD))
        share = len(rest) / len(values)
        weights.append(bgm.weights_[keep] / bgm.weights_[keep].sum() * share)
    mu, sd, w = (np.concatenate(a) for a in (means, stds, weights))
    order = np.argsort(mu, kind="stable")  # mode order is irrelevant to the model
    return ColumnSpec(
        name, kind, transform, tuple(mu[order].tolist()), tuple(sd[order].tolist()),
        tuple(w[order].tolist()), float(values.min()), float(values.max()),
    )  # fmt: skip


def fit_transformer(df: pd.DataFrame, seed: int = 0) -> TabularTransformer:
    """Fit the transformer on a shoppers table (normally the train split).

    Args:
        df: A table that passes ``validate_table``.
        seed: Seed of the mixtures' initialisation; same table and seed -> same transformer.

    Returns:
        The fitted transformer, with the categories' training frequencies and their pairwise
        co-occurrence.
    """
    df = validate_table(df)
    specs = []
    for i, (name, kind) in enumerate(COLUMNS.items()):
        values = df[name].to_numpy()
        if kind in ("categorical", "boolean"):
            cats, counts = np.unique(values, return_counts=True)
            specs.append(
                ColumnSpec(
                    name,
                    kind,
                    categories=tuple(cats.tolist()),
                    frequencies=tuple((counts / len(values)).tolist()),
                )
            )
        else:
            specs.append(_fit_column(name, kind, values, seed + i))
    plain = TabularTransformer(tuple(specs))
    codes = {n: plain.codes(n, df[n].to_numpy()) for n in plain.discrete_names}
    rules = derive_rules({n: df[n].to_numpy() for n in df.columns}, tuple(specs))
    return TabularTransformer(
        tuple(specs), TabularTransformer.pair_cooccurrence(codes), tuple(rules)
    )


class CondSampler:
    """Training-by-sampling (Xu et al. 2019), drawing with a ``torch.Generator``.

    A row is drawn uniformly with probability ``free_fraction`` (its conditions then come only
    from the extra columns below); otherwise a discrete column is picked uniformly, a category
    by its log-frequency, and a real row with that category. Each other discrete column of the
    drawn row is also conditioned on with probability ``extra_prob``, so that multi-column
    conditions, and the free (all-zero) vector, are in the generator's training distribution.
    """

    def __init__(
        self, transformer: TabularTransformer, df: pd.DataFrame, free_fraction: float,
        extra_prob: float,
    ) -> None:  # fmt: skip
        t = transformer
        self.free_fraction, self.extra_prob = free_fraction, extra_prob
        specs = [c for c in t.columns if c.discrete]
        self.widths = torch.tensor([c.width for c in specs])
        self.x_offsets = [t.offsets[c.name] for c in specs]
        self.cond_offsets = torch.tensor([t.cond_offsets[c.name] for c in specs])
        self.cond_dim = t.cond_dim
        self.codes = torch.stack(
            [torch.from_numpy(t.codes(c.name, df[c.name].to_numpy())) for c in specs], dim=1
        )  # (N, D)
        n, d = self.codes.shape
        counts = torch.zeros(d, int(self.widths.max()))
        for j in range(d):
            counts[j, : specs[j].width] = torch.bincount(self.codes[:, j], minlength=specs[j].width)
        # Unseen categories keep probability 0: log(0 + 1) = 0.
        self.probs = torch.log1p(counts)
        self.counts = counts.long()
        self.order = torch.argsort(self.codes, dim=0, stable=True)  # (N, D) rows by category
        self.starts = torch.cumsum(self.counts, dim=1) - self.counts  # (D, C)

    def sample(self, b: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """``(rows (b,) int64, mask (b, D) bool)``: drawn rows and their conditioned columns."""
        n, d = self.codes.shape
        col = torch.randint(d, (b,), generator=gen)
        cat = torch.multinomial(self.probs[col], 1, generator=gen)[:, 0]
        pos = self.starts[col, cat] + (
            torch.rand(b, generator=gen) * self.counts[col, cat]
        ).long().clamp_max(self.counts[col, cat] - 1)
        rows = self.order[pos, col]
        free = torch.rand(b, generator=gen) < self.free_fraction
        rows = torch.where(free, torch.randint(n, (b,), generator=gen), rows)
        mask = torch.rand(b, d, generator=gen) < self.extra_prob
        mask[torch.arange(b), col] |= ~free
        return rows, mask

    def cond(self, rows: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """float32 (b, cond_dim): one-hots of the masked columns' values of ``rows``."""
        cond = torch.zeros(len(rows), self.cond_dim)
        idx = self.cond_offsets + self.codes[rows]  # (b, D)
        r, j = mask.nonzero(as_tuple=True)
        cond[r, idx[r, j]] = 1.0
        return cond

    def cross_entropy(
        self, logits: torch.Tensor, rows: torch.Tensor, mask: torch.Tensor
    ) -> torch.Tensor:
        """Mean over the batch of the summed cross-entropy of the conditioned blocks."""
        total = logits.new_zeros(())
        codes = self.codes[rows]
        for j, (o, w) in enumerate(zip(self.x_offsets, self.widths.tolist(), strict=True)):
            ce = F.cross_entropy(logits[:, o : o + w], codes[:, j], reduction="none")
            total = total + (ce * mask[:, j]).sum()
        return total / len(rows)
