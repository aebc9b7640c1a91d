"""Sampling a served generator outside the server: `ecomgan sample --model` / `--from`.

The generator runs in ONNX Runtime with the same pre- and post-processing as the service (each
family API's `write_samples`), so a file written here holds what the API returns for the same
seed.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ecomgan.families import Family, get_family

Run = Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]]


def _runner(path: Path) -> tuple[Run, int]:
    from serving.runtime import create_session

    session = create_session(path)
    names = [o.name for o in session.get_outputs()]

    def run(inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return dict(zip(names, session.run(names, inputs), strict=True))

    nz = int(session.get_inputs()[0].shape[1])  # every generator's first input is z (B, nz)
    return run, nz


def from_folder(folder: Path) -> tuple[Family, Run, int, dict[str, Path]]:
    """The generator of an exported folder (``models/<family>``, ``ecomgan export --out``),
    after checking its files against the folder's manifest."""
    from export.pipeline import read_manifest, verify_artifacts, verify_file

    manifest_path = folder / "manifest.json"
    if not manifest_path.is_file():
        raise FileNotFoundError(
            f"{folder} has no manifest.json: give a folder written by `ecomgan export` "
            "(e.g. models/products)"
        )
    family = get_family(json.loads(manifest_path.read_text()).get("family", ""))
    manifest = read_manifest(folder, family)
    run, nz = _runner(verify_file(folder, manifest, "generator"))
    return family, run, nz, verify_artifacts(folder, manifest)


def from_store(family_name: str) -> tuple[Family, Run, int, dict[str, Path]]:
    """The family's latest registered generator (the shipped default is registered first when
    the store has none, as `ecomgan serve` does)."""
    from serving.catalog import stored_model
    from serving.shipped import ensure_shipped_models

    family = get_family(family_name)
    ensure_shipped_models()
    model = stored_model(family, "generator")
    run, nz = _runner(Path(model.path_of("model.onnx")))
    artifacts = {n: Path(model.path_of(n)) for n in model.info.metadata.get("artifacts") or {}}
    return family, run, nz, artifacts
