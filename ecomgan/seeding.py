"""The canonical seed -> latent mapping, shared by training-side sampling and the service."""

from __future__ import annotations

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
