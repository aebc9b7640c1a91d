"""The seeded latent stream, whole and in chunks."""

from __future__ import annotations

import numpy as np
import pytest

from ecomgan.seeding import latent, latent_chunks


@pytest.mark.parametrize("chunk", [1, 7, 500, 1000, 5000])
def test_chunks_concatenate_to_the_whole_draw(chunk):
    parts = list(latent_chunks(1001, 13, seed=42, chunk=chunk))
    assert max(len(p) for p in parts) <= chunk and sum(len(p) for p in parts) == 1001
    assert np.array_equal(np.concatenate(parts), latent(1001, 13, 42))


def test_chunks_are_lazy_and_checked():
    stream = latent_chunks(10**9, 4, seed=1, chunk=2)
    assert next(stream).shape == (2, 4)  # a billion rows are never drawn at once
    with pytest.raises(ValueError, match="chunk must be >= 1"):
        next(latent_chunks(3, 4, seed=1, chunk=0))
