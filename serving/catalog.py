"""The catalog of served models: one entry per family and role, read from the model store."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field

from ecomgan.families import FAMILIES, ROLES, Family
from serving.runtime import Signature

logger = logging.getLogger("ecomgan.catalog")

PLATFORM = "onnxruntime_onnx"


@dataclass(frozen=True)
class ServedModel:
    """A model as every protocol describes it.

    Attributes:
        name: ``<family>-<role>``, the model-store and OIP name.
        family: The family's registry entry.
        role: ``generator`` or ``discriminator``.
        version: The model-store version being served.
        signature: Inputs and outputs (batch axis -1).
        metadata: The model-store metadata (training config, metrics, calibration...).
        input_ranges: Inclusive value ranges of integer inputs (e.g. class labels).
        artifacts: File name -> path of the family's artifacts stored with the model
            (e.g. ``transformer.json``).
    """

    name: str
    family: Family
    role: str
    version: str
    signature: Signature
    metadata: dict
    input_ranges: dict[str, tuple[int, int]] = field(default_factory=dict)
    artifacts: dict[str, str] = field(default_factory=dict)
    platform: str = PLATFORM


def stored_model(family: Family, role: str):
    """The latest model-store entry of one family role, or an error naming the fix."""
    import bentoml
    from bentoml.exceptions import NotFound

    name = family.model_name(role)
    try:
        return bentoml.models.get(f"{name}:latest")
    except NotFound:
        raise RuntimeError(
            f"model {name!r} is not in the BentoML model store under "
            f"{os.environ.get('BENTOML_HOME', '~/bentoml')}. Register the shipped "
            f"defaults with `ecomgan register`, or export your own with "
            f"`ecomgan export --family {family.name} --checkpoint CKPT`."
        ) from None


def verify_models() -> None:
    """Refuse to start on a missing or corrupt model file, naming the file and the fix.

    Runs when `service.py` is imported, so `bentoml serve` stops with this message instead
    of restarting a crashing worker forever.
    """
    from ecomgan.files import sha256_file

    for family in FAMILIES.values():
        for role in ROLES:
            model = stored_model(family, role)
            fix = (
                f"delete it (`bentoml models delete {model.tag}`) and register the model "
                f"again (`ecomgan register --force`, or `ecomgan export ...`)"
            )
            expected = {"model.onnx": model.info.metadata.get("sha256")}
            expected.update(model.info.metadata.get("artifacts") or {})
            for name, sha in expected.items():
                path = model.path_of(name)
                if not os.path.isfile(path):
                    raise RuntimeError(f"model file {path} of {model.tag} is missing; {fix}")
                if sha and sha256_file(path) != sha:
                    raise RuntimeError(
                        f"model file {path} of {model.tag} is corrupt (sha256 differs from the "
                        f"registered {sha[:12]}...); {fix}"
                    )


def load_catalog() -> dict[str, ServedModel]:
    """Describe every registered family's models from the model store (no sessions are created)."""
    catalog: dict[str, ServedModel] = {}
    for family in FAMILIES.values():
        api = family.load_api()
        for role in ROLES:
            model = stored_model(family, role)
            meta = dict(model.info.metadata)
            artifacts = {name: model.path_of(name) for name in meta.get("artifacts") or {}}
            catalog[family.model_name(role)] = ServedModel(
                name=family.model_name(role),
                family=family,
                role=role,
                version=model.tag.version,
                signature=Signature.from_dict(meta["io"]),
                metadata=meta,
                input_ranges=api.input_ranges(role, meta),
                artifacts=artifacts,
            )
    return catalog
