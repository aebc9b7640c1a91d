"""`ecomgan export` and `ecomgan register`: checkpoint -> shipped folder -> model store.

A shipped folder (``models/<family>/``) holds ``generator.onnx``, ``discriminator.onnx``,
the family's artifacts (files the service needs beside the networks, e.g. the shoppers
family's ``transformer.json``) and ``manifest.json``, which records each file's sha256, opset,
I/O signature and validation result, the training summary and the discriminator's calibration.
Artifacts are registered in the model store with both roles.

Registering needs neither torch nor onnx: only `export_family` imports them.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

import ecomgan
from ecomgan.calibration import fit_detector
from ecomgan.contract import QUANTIZATION_HOOKS, Quantization, Trainer
from ecomgan.families import ROLES, Family, get_family
from ecomgan.files import sha256_file
from export import store

if TYPE_CHECKING:
    from gan.exportable import Exportable

MANIFEST = "manifest.json"
MODEL_FILENAME = "model.onnx"  # the ONNX file's name inside a model-store entry
INT8_FILENAME = "model.int8.onnx"  # its INT8 twin (`quantize_folder`), when there is one
QUANTIZE_ROWS, QUANTIZE_SEED = 512, 1000  # INT8 calibration rows; their seed (not SEED)
MANIFEST_FORMAT = 1
VALIDATION_BATCH_SIZES = (1, 64)
SEED = 0


class ArtifactError(RuntimeError):
    """A shipped folder is incomplete, corrupt, or not an export."""


@dataclass(frozen=True)
class ExportResult:
    """What `export_family` wrote: the folder and its manifest."""

    folder: Path
    manifest: dict[str, Any]

    @property
    def files(self) -> dict[str, Path]:
        """Role -> ONNX file."""
        return {role: self.folder / e["file"] for role, e in self.manifest["roles"].items()}

    def __str__(self) -> str:
        roles = ", ".join(
            f"{e['file']} (sha256 {e['sha256'][:12]}, max abs diff "
            f"{e['validation']['max_abs_diff']:.2g})"
            for e in self.manifest["roles"].values()
        )
        cal = self.manifest["calibration"]
        return (
            f"{roles}; detector AUROC {cal['auroc']:.3f}, TPR {cal['tpr']:.3f} "
            f"at FPR {cal['fpr']:.4f} (target {cal['target_fpr']})"
        )


def export_family(
    family_name: str,
    checkpoint: Path,
    out_dir: Path,
    *,
    opset: int | None = None,
    data_dir: Path | None = None,
    calibration_samples: int = 2000,
    quality: dict[str, Any] | None = None,
) -> ExportResult:
    """Export, validate and calibrate a family's networks into a shipped folder.

    Everything is written into a temporary sibling of ``out_dir`` and swapped in at the
    end, so an interrupted export leaves the previous folder intact, never a mix.
    Files other than the export's own (e.g. a sample image) do not survive a re-export.

    Args:
        family_name: A registered family, e.g. ``products``.
        checkpoint: The training checkpoint the family module reads.
        out_dir: The folder to (re)create; if it exists it must be empty or a previous export.
        opset: ONNX opset; defaults to `export.onnx.DEFAULT_OPSET`.
        data_dir: Where the family module finds real data for calibration (None: its default).
        calibration_samples: Real and generated inputs each used to calibrate the discriminator.
        quality: The quality-gate verdict (``ecomgan.gates.enforce``), stored in the manifest.

    Returns:
        The folder and its manifest.

    Raises:
        ArtifactError: ``out_dir`` holds something other than an export, or the family
            module returned the wrong roles or discriminator outputs.
        export.onnx.OnnxValidationError: ONNX Runtime disagrees with PyTorch.
    """
    from export.onnx import DEFAULT_OPSET

    family = get_family(family_name)
    trainer = family.load_trainer()
    checkpoint, out_dir = Path(checkpoint), Path(out_dir).resolve()
    _check_replaceable(out_dir)
    exportables = trainer.exportables(checkpoint)
    if sorted(exportables) != sorted(ROLES):
        raise ArtifactError(
            f"{family.trainer}.exportables returned {sorted(exportables)}, not {ROLES}"
        )
    # Before the slow part, so that missing data fails fast.
    real, fake = trainer.calibration_inputs(
        checkpoint, n=calibration_samples, seed=SEED, data_dir=data_dir
    )

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = out_dir.with_name(f".{out_dir.name}.export-{uuid.uuid4().hex[:12]}")
    staging.mkdir()
    try:
        roles = {
            role: _export_role(trainer, role, exportables[role], staging, opset or DEFAULT_OPSET)
            for role in ROLES
        }
        artifacts = _write_artifacts(trainer, checkpoint, staging)
        disc = exportables["discriminator"]
        calibration = fit_detector(
            _logits(staging / roles["discriminator"]["file"], disc, real),
            _logits(staging / roles["discriminator"]["file"], disc, fake),
        )
        manifest = {
            "format": MANIFEST_FORMAT,
            "family": family.name,
            "project_version": ecomgan.__version__,
            "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "training": trainer.describe(checkpoint),
            "calibration": calibration,
            "roles": roles,
            "artifacts": artifacts,
        }
        if quality is not None:
            manifest["quality"] = quality
        _keep_evaluation_files(out_dir, staging)
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=2, allow_nan=False) + "\n")
        _swap_in(staging, out_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return ExportResult(out_dir, json.loads((out_dir / MANIFEST).read_text()))


def _export_role(
    trainer: Trainer, role: str, ex: Exportable, folder: Path, opset: int
) -> dict[str, Any]:
    from export.onnx import export_onnx, onnx_io_signature, onnx_opset, validate_onnx

    path = export_onnx(ex, folder / f"{role}.onnx", opset=opset)
    make = trainer.make_validation_inputs
    report = validate_onnx(
        ex,
        path,
        batch_sizes=VALIDATION_BATCH_SIZES,
        seed=SEED,
        make_inputs=(lambda batch_size: make(role, batch_size, SEED)) if make else None,
    )
    return {
        "file": path.name,
        "sha256": sha256_file(path),
        "size_bytes": path.stat().st_size,
        "opset": onnx_opset(path),
        "io": onnx_io_signature(path),
        "validation": report.to_dict(),
    }


def _write_artifacts(trainer: Trainer, checkpoint: Path, folder: Path) -> dict[str, Any]:
    """Write the family's artifacts (the ``artifacts`` hook) and describe them."""
    files = trainer.artifacts(checkpoint)
    out = {}
    for name, data in files.items():
        if Path(name).name != name or not name or name == MANIFEST or name.endswith(".onnx"):
            raise ArtifactError(f"artifact name {name!r} must be a plain, non-ONNX file name")
        (folder / name).write_bytes(data)
        out[name] = {"sha256": sha256_file(folder / name), "size_bytes": len(data)}
    return out


