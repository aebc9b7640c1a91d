"""Nucleus sampling of the text families (`ecomgan.text`)."""

from __future__ import annotations

import numpy as np


def test_nucleus_on_candidates_draws_what_the_full_sort_draws():
    """The candidate shortcut must give the full stable sort's token, ties and misses included."""
    from ecomgan.text import _candidate_cuts, _nucleus

    def full_sort(p, top_p, rng):
        order = np.argsort(-p, kind="stable")
        keep = order[: int(np.searchsorted(np.cumsum(p[order]), top_p)) + 1]
        q = p[keep] / p[keep].sum()
        return int(keep[min(int(np.searchsorted(np.cumsum(q), rng.random())), len(keep) - 1)])

    g = np.random.default_rng(0)
    for trial in range(300):
        logits = g.standard_normal((4, 3000)) * (0.3, 1, 3, 8)[trial % 4]
        if trial % 2:
            logits = np.round(logits, 1)  # many exact ties at the cut
        probs = np.exp(logits - logits.max(1, keepdims=True))
        probs /= probs.sum(1, keepdims=True)
        cuts = _candidate_cuts(probs)
        for row in range(4):
            for top_p in (0.5, 0.9, 0.999):
                seed = int(g.integers(2**31))
                got = _nucleus(probs[row], top_p, np.random.default_rng(seed), cuts[row])
                want = full_sort(probs[row], top_p, np.random.default_rng(seed))
                assert got == want
    assert _candidate_cuts(np.full((2, 100), 0.01)) is None  # small vocabularies: full sort
