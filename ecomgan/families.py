"""The family registry: the one place where a model family declares itself.

A family is a pair of networks (generator, discriminator) plus the code that
trains them, the recipe that exports them and the user-facing API that serves
them. Training, export, the model store, the service and both inference
protocols iterate over this registry, so adding a family means adding one
entry here and the modules it names; nothing else is rewired.

This module must stay importable without torch: the service imports it.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
ROLES = ("generator", "discriminator")


@dataclass(frozen=True)
class Family:
    """How one model family plugs into the pipeline.

    Attributes:
        name: Short name, used in CLI flags, model-store tags and OIP model names.
        description: One line for `ecomgan families` and docs.
        trainer: ``module:attr`` of the torch-side family module (imported lazily,
            it needs torch). The module provides ``TrainConfig``, ``train``,
            ``sample`` and ``exportables``.
        api: ``module:attr`` of the serving-side family API (numpy/onnxruntime only).
        shipped_dir: Folder of the default ONNX models committed to the repo.
        max_batch_size: Adaptive-batching cap of each role's batchable API.
        max_latency_ms: Adaptive-batching deadline of each role's batchable API.
        classes: Names of the conditioning classes, index = label (empty if unconditional).
        quality_gates: Whether `ecomgan export` enforces `ecomgan.gates` (needs an evaluation).
        evaluator: ``module:function`` behind `ecomgan evaluate`, called as
            ``f(checkpoint, out_dir, *, data_dir, n_samples, seed, quick)``; it writes
            ``report.md`` (and more) into ``out_dir``. Empty: the CLI's own path (products).
    """

    name: str
    description: str
    trainer: str
    api: str
    shipped_dir: Path
    max_batch_size: dict[str, int]
    max_latency_ms: dict[str, int]
    classes: tuple[str, ...] = ()
    quality_gates: bool = False
    evaluator: str = ""

    def model_name(self, role: str) -> str:
        """Model-store and OIP name of one role, e.g. ``products-generator``."""
        if role not in ROLES:
            raise ValueError(f"unknown role {role!r}; expected one of {ROLES}")
        return f"{self.name}-{role}"

    def load_trainer(self) -> Any:
        return _import(self.trainer)

    def load_api(self) -> Any:
        return _import(self.api)

    def load_evaluator(self) -> Any:
        if not self.evaluator:
            raise ValueError(f"family {self.name!r} has no evaluator")
        return _import(self.evaluator)


def _import(ref: str) -> Any:
    module, _, attr = ref.partition(":")
    obj = importlib.import_module(module)
    return getattr(obj, attr) if attr else obj


FAMILIES: dict[str, Family] = {
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
        quality_gates=True,
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
        evaluator="gan.shoppers.evaluate:evaluate",
    ),
}


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
