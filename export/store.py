"""The BentoML model store: atomic registration, lookup, and file access.

The store lives under ``$BENTOML_HOME/models`` (default ``~/bentoml``). BentoML reads
``BENTOML_HOME`` once, the first time anything resolves the store, and caches it; to
point an already-running process elsewhere, override ``BentoMLContainer.model_store``.

Why not just ``bentoml.models.create``: it builds the model in a temporary folder, but
then copies it file by file into ``models/<name>/<version>/``. A failure or Ctrl-C
during that copy can leave a partial version that ``bentoml.models.list()`` shows (or
breaks on) and that becomes ``latest`` when no older version exists. So `register` runs
``create`` against a staging store beside the real one, then moves the finished version
in with one ``os.rename`` and rewrites ``latest`` with ``os.replace``.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
import uuid
from pathlib import Path
from typing import Any

import bentoml

# Internal to BentoML 1.4 (pinned <1.5): the store object and its dependency container.
from bentoml._internal.configuration.containers import BentoMLContainer
from bentoml._internal.models import ModelStore
from bentoml.exceptions import NotFound

Model = bentoml.Model


def _store_dir() -> Path:
    return Path(BentoMLContainer.model_store.get()._path).resolve()


def _plain_metadata(metadata: dict[str, Any]) -> dict[str, Any]:
    def check(value: Any, where: str) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                if not isinstance(key, str):
                    raise TypeError(f"metadata key {where}{key!r} is not a string")
                check(item, f"{where}{key}.")
        elif isinstance(value, list | tuple):
            for i, item in enumerate(value):
                check(item, f"{where}{i}.")
        elif isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"metadata {where.rstrip('.')} is {value}; only finite floats")
        elif not isinstance(value, str | int | float | bool):
            raise TypeError(
                f"metadata {where.rstrip('.')} is {type(value).__name__}; BentoML accepts "
                "only str, int, float, bool and nested dicts/lists of them (not None)"
            )

    check(metadata, "")
    return json.loads(json.dumps(metadata))


def register(
    name: str, files: dict[str, Path], *, labels: dict[str, str], metadata: dict[str, Any]
) -> str:
    """Store files as a new version of model ``name``, all at once or not at all.

    Args:
        name: Model name, e.g. ``products-generator``.
        files: File name inside the model -> source file.
        labels: String labels (BentoML requires str keys and values).
        metadata: JSON-like metadata: str, int, finite float, bool, nested dicts/lists.

    Returns:
        The new tag, ``"name:version"``.

    Raises:
        FileNotFoundError: A source file is missing.
        TypeError, ValueError: Bad file names, labels or metadata.
    """
    for fname, src in files.items():
        if Path(fname).name != fname or fname in ("", ".", "..", "model.yaml"):
            raise ValueError(f"model file name {fname!r} must be a plain file name")
        if not Path(src).is_file():
            raise FileNotFoundError(f"cannot register {name}: {src} does not exist")
    bad_labels = {
        k: v for k, v in labels.items() if not (isinstance(k, str) and isinstance(v, str))
    }
    if bad_labels:
        raise TypeError(f"labels must map str to str: {bad_labels}")
    metadata = _plain_metadata(metadata)

    store_dir = _store_dir()
    store_dir.mkdir(parents=True, exist_ok=True)
    # A sibling of the store: same filesystem (so rename is atomic), never listed as a model.
    staging_dir = Path(tempfile.mkdtemp(prefix=".ecomgan-staging-", dir=store_dir.parent))
    try:
        with bentoml.models.create(
            name, labels=labels, metadata=metadata, _model_store=ModelStore(staging_dir)
        ) as model:
            for fname, src in files.items():
                shutil.copyfile(src, model.path_of(fname))
        tag = model.tag
        final = store_dir / tag.path()
        final.parent.mkdir(parents=True, exist_ok=True)
        os.rename(staging_dir / tag.path(), final)
        _write_latest(store_dir / tag.latest_path(), str(tag.version))
    finally:
        shutil.rmtree(staging_dir, ignore_errors=True)
    return str(tag)


def _write_latest(path: Path, version: str) -> None:
    tmp = path.with_name(f".latest.{uuid.uuid4().hex[:12]}")
    try:
        tmp.write_text(version)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def get(tag: str) -> Model:
    """The model with this tag (``name:version`` or ``name:latest``).

    Raises:
        bentoml.exceptions.NotFound: No such model in the store.
    """
    return bentoml.models.get(tag)


def latest(name: str) -> Model | None:
    """The newest registered version of ``name``, or None if there is none."""
    try:
        return bentoml.models.get(f"{name}:latest")
    except NotFound:
        return None


def versions(name: str) -> list[Model]:
    """Every registered version of ``name``, oldest first (empty if none)."""
    try:
        models = bentoml.models.list(name)
    except NotFound:
        return []
    return sorted(models, key=lambda m: m.info.creation_time)


def model_file(model: Model, filename: str) -> Path:
    """Path of one file stored in a model.

    Raises:
        ValueError: ``filename`` is not a plain file name.
        FileNotFoundError: The model has no such file (it was deleted or never stored).
    """
    if Path(filename).name != filename:
        raise ValueError(f"{filename!r} must be a plain file name")
    path = Path(model.path_of(filename))
    if not path.is_file():
        raise FileNotFoundError(
            f"{model.tag} has no file {filename!r} (in {model.path}); delete it with "
            f"`bentoml models delete {model.tag}` and register it again"
        )
    return path
