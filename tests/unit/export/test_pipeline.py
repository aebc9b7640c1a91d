"""export.pipeline end to end on a toy family registered for the test.

The toy family's torch-side module is this test module itself (``trainer`` points at
``TOY``), implementing the interface every family module provides.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from datetime import datetime
from pathlib import Path

import bentoml
import numpy as np
import pytest
import torch
from bentoml._internal.configuration.containers import BentoMLContainer
from bentoml._internal.models import ModelStore
from torch import nn

import ecomgan
import export.onnx
from ecomgan.families import FAMILIES, Family
from export import pipeline, store
from export.pipeline import ArtifactError, ensure_registered, export_family, register_folder
from gan.exportable import Exportable

NZ, CLASSES, SIDE = 4, 3, 4
SHIPPED = {"generator.onnx", "discriminator.onnx", "vocab.json", "manifest.json"}
VOCAB = b'{"classes": ["a", "b", "c"]}\n'  # a family artifact, shipped beside the models


class Generator(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(CLASSES, NZ)
        self.fc = nn.Linear(NZ, SIDE * SIDE)

    def forward(self, z, label):
        return torch.tanh(self.fc(z + self.embed(label))).view(-1, 1, SIDE, SIDE) * 0.5 - 0.5


class Discriminator(nn.Module):
    """Logit = mean pixel + a small per-class offset: real (bright) inputs score high."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(CLASSES, 1)
        self.fc = nn.Linear(SIDE * SIDE, 1)
        with torch.no_grad():
            self.fc.weight.fill_(1.0 / SIDE**2)
            self.fc.bias.zero_()
            self.embed.weight.uniform_(-0.01, 0.01)

    def forward(self, image, label):
        return (self.fc(image.flatten(1)) + self.embed(label)).squeeze(1)


class ToyTrainer:
    # Required by ecomgan.contract; export never trains, so these are never called.
    TrainConfig = dict

    def __init__(self) -> None:
        self.validation_calls: list[tuple[str, int, int]] = []

    def train(self, cfg, out_dir, **kwargs):
        raise NotImplementedError("an export-only test family")

    def exportables(self, checkpoint: Path) -> dict[str, Exportable]:
        torch.manual_seed(0)
        label = torch.tensor([0, CLASSES - 1])
        return {
            "generator": Exportable(
                Generator().eval(), (torch.randn(2, NZ), label), ("z", "label"), ("image",)
            ),
            "discriminator": Exportable(
                Discriminator().eval(),
                (torch.rand(2, 1, SIDE, SIDE) * 2 - 1, label),
                ("image", "label"),
                ("logit",),
            ),
        }

    def calibration_inputs(self, checkpoint, n, seed, data_dir=None):
        rng = np.random.default_rng(seed)
        labels = rng.integers(0, CLASSES, n)
        real = rng.uniform(0.0, 1.0, (n, 1, SIDE, SIDE)).astype(np.float32)
        fake = rng.uniform(-1.0, 0.0, (n, 1, SIDE, SIDE)).astype(np.float32)
        return (real, labels), (fake, labels.copy())

    def describe(self, checkpoint: Path) -> dict:
        return {
            "config": {"nz": NZ, "lr": 2e-4},
            "step": 10,
            "data_sha256": "d" * 64,
            "final_metrics": {"loss_d": 1.25, "loss_g": 0.5},
            "elapsed_s": 1.5,
            "note": None,
        }

    def artifacts(self, checkpoint: Path) -> dict[str, bytes]:
        return {"vocab.json": VOCAB}

    def make_validation_inputs(self, role: str, batch_size: int, seed: int):
        self.validation_calls.append((role, batch_size, seed))
        gen = torch.Generator().manual_seed(seed)
        label = torch.randint(0, CLASSES, (batch_size,), generator=gen)
        if role == "generator":
            return torch.randn(batch_size, NZ, generator=gen), label
        return torch.rand(batch_size, 1, SIDE, SIDE, generator=gen) * 2 - 1, label


TOY = ToyTrainer()


