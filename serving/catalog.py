"""The catalog of served models: one entry per family and role, read from the model store."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field

from ecomgan.contract import OIPAdapter
from ecomgan.families import FAMILIES, ROLES, Family
from serving.runtime import Signature
from serving.settings import Settings

logger = logging.getLogger("ecomgan.catalog")

PLATFORM = "onnxruntime_onnx"
INT8_FILENAME = "model.int8.onnx"  # export.pipeline.INT8_FILENAME (not imported: no torch here)


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
        adapter: The family's `OIPAdapter` when the protocols see other tensors than the
            ONNX graph's (``signature`` is then the adapter's), else None.
        onnx_signature: The ONNX graph's own inputs and outputs (what the backends run);
            ``signature`` when there is no adapter.
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
    adapter: OIPAdapter | None = None
    onnx_signature: Signature | None = None

    @property
    def graph_signature(self) -> Signature:
        """What the backend runs: the ONNX signature (the served one without an adapter)."""
        return self.onnx_signature or self.signature


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


def precision() -> str:
    """``fp32`` (default) or ``int8``, from ``ECOMGAN_PRECISION``."""
    return Settings.from_env().precision


def int8_path(model, *, warn: bool = False) -> str | None:
    """The stored model's INT8 file when it is to be served, else None (serve FP32).

    INT8 is served only under ``ECOMGAN_PRECISION=int8``, when the model was registered with
    an INT8 twin (``ecomgan quantize``), and on the CPU provider: ORT's integer kernels the
    INT8 file was accepted with are CPU kernels, so CUDA keeps FP32.
    """
    if precision() != "int8":
        return None
    from serving.runtime import available_providers

    path = model.path_of(INT8_FILENAME)
    if "int8" not in model.info.metadata or not os.path.isfile(path):
        reason = f"{model.tag} has no INT8 file (run `ecomgan quantize` and `ecomgan register`)"
    elif available_providers()[0] != "CPUExecutionProvider":
        reason = f"INT8 is served on the CPU provider only, not {available_providers()[0]}"
    else:
        return path
    if warn:
        logger.warning("ECOMGAN_PRECISION=int8 but %s: serving FP32", reason)
    return None


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
            if "int8" in model.info.metadata:
                expected[INT8_FILENAME] = model.info.metadata["int8"]["sha256"]
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
            meta["precision"] = "int8" if int8_path(model) else "fp32"
            if meta["precision"] == "int8" and "calibration" in meta["int8"]:
                # The scores API and OIP metadata read the INT8 file's own calibration.
                meta["calibration"] = meta["int8"]["calibration"]
            artifacts = {name: model.path_of(name) for name in meta.get("artifacts") or {}}
            graph = Signature.from_dict(meta["io"])
            adapter = api.oip_adapter(role, meta, artifacts)
            catalog[family.model_name(role)] = ServedModel(
                name=family.model_name(role),
                family=family,
                role=role,
                version=model.tag.version,
                signature=adapted_signature(adapter) if adapter else graph,
                metadata=meta,
                input_ranges=api.input_ranges(role, meta),
                artifacts=artifacts,
                adapter=adapter,
                onnx_signature=graph,
            )
    return catalog


def adapted_signature(adapter: OIPAdapter) -> Signature:
    """The protocol-facing signature an `OIPAdapter` declares."""
    return Signature.from_dict({"inputs": list(adapter.inputs), "outputs": list(adapter.outputs)})
