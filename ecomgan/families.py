"""The family registry: the one place where model families are listed.

Training, export, the model store, the service and both inference protocols iterate over
`FAMILIES`; what each family's modules must provide is `ecomgan.contract`. Families come from
three places, in this order:

1. the built-in entries below (`products`, `shoppers`, `demand`, `reviews`);
2. Python entry points of the group ``ecomgan.families`` (an installed package declares
   ``[project.entry-points."ecomgan.families"] mine = "mypkg.family:FAMILY"``);
3. ``ECOMGAN_FAMILIES``: comma-separated ``module:ATTR`` references, e.g.
   ``ECOMGAN_FAMILIES=tests.toyfamily:FAMILY`` (the module must be importable, e.g. from the
   repo root, and torch-free).

Each reference names an `ecomgan.contract.Family`. The registry is read when this module is
imported, so the CLI, its subprocesses and the served bento see the same families as long as
they see the same environment (``bentoml serve`` passes it on to its workers).

This module must stay importable without torch: the service imports it.
"""

from __future__ import annotations

import importlib
import os
from importlib.metadata import entry_points
from pathlib import Path

from ecomgan.contract import ROLES, ContractError, Family

__all__ = ["ENV_VAR", "FAMILIES", "GROUP", "REPO_ROOT", "ROLES", "Family", "get_family",
           "model_names"]  # fmt: skip

REPO_ROOT = Path(__file__).resolve().parent.parent
ENV_VAR = "ECOMGAN_FAMILIES"
GROUP = "ecomgan.families"

BUILTIN: dict[str, Family] = {
    "products": Family(
        name="products",
        description="class-conditional image GAN on Fashion-MNIST product photos",
        trainer="gan.products",
        api="serving.products:ProductsAPI",
        shipped_dir=REPO_ROOT / "models" / "products",
        max_batch_size={"generator": 256, "discriminator": 256},
        max_latency_ms={"generator": 1000, "discriminator": 1000},
        # Fashion-MNIST label order (Xiao, Rasul & Vollgraf 2017).
        classes=(
            "T-shirt/top",
            "Trouser",
            "Pullover",
            "Dress",
            "Coat",
            "Sandal",
            "Shirt",
            "Sneaker",
            "Bag",
            "Ankle boot",
        ),
    ),
    "shoppers": Family(
        name="shoppers",
        description="conditional tabular GAN of shoppers' browsing sessions (CTGAN class)",
        trainer="gan.shoppers",
        api="serving.shoppers:ShoppersAPI",
        shipped_dir=REPO_ROOT / "models" / "shoppers",
        # Rows are tiny (a few hundred floats): larger batches cost little latency.
        max_batch_size={"generator": 1024, "discriminator": 1024},
        max_latency_ms={"generator": 1000, "discriminator": 1000},
    ),
    "demand": Family(
        name="demand",
        description="weekly demand scenarios and stock-out risk from a conditional sequence GAN",
        trainer="gan.demand",
        api="serving.demand:DemandAPI",
        shipped_dir=REPO_ROOT / "models" / "demand",
        # One request sends up to 10,000 paths of a few hundred floats each.
        max_batch_size={"generator": 1024, "discriminator": 1024},
        max_latency_ms={"generator": 1000, "discriminator": 1000},
    ),
    "reviews": Family(
        name="reviews",
        description="fake hotel reviews: a k+1 detector trained adversarially and a "
        "polarity-conditioned review generator (CC BY-NC-SA 3.0 data)",
        trainer="gan.reviews",
        api="serving.reviews:ReviewsAPI",
        shipped_dir=REPO_ROOT / "models" / "reviews",
        # One generator request runs up to 300 steps through the batcher: a larger queueing
        # deadline keeps a long review from being shed half-way under load.
        max_batch_size={"generator": 256, "discriminator": 256},
        max_latency_ms={"generator": 3000, "discriminator": 1000},
        classes=("negative", "positive"),
    ),
}


def _resolve(ref: str, source: str) -> Family:
    module, sep, attr = ref.strip().partition(":")
    if not (module and sep and attr):
        raise ContractError(f"{source}: {ref!r} is not module:ATTR")
    try:
        family = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as exc:
        raise ContractError(f"{source}: cannot load {ref!r}: {exc}") from None
    if not isinstance(family, Family):
        raise ContractError(f"{source}: {ref!r} is not an ecomgan.contract.Family")
    return family


def external_refs(environ: dict[str, str] | os._Environ = os.environ) -> list[tuple[str, str]]:
    """(source, ``module:ATTR``) of every family registered outside this module."""
    refs = [(f"entry point {ep.name!r} ({GROUP})", ep.value) for ep in entry_points(group=GROUP)]
    refs += [(ENV_VAR, r) for r in environ.get(ENV_VAR, "").split(",") if r.strip()]
    return refs


def load_registry(environ: dict[str, str] | os._Environ = os.environ) -> dict[str, Family]:
    """The built-in families plus the entry points' and ``ECOMGAN_FAMILIES``' ones.

    Raises:
        ContractError: A reference that does not load, is not a `Family`, or reuses a name.
    """
    families = dict(BUILTIN)
    for source, ref in external_refs(environ):
        family = _resolve(ref, source)
        known = families.get(family.name)
        if known is not None and known != family:
            raise ContractError(f"{source}: {ref!r} reuses the family name {family.name!r}")
        families[family.name] = family
    return families


FAMILIES: dict[str, Family] = load_registry()


def get_family(name: str) -> Family:
    """Return a registered family or raise a ValueError listing the known ones."""
    try:
        return FAMILIES[name]
    except KeyError:
        raise ValueError(
            f"unknown family {name!r}; known families: {', '.join(sorted(FAMILIES))}"
        ) from None


def model_names() -> list[str]:
    """Every served model name, in registry order."""
    return [f.model_name(r) for f in FAMILIES.values() for r in ROLES]