def toy_family(shipped: Path) -> Family:
    return Family(
        name="toy",
        description="test family",
        trainer=f"{__name__}:TOY",
        api="serving.unused:Unused",
        shipped_dir=shipped,
        max_batch_size={"generator": 8, "discriminator": 8},
        max_latency_ms={"generator": 10, "discriminator": 10},
    )


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> Path:
    """One toy export, shared read-only; tests that alter it work on a copy."""
    root = tmp_path_factory.mktemp("export")
    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(FAMILIES, "toy", toy_family(root / "toy"))
        TOY.validation_calls.clear()
        export_family("toy", root / "ckpt.pt", root / "toy", calibration_samples=300)
    return root / "toy"


@pytest.fixture
def folder(exported, tmp_path, monkeypatch) -> Path:
    monkeypatch.setitem(FAMILIES, "toy", toy_family(tmp_path / "toy"))
    return Path(shutil.copytree(exported, tmp_path / "toy"))


@pytest.fixture
def bentoml_home(tmp_path, monkeypatch):
    """A private model store (see test_store.py for why the container is overridden)."""
    home = tmp_path / "bentoml"
    (home / "models").mkdir(parents=True)
    monkeypatch.setenv("BENTOML_HOME", str(home))
    monkeypatch.setattr(bentoml.models, "track", lambda *a, **k: None)
    with (
        BentoMLContainer.bentoml_home.patch(str(home)),
        BentoMLContainer.model_store.patch(ModelStore(home / "models")),
    ):
        yield home


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def manifest_of(folder: Path) -> dict:
    return json.loads((folder / "manifest.json").read_text())


def test_export_writes_the_shipped_folder(exported):
    assert {p.name for p in exported.iterdir()} == SHIPPED
    assert [p.name for p in exported.parent.iterdir() if p.name.startswith(".")] == []
    manifest = manifest_of(exported)
    assert manifest["family"] == "toy"
    assert manifest["project_version"] == ecomgan.__version__
    assert datetime.fromisoformat(manifest["created_at"]).utcoffset().total_seconds() == 0
    assert manifest["training"]["final_metrics"] == {"loss_d": 1.25, "loss_g": 0.5}
    for role, entry in manifest["roles"].items():
        path = exported / entry["file"]
        assert entry["file"] == f"{role}.onnx"
        assert entry["sha256"] == sha(path) and entry["size_bytes"] == path.stat().st_size
        assert entry["opset"] == export.onnx.DEFAULT_OPSET
        assert all(t["shape"][0] == -1 for t in entry["io"]["inputs"] + entry["io"]["outputs"])
        assert entry["validation"]["max_abs_diff"] < 1e-4
        assert entry["validation"]["batch_sizes"] == [1, 64]
    assert (exported / "vocab.json").read_bytes() == VOCAB
    assert manifest["artifacts"] == {
        "vocab.json": {"sha256": hashlib.sha256(VOCAB).hexdigest(), "size_bytes": len(VOCAB)}
    }
    assert manifest["roles"]["discriminator"]["io"]["outputs"] == [
        {"name": "logit", "datatype": "FP32", "shape": [-1]}
    ]


def test_export_calibrates_on_real_as_negatives(exported):
    cal = manifest_of(exported)["calibration"]
    assert cal["method"] == "platt" and cal["n_real"] == cal["n_fake"] == 300
    assert cal["a"] < 0  # the toy discriminator scores real inputs high
    assert cal["auroc"] > 0.99 and cal["fpr"] <= cal["target_fpr"] == 0.01


def test_export_uses_family_validation_inputs(exported):
    assert sorted(TOY.validation_calls) == sorted(
        (role, b, pipeline.SEED) for role in ("generator", "discriminator") for b in (1, 64)
    )


