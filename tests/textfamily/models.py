"""Build the text family's exported folder: two string Identity ONNX models and a manifest in
the format `ecomgan export` writes, so that `export.pipeline.register_folder` registers it."""

from __future__ import annotations

import json
from pathlib import Path

from onnx import TensorProto, helper

import ecomgan
from ecomgan.files import sha256_file
from export.onnx import onnx_io_signature


def build(folder: Path) -> Path:
    """Write ``generator.onnx``, ``discriminator.onnx`` and ``manifest.json`` into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    roles = {}
    for role in ("generator", "discriminator"):
        graph = helper.make_graph(
            [helper.make_node("Identity", ["text"], ["echo"])],
            f"echo_{role}",
            [helper.make_tensor_value_info("text", TensorProto.STRING, ["batch"])],
            [helper.make_tensor_value_info("echo", TensorProto.STRING, ["batch"])],
        )
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
        path = folder / f"{role}.onnx"
        path.write_bytes(model.SerializeToString())
        roles[role] = {
            "file": path.name,
            "sha256": sha256_file(path),
            "size_bytes": path.stat().st_size,
            "opset": 18,
            "io": onnx_io_signature(path),
            "validation": {"max_abs_diff": 0.0},
        }
    manifest = {
        "family": "echo",
        "project_version": ecomgan.__version__,
        "created_at": "built by tests/textfamily/models.py",
        "roles": roles,
        "calibration": {},
    }
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return folder