def _logits(
    path: Path, ex: Exportable, inputs: tuple[np.ndarray, ...], batch: int = 256
) -> np.ndarray:
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    n = len(inputs[0])
    out = []
    for start in range(0, n, batch):
        feeds = {
            name: np.ascontiguousarray(x[start : start + batch])
            for name, x in zip(ex.input_names, inputs, strict=True)
        }
        out.append(session.run([ex.output_names[0]], feeds)[0].reshape(-1))
    logits = np.concatenate(out) if out else np.empty(0)
    if logits.size != n:
        raise ArtifactError(
            f"discriminator returned {logits.size} logits for {n} inputs; expected one each"
        )
    return logits


# Not written by the export but kept across re-exports: the evaluation's feature extractor,
# its latest report (`ecomgan evaluate`) and the README's sample grid.
KEEP_ON_REEXPORT = ("classifier.npz", "classifier.json", "quality", "samples.png")


def _keep_evaluation_files(out_dir: Path, staging: Path) -> None:
    for name in KEEP_ON_REEXPORT:
        src = out_dir / name
        if src.is_dir():
            shutil.copytree(src, staging / name)
        elif src.is_file():
            shutil.copy2(src, staging / name)


def _check_replaceable(out_dir: Path) -> None:
    if out_dir.exists() and not out_dir.is_dir():
        raise ArtifactError(f"{out_dir} exists and is not a folder")
    if out_dir.is_dir() and any(out_dir.iterdir()) and not (out_dir / MANIFEST).is_file():
        raise ArtifactError(
            f"refusing to replace {out_dir}: it is not empty and has no {MANIFEST}, so it is "
            "not a previous export; choose a new or empty folder"
        )


