"""The canonical seed -> latent mapping, shared by training-side sampling and the service."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np


def latent(n: int, nz: int, seed: int) -> np.ndarray:
    """Draw `n` standard-normal latent vectors of size `nz` from a seeded PCG64 stream.

    Numpy (not torch) so that the torch-free service and `ecomgan sample` give identical
    images for the same seed.

    Returns:
        float32 array of shape (n, nz).
    """
    rng = np.random.Generator(np.random.PCG64(seed))
    return rng.standard_normal((n, nz), dtype=np.float32)


def latent_chunks(n: int, nz: int, seed: int, chunk: int) -> Iterator[np.ndarray]:
    """`latent(n, nz, seed)` in pieces of at most `chunk` rows, drawn lazily.

    The pieces come from one PCG64 stream, so their concatenation equals `latent(n, nz, seed)`
    (numpy's normal sampler consumes the stream the same way whatever the array shape): a bulk
    export holds one chunk in memory and still writes the rows the API gives for that seed.
    """
    if chunk < 1:
        raise ValueError(f"chunk must be >= 1, got {chunk}")
    rng = np.random.Generator(np.random.PCG64(seed))
    for start in range(0, n, chunk):
        yield rng.standard_normal((min(chunk, n - start), nz), dtype=np.float32)
