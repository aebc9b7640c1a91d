from __future__ import annotations

import numpy as np

from ecomgan.families import FAMILIES, ROLES, model_names
from ecomgan.seeding import latent
from serving.runtime import Signature, TensorSpec, cpu_quota


def test_cpu_quota_is_positive_and_bounded():
    import os

    assert 1 <= cpu_quota() <= (os.cpu_count() or 1)


def test_record_dtype_round_trips_batches():
    sig = Signature(
        (TensorSpec("z", "FP32", (-1, 4)), TensorSpec("label", "INT64", (-1,))),
        (TensorSpec("image", "FP32", (-1, 1, 2, 2)),),
    )
    rec = np.zeros(3, dtype=sig.record_dtype("inputs"))
    rec["z"] = np.arange(12, dtype=np.float32).reshape(3, 4)
    rec["label"] = [4, 5, 6]
    both = np.concatenate([rec, rec[:1]])  # what the adaptive batcher does
    assert both["z"].shape == (4, 4) and both["label"].dtype == np.int64
    assert Signature.from_dict(sig.to_dict()) == sig


def test_latent_is_seeded():
    np.testing.assert_array_equal(latent(3, 8, 1), latent(3, 8, 1))
    assert not np.array_equal(latent(3, 8, 1), latent(3, 8, 2))
    assert latent(3, 8, 1).dtype == np.float32


def test_registry_names():
    assert model_names()[:2] == ["products-generator", "products-discriminator"]
    for family in FAMILIES.values():
        for role in ROLES:
            assert family.max_batch_size[role] > 0 and family.max_latency_ms[role] > 0