def _swap_in(staging: Path, out_dir: Path) -> None:
    if not out_dir.exists():
        os.rename(staging, out_dir)
        return
    old = out_dir.with_name(f".{out_dir.name}.old-{uuid.uuid4().hex[:12]}")
    os.rename(out_dir, old)
    try:
        os.rename(staging, out_dir)
    except BaseException:
        os.rename(old, out_dir)
        raise
    shutil.rmtree(old, ignore_errors=True)


def read_manifest(folder: Path, family: Family) -> dict[str, Any]:
    """Load and sanity-check a shipped folder's manifest.

    Raises:
        ArtifactError: Missing or unreadable manifest, another family's, or a role missing.
    """
    path = Path(folder) / MANIFEST
    fix = f"re-export it with `ecomgan export --family {family.name} --checkpoint CKPT`"
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ArtifactError(f"cannot read {path} ({exc}); {fix}") from None
    if manifest.get("family") != family.name:
        raise ArtifactError(f"{path} is for family {manifest.get('family')!r}, not {family.name!r}")
    missing = [r for r in ROLES if r not in manifest.get("roles", {})]
    if missing:
        raise ArtifactError(f"{path} lists no {', '.join(missing)}; {fix}")
    return manifest


def _verified(path: Path, entry: dict[str, Any], fix: str) -> Path:
    """``path`` after checking it exists and matches the manifest entry's sha256.

    Raises:
        ArtifactError: Missing, or its bytes differ; the message ends with ``fix``.
    """
    if not path.is_file():
        raise ArtifactError(f"{path} is missing but listed in {MANIFEST}; {fix}")
    digest = sha256_file(path)
    if digest != entry["sha256"]:
        raise ArtifactError(
            f"{path} is corrupt or was replaced: sha256 {digest} ({path.stat().st_size} bytes), "
            f"{MANIFEST} expects {entry['sha256']} ({entry.get('size_bytes')} bytes); {fix}"
        )
    return path


def _reexport_fix(path: Path, manifest: dict[str, Any]) -> str:
    return (
        f"restore it (`git checkout -- {path}`; `git lfs pull` if it is a Git LFS pointer) "
        f"or re-export the folder with "
        f"`ecomgan export --family {manifest['family']} --checkpoint CKPT`"
    )


def verify_file(folder: Path, manifest: dict[str, Any], role: str) -> Path:
    """The role's ONNX file, after checking its sha256 against the manifest.

    Raises:
        ArtifactError: The file is missing or its bytes differ from what was exported.
    """
    entry = manifest["roles"][role]
    path = Path(folder) / entry["file"]
    return _verified(path, entry, _reexport_fix(path, manifest))


def verify_int8_file(folder: Path, manifest: dict[str, Any], role: str) -> Path | None:
    """The role's INT8 file (None if the manifest lists none), after checking its sha256.

    Raises:
        ArtifactError: The file is missing or its bytes differ from what was quantised.
    """
    entry = manifest["roles"][role].get("int8")
    if entry is None:
        return None
    path = Path(folder) / entry["file"]
    fix = (
        f"restore it (`git checkout -- {path}`) or quantise again with "
        f"`ecomgan quantize --family {manifest['family']} --folder {folder} --roles {role}`"
    )
    return _verified(path, entry, fix)


def _role_files(folder: Path, manifest: dict[str, Any], role: str) -> dict[str, Path]:
    """Model-store file name -> verified source: the FP32 model and its INT8 twin, if any."""
    files = {MODEL_FILENAME: verify_file(folder, manifest, role)}
    int8 = verify_int8_file(folder, manifest, role)
    if int8 is not None:
        files[INT8_FILENAME] = int8
    return files


def verify_artifacts(folder: Path, manifest: dict[str, Any]) -> dict[str, Path]:
    """The folder's artifacts by name, after checking each sha256 against the manifest.

    Raises:
        ArtifactError: An artifact is missing or its bytes differ from what was exported.
    """
    folder = Path(folder)
    return {
        name: _verified(folder / name, entry, _reexport_fix(folder / name, manifest))
        for name, entry in manifest.get("artifacts", {}).items()
    }


