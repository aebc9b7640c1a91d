"""A toy family defined only here, to prove the family contract (README "Adding a family").

A 1-D mixture GAN: the generator maps ``z`` (B, 2) to ``x`` (B, 1), the discriminator maps
``x`` to a logit. It plugs in with one registry entry, ``ECOMGAN_FAMILIES=tests.toyfamily:FAMILY``
(run from the repo root), and nothing outside this folder knows it. This module stays
torch-free: the service imports it.
"""

from __future__ import annotations

from pathlib import Path

from ecomgan.contract import Family

FAMILY = Family(
    name="toy",
    description="1-D Gaussian-mixture GAN (a test family)",
    trainer="tests.toyfamily.trainer",
    api="tests.toyfamily.api:ToyAPI",
    shipped_dir=Path(__file__).resolve().parent / "shipped",  # none: nothing ships
    max_batch_size={"generator": 64, "discriminator": 64},
    max_latency_ms={"generator": 5, "discriminator": 5},
)