def test_register_folder_round_trip(folder, bentoml_home):
    tags = register_folder("toy", folder)
    manifest = manifest_of(folder)
    assert set(tags) == {"generator", "discriminator"}
    for role, tag in tags.items():
        model = store.latest(f"toy-{role}")
        assert str(model.tag) == tag and tag.startswith(f"toy-{role}:")
        assert model.info.labels == {
            "family": "toy",
            "role": role,
            "project_version": ecomgan.__version__,
        }
        meta = model.info.metadata
        entry = manifest["roles"][role]
        assert meta["sha256"] == entry["sha256"] == sha(store.model_file(model, "model.onnx"))
        assert sorted(p.name for p in Path(model.path).iterdir()) == [
            "model.onnx",
            "model.yaml",
            "vocab.json",
        ]
        assert store.model_file(model, "vocab.json").read_bytes() == VOCAB
        assert meta["artifacts"] == {"vocab.json": manifest["artifacts"]["vocab.json"]["sha256"]}
        assert meta["io"] == entry["io"] and meta["opset"] == entry["opset"]
        assert meta["config"] == {"nz": NZ, "lr": 2e-4} and meta["data_sha256"] == "d" * 64
        assert meta["metrics"]["final_metrics"] == {"loss_d": 1.25, "loss_g": 0.5}
        assert "note" not in meta["metrics"]  # None is dropped: BentoML rejects it
        assert meta["validation_max_abs_diff"] == entry["validation"]["max_abs_diff"]
        assert ("calibration" in meta) == (role == "discriminator")
    assert store.latest("toy-discriminator").info.metadata["calibration"] == manifest["calibration"]


def test_ensure_registered_registers_once(folder, bentoml_home):
    first = ensure_registered("toy", folder)
    assert ensure_registered("toy", folder) == first
    assert [len(store.versions(f"toy-{r}")) for r in ("generator", "discriminator")] == [1, 1]


def test_ensure_registered_adds_only_missing_roles(folder, bentoml_home):
    first = register_folder("toy", folder)
    bentoml.models.delete(first["discriminator"])
    again = ensure_registered("toy", folder)
    assert again["generator"] == first["generator"]
    assert again["discriminator"] != first["discriminator"]
    assert len(store.versions("toy-generator")) == 1


@pytest.mark.parametrize(
    ("damage", "name"),
    [
        ("corrupt", "discriminator.onnx"),
        ("missing", "discriminator.onnx"),
        ("corrupt", "vocab.json"),
        ("missing", "vocab.json"),
    ],
)
def test_sha256_mismatch_blocks_registration(folder, bentoml_home, damage, name):
    target = folder / name
    if damage == "corrupt":
        target.write_bytes(target.read_bytes()[:-1] + b"\0")
        match = rf"{name} is corrupt or was replaced"
    else:
        target.unlink()
        match = rf"{name} is missing"
    for register in (register_folder, ensure_registered):
        with pytest.raises(ArtifactError, match=match) as err:
            register("toy", folder)
        assert "ecomgan export --family toy" in str(err.value)
    assert bentoml.models.list() == []  # nothing registered, not even the intact generator


def test_manifest_of_other_family_is_rejected(folder, bentoml_home):
    manifest = manifest_of(folder)
    manifest["family"] = "other"
    (folder / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ArtifactError, match="is for family 'other', not 'toy'"):
        register_folder("toy", folder)


def test_refuses_to_replace_a_foreign_folder(tmp_path, monkeypatch):
    monkeypatch.setitem(FAMILIES, "toy", toy_family(tmp_path / "toy"))
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(ArtifactError, match="not a previous export"):
        export_family("toy", tmp_path / "ckpt.pt", tmp_path / "mine")
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"


def test_interrupted_reexport_keeps_previous_folder(folder, monkeypatch):
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    real_validate = export.onnx.validate_onnx

    def fail_on_discriminator(ex, path, **kwargs):
        if path.name == "discriminator.onnx":
            raise KeyboardInterrupt
        return real_validate(ex, path, **kwargs)

    monkeypatch.setattr(export.onnx, "validate_onnx", fail_on_discriminator)
    with pytest.raises(KeyboardInterrupt):
        export_family("toy", folder.parent / "ckpt.pt", folder, calibration_samples=50)
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before
    assert [p.name for p in folder.parent.iterdir() if p.name.startswith(".")] == []


def test_reexport_replaces_the_whole_folder(folder):
    (folder / "stale.png").write_bytes(b"old sample")
    result = export_family("toy", folder.parent / "ckpt.pt", folder, calibration_samples=50)
    assert {p.name for p in folder.iterdir()} == SHIPPED
    assert result.manifest == manifest_of(folder)
    assert result.files["generator"] == folder / "generator.onnx"
    assert result.manifest["calibration"]["n_real"] == 50