def _register_role(
    family: Family,
    manifest: dict[str, Any],
    role: str,
    files: dict[str, Path],
    artifacts: dict[str, Path],
) -> str:
    entry = manifest["roles"][role]
    training = dict(manifest.get("training") or {})
    training.pop("family", None)
    metadata = {
        "family": family.name,
        "role": role,
        "project_version": manifest["project_version"],
        "exported_at": manifest["created_at"],
        "config": training.pop("config", None),
        "data_sha256": training.pop("data_sha256", None),
        "metrics": training,
        "opset": entry["opset"],
        "sha256": entry["sha256"],
        "size_bytes": entry["size_bytes"],
        "io": entry["io"],
        "validation_max_abs_diff": entry["validation"]["max_abs_diff"],
        "artifacts": {name: e["sha256"] for name, e in manifest.get("artifacts", {}).items()},
    }
    if role == "discriminator":
        metadata["calibration"] = manifest["calibration"]
    if "int8" in entry:
        metadata["int8"] = {"sha256": entry["int8"]["sha256"],
                            "calibration": entry["int8"].get("calibration")}  # fmt: skip
    if "quality" in manifest:
        q = manifest["quality"]
        metadata["quality"] = {k: q[k] for k in ("passed", "override_used", "failures") if k in q}
    labels = {"family": family.name, "role": role, "project_version": manifest["project_version"]}
    return store.register(
        family.model_name(role),
        {**files, **artifacts},
        labels=labels,
        metadata=_drop_none(metadata),
    )


def _drop_none(value: Any) -> Any:
    # BentoML rejects None anywhere in metadata.
    if isinstance(value, dict):
        return {k: _drop_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list | tuple):
        return [_drop_none(v) for v in value if v is not None]
    return value


def register_folder(family_name: str, folder: Path) -> dict[str, str]:
    """Verify a shipped folder and register each role as a new model-store version.

    Every file is checked before anything is registered, so a corrupt discriminator
    does not leave a lone new generator behind.

    Args:
        family_name: A registered family.
        folder: A folder `export_family` wrote (e.g. ``models/products``).

    Returns:
        Role -> new tag (``<family>-<role>:<version>``).

    Raises:
        ArtifactError: Bad manifest, or a file missing or not matching its sha256.
    """
    family = get_family(family_name)
    manifest = read_manifest(folder, family)
    files = {role: _role_files(folder, manifest, role) for role in ROLES}
    artifacts = verify_artifacts(folder, manifest)
    return {role: _register_role(family, manifest, role, files[role], artifacts) for role in ROLES}


def ensure_registered(family_name: str, folder: Path) -> dict[str, str]:
    """Register the folder's roles that the store lacks; keep the ones already there.

    A role counts as registered when some version of its model carries the manifest's
    sha256s (model, INT8 twin, artifacts) in its metadata, so a fresh clone registers the
    shipped defaults once, and a folder that gained an INT8 file registers again.

    Args:
        family_name: A registered family.
        folder: A folder `export_family` wrote (e.g. ``models/products``).

    Returns:
        Role -> tag: the newest matching version, or the one just registered.

    Raises:
        ArtifactError: Bad manifest, or a file that must be registered is missing or
            does not match its sha256.
    """
    family = get_family(family_name)
    manifest = read_manifest(folder, family)
    artifact_shas = {name: e["sha256"] for name, e in manifest.get("artifacts", {}).items()}
    tags: dict[str, str] = {}
    for role in ROLES:
        sha = manifest["roles"][role]["sha256"]
        int8_sha = (manifest["roles"][role].get("int8") or {}).get("sha256")
        matches = [
            m
            for m in store.versions(family.model_name(role))
            if m.info.metadata.get("sha256") == sha
            and dict(m.info.metadata.get("artifacts") or {}) == artifact_shas
            and (m.info.metadata.get("int8") or {}).get("sha256") == int8_sha
        ]
        if matches:
            tags[role] = str(matches[-1].tag)
    todo = [role for role in ROLES if role not in tags]
    files = {role: _role_files(folder, manifest, role) for role in todo}
    artifacts = verify_artifacts(folder, manifest) if todo else {}
    tags.update(
        {role: _register_role(family, manifest, role, files[role], artifacts) for role in todo}
    )
    return tags


def _quantization_hooks(family: Family, roles: tuple[str, ...]) -> Quantization:
    hooks = family.load_trainer().quantization
    missing = [] if hooks else list(QUANTIZATION_HOOKS)
    if "discriminator" in roles and (hooks is None or hooks.detector_inputs is None):
        missing.append("detector_inputs")
    if hooks is None or missing:
        raise ValueError(
            f"family {family.name!r} cannot be quantised: {family.trainer} lacks "
            f"{', '.join(missing)} (see ecomgan/contract.py and gan/products/quantization.py)"
        )
    return hooks


def _refit_calibration(
    hooks: Quantization, folder: Path, manifest: dict[str, Any], int8: Path, data_dir: Path | None
) -> dict[str, Any]:
    """Platt calibration of the INT8 discriminator, on the data and target FPR of the export's."""
    from types import SimpleNamespace

    fp32 = manifest["calibration"]
    assert hooks.detector_inputs is not None  # `_quantization_hooks` checked it
    real, fake = hooks.detector_inputs(folder, fp32["n_real"], SEED, data_dir=data_dir)
    io = manifest["roles"]["discriminator"]["io"]
    # `_logits` reads only the input and output names of an Exportable.
    names = SimpleNamespace(
        input_names=[t["name"] for t in io["inputs"]],
        output_names=[t["name"] for t in io["outputs"]],
    )
    return fit_detector(
        _logits(int8, names, real), _logits(int8, names, fake), target_fpr=fp32["target_fpr"]
    )


def quantize_folder(
    family_name: str,
    folder: Path,
    roles: tuple[str, ...] | list[str] = ("discriminator",),
    *,
    data_dir: Path | None = None,
) -> dict[str, Any]:
    """Add INT8 twins of an exported folder's ONNX files, gated on the family's quality rule.

    Each role's ``<role>.onnx`` is quantised (`export.quantize.quantize_onnx`, static QDQ)
    to ``<role>.int8.onnx`` with the family module's hooks: ``quantization_inputs`` for
    calibration, ``quantization_quality`` and ``QUANTIZATION_RULES[role]`` for acceptance. An
    INT8 discriminator's logits shift, so its Platt calibration is refit on INT8 logits of the
    inputs the export calibrated on (``detector_inputs``) with the same target FPR. The
    manifest gains ``roles.<role>.int8 = {file, sha256, size_bytes, quantization,
    calibration?}``; the FP32 files are not touched. All of it is written into a staging copy
    of the folder and swapped in at the end, so a rejected role leaves the folder as it was.

    Args:
        family_name: A registered family whose module has the quantisation hooks.
        folder: A folder `export_family` wrote (e.g. ``models/products``).
        roles: Roles to quantise.
        data_dir: Where the hooks find real data (None: the family's default).

    Returns:
        Role -> its new manifest ``int8`` entry.

    Raises:
        ValueError: Unknown role, or a family without the hooks.
        export.quantize.QuantizationError: A role failed its checks; nothing was written.
        ArtifactError: Bad manifest, or an FP32 file not matching its sha256.
    """
    from functools import partial

    from export.quantize import quantize_onnx

    family = get_family(family_name)
    roles = tuple(dict.fromkeys(roles))
    if not roles or any(r not in ROLES for r in roles):
        raise ValueError(f"roles must be a non-empty subset of {ROLES}, got {list(roles)}")
    hooks = _quantization_hooks(family, roles)
    folder = Path(folder).resolve()
    manifest = read_manifest(folder, family)
    sources = {role: verify_file(folder, manifest, role) for role in roles}
    staging = folder.with_name(f".{folder.name}.quantize-{uuid.uuid4().hex[:12]}")
    shutil.copytree(folder, staging, symlinks=True)
    try:
        for role in roles:
            dst = staging / f"{role}.int8.onnx"
            calib = hooks.inputs(folder, role, QUANTIZE_ROWS, QUANTIZE_SEED,
                                              data_dir=data_dir)  # fmt: skip
            report = quantize_onnx(
                sources[role],
                dst,
                calib,
                quality=partial(hooks.quality, folder, role, data_dir=data_dir),
                rule=hooks.rules[role],
            )
            entry = {key: report.pop(key) for key in ("file", "sha256", "size_bytes")}
            entry["quantization"] = report
            if role == "discriminator":
                entry["calibration"] = _refit_calibration(hooks, folder, manifest, dst, data_dir)
            manifest["roles"][role]["int8"] = entry
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=2, allow_nan=False) + "\n")
        _swap_in(staging, folder)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return {role: manifest["roles"][role]["int8"] for role in roles}
