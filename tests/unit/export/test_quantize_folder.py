"""quantize_folder, INT8 registration and INT8 serving, on test_pipeline's toy family.

The toy family's module here is `QTOY`: test_pipeline's toy trainer plus the quantisation
hooks. The products hooks are checked against the shipped folder at the end.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path

import bentoml
import numpy as np
import onnxruntime as ort
import pytest

from ecomgan.calibration import auroc
from ecomgan.contract import FamilyAPI
from ecomgan.families import FAMILIES, Family
from export import store
from export.pipeline import (
    ArtifactError,
    ensure_registered,
    quantize_folder,
    register_folder,
)
from export.quantize import QuantizationError, Tolerance
from tests.unit.export import test_pipeline
from tests.unit.export.test_pipeline import (
    CLASSES,
    NZ,
    SIDE,
    ToyTrainer,
    manifest_of,
    sha,
    toy_family,
)

# test_pipeline's fixtures, used here by name.
exported = test_pipeline.exported
bentoml_home = test_pipeline.bentoml_home

REPO = Path(__file__).resolve().parents[3]


def _run(path: Path, feeds: dict[str, np.ndarray]) -> np.ndarray:
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, feeds)[0]


class QuantToyTrainer(ToyTrainer):
    """The toy trainer with the hooks `quantize_folder` reads."""

    def __init__(self) -> None:
        super().__init__()
        self.QUANTIZATION_RULES = {
            "generator": (Tolerance("mae_vs_fp32", higher_is_better=False, max_worsening=0.05),),
            "discriminator": (Tolerance("auroc", higher_is_better=True, max_worsening=0.02),),
        }

    def quantization_inputs(self, folder, role, n, seed, data_dir=None):
        rng = np.random.default_rng(seed)
        labels = rng.integers(0, CLASSES, n)
        if role == "generator":
            return {"z": rng.standard_normal((n, NZ)).astype(np.float32), "label": labels}
        return {"image": rng.uniform(-1, 1, (n, 1, SIDE, SIDE)).astype(np.float32),
                "label": labels}  # fmt: skip

    def detector_inputs(self, folder, n, seed, data_dir=None):
        return self.calibration_inputs(None, n, seed, data_dir)

    def quantization_quality(self, folder, role, path, data_dir=None):
        if role == "generator":
            feeds = self.quantization_inputs(folder, role, 200, 7)
            diff = _run(path, feeds) - _run(Path(folder) / "generator.onnx", feeds)
            return {"mae_vs_fp32": float(np.abs(diff).mean())}
        (rx, ry), (fx, fy) = self.detector_inputs(folder, 200, 7)
        real = _run(path, {"image": rx, "label": ry})
        fake = _run(path, {"image": fx, "label": fy})
        return {"auroc": auroc(-real, -fake)}


QTOY = QuantToyTrainer()


class ToyAPI(FamilyAPI):
    examples = {"toy_generate": {"count": 1}}  # contract members; this test serves no route

    @staticmethod
    def write_samples(*args, **kwargs) -> str:
        raise NotImplementedError

    @staticmethod
    def input_ranges(role: str, metadata: dict) -> dict[str, tuple[int, int]]:
        return {"label": (0, CLASSES - 1)}


@pytest.fixture
def qfolder(exported, tmp_path, monkeypatch) -> Path:
    """A copy of the toy export, with the toy family pointing at the hooked trainer."""
    import shutil

    base = toy_family(tmp_path / "toy")
    family = Family(**{**base.__dict__, "trainer": f"{__name__}:QTOY", "api": f"{__name__}:ToyAPI"})
    monkeypatch.setitem(FAMILIES, "toy", family)
    return Path(shutil.copytree(exported, tmp_path / "toy"))


def _contents(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in folder.iterdir()}


def _leftovers(folder: Path) -> list[str]:
    return [p.name for p in folder.parent.iterdir() if p.name.startswith(".")]


def test_quantize_folder_adds_int8_files_and_manifest_entries(qfolder):
    before = manifest_of(qfolder)
    fp32 = {name: data for name, data in _contents(qfolder).items() if name != "manifest.json"}
    result = quantize_folder("toy", qfolder, ["generator", "discriminator"])
    after = manifest_of(qfolder)
    assert {n: d for n, d in _contents(qfolder).items() if n in fp32} == fp32
    assert _leftovers(qfolder) == []
    for role in ("generator", "discriminator"):
        entry = after["roles"][role].pop("int8")
        assert entry == result[role]
        path = qfolder / entry["file"]
        assert entry["file"] == f"{role}.int8.onnx"
        assert entry["sha256"] == sha(path) and entry["size_bytes"] == path.stat().st_size
        report = entry["quantization"]
        assert report["source"]["sha256"] == before["roles"][role]["sha256"]
        assert report["quality"]["passed"] and report["calibration_rows"] > 0
        assert ("calibration" in entry) == (role == "discriminator")
    assert after == before  # nothing else in the manifest changed
    cal = result["discriminator"]["calibration"]
    fp32_cal = before["calibration"]
    assert cal["n_real"] == fp32_cal["n_real"] == 300 and cal["target_fpr"] == 0.01
    assert cal["a"] < 0 and cal["fpr"] <= 0.01 and cal["auroc"] > 0.99
    assert cal != fp32_cal  # refit on INT8 logits, not copied


def test_rejected_role_leaves_the_folder_untouched(qfolder, monkeypatch):
    before = _contents(qfolder)
    impossible = (Tolerance("auroc", higher_is_better=True, max_worsening=-1.0),)
    monkeypatch.setitem(QTOY.QUANTIZATION_RULES, "discriminator", impossible)
    # The generator passes first; it must not be written either.
    with pytest.raises(QuantizationError, match="auroc") as err:
        quantize_folder("toy", qfolder, ["generator", "discriminator"])
    assert err.value.failures and not err.value.report["quality"]["passed"]
    assert _contents(qfolder) == before
    assert _leftovers(qfolder) == []


def test_family_without_hooks_and_bad_roles_are_refused(qfolder, monkeypatch):
    with pytest.raises(ValueError, match="non-empty subset"):
        quantize_folder("toy", qfolder, ["critic"])
    monkeypatch.setitem(FAMILIES, "toy", toy_family(qfolder))  # ToyTrainer: no hooks
    with pytest.raises(ValueError, match="cannot be quantised.*quantization_inputs"):
        quantize_folder("toy", qfolder)


def test_register_stores_the_int8_file(qfolder, bentoml_home):
    quantize_folder("toy", qfolder, ["discriminator"])
    manifest = manifest_of(qfolder)
    register_folder("toy", qfolder)
    disc, gen = store.latest("toy-discriminator"), store.latest("toy-generator")
    entry = manifest["roles"]["discriminator"]["int8"]
    assert sha(store.model_file(disc, "model.int8.onnx")) == entry["sha256"]
    assert disc.info.metadata["int8"] == {"sha256": entry["sha256"],
                                          "calibration": entry["calibration"]}  # fmt: skip
    assert disc.info.metadata["calibration"] == manifest["calibration"]  # FP32 stays FP32
    assert "int8" not in gen.info.metadata
    assert not Path(gen.path_of("model.int8.onnx")).exists()


def test_ensure_registered_registers_again_when_int8_appears(qfolder, bentoml_home):
    first = ensure_registered("toy", qfolder)
    quantize_folder("toy", qfolder, ["discriminator"])
    second = ensure_registered("toy", qfolder)
    assert second["generator"] == first["generator"]
    assert second["discriminator"] != first["discriminator"]
    assert ensure_registered("toy", qfolder) == second
    assert len(store.versions("toy-discriminator")) == 2


def test_corrupt_int8_file_blocks_registration(qfolder, bentoml_home):
    quantize_folder("toy", qfolder, ["discriminator"])
    path = qfolder / "discriminator.int8.onnx"
    path.write_bytes(path.read_bytes()[:-1] + b"\0")
    for register in (register_folder, ensure_registered):
        with pytest.raises(ArtifactError, match="corrupt.*ecomgan quantize --family toy"):
            register("toy", qfolder)
    assert bentoml.models.list() == []


@pytest.fixture
def served_toy(qfolder, bentoml_home, monkeypatch) -> Iterator[Path]:
    """The toy family alone in the registry, registered with an INT8 discriminator."""
    saved = dict(FAMILIES)  # restored as it was, order included (the registry's order is API)
    for name in [n for n in FAMILIES if n != "toy"]:
        del FAMILIES[name]
    monkeypatch.setenv("ECOMGAN_ORT_PROVIDERS", "CPUExecutionProvider")
    try:
        quantize_folder("toy", qfolder, ["discriminator"])
        register_folder("toy", qfolder)
        yield qfolder
    finally:
        FAMILIES.clear()
        FAMILIES.update(saved)


@pytest.mark.parametrize("precision", ["fp32", "int8", None])
def test_load_sessions_and_catalog_follow_ecomgan_precision(served_toy, monkeypatch, caplog,
                                                            precision):  # fmt: skip
    from serving.catalog import load_catalog, verify_models
    from serving.services import load_sessions

    if precision:
        monkeypatch.setenv("ECOMGAN_PRECISION", precision)
    else:
        monkeypatch.delenv("ECOMGAN_PRECISION", raising=False)
    int8 = precision == "int8"
    manifest = manifest_of(served_toy)
    caplog.set_level(logging.INFO, logger="ecomgan")
    session, _ = load_sessions("discriminator")["toy"]
    want = "model.int8.onnx" if int8 else "model.onnx"
    assert f"loaded toy-discriminator:{store.latest('toy-discriminator').tag.version} ({want})" in (
        caplog.text
    )
    image = np.linspace(-1, 1, 2 * SIDE * SIDE, dtype=np.float32).reshape(2, 1, SIDE, SIDE)
    feeds = {"image": image, "label": np.array([0, 2])}
    direct = _run(served_toy / ("discriminator.int8.onnx" if int8 else "discriminator.onnx"), feeds)
    np.testing.assert_allclose(session.run(None, feeds)[0], direct, rtol=0, atol=1e-6)
    caplog.clear()
    load_sessions("generator")  # no INT8 generator: FP32, with a warning under int8
    assert "loaded toy-generator" in caplog.text and "(model.onnx)" in caplog.text
    assert ("no INT8 file" in caplog.text) == int8
    served = load_catalog()["toy-discriminator"]
    int8_cal = manifest["roles"]["discriminator"]["int8"]["calibration"]
    assert served.metadata["calibration"] == (int8_cal if int8 else manifest["calibration"])
    verify_models()


def test_bad_precision_and_corrupt_stored_int8_are_refused(served_toy, monkeypatch):
    from serving.catalog import load_catalog, verify_models

    monkeypatch.setenv("ECOMGAN_PRECISION", "int4")
    with pytest.raises(ValueError, match="ECOMGAN_PRECISION must be one of"):
        load_catalog()
    path = Path(store.latest("toy-discriminator").path_of("model.int8.onnx"))
    path.write_bytes(path.read_bytes()[:-1] + b"\0")
    with pytest.raises(RuntimeError, match="model.int8.onnx of toy-discriminator.*corrupt"):
        verify_models()


def test_products_detector_inputs_reproduce_the_export_calibration(data_dir):
    from ecomgan.calibration import fit_detector
    from gan.products.quantization import detector_inputs, quantization_inputs

    folder = REPO / "models" / "products"
    cal = json.loads((folder / "manifest.json").read_text())["calibration"]
    (rx, ry), (fx, fy) = detector_inputs(folder, cal["n_real"], 0, data_dir)
    disc = folder / "discriminator.onnx"
    refit = fit_detector(_run(disc, {"image": rx, "label": ry}),
                         _run(disc, {"image": fx, "label": fy}))  # fmt: skip
    assert refit["a"] == pytest.approx(cal["a"], abs=1e-5)
    assert refit["b"] == pytest.approx(cal["b"], abs=1e-5)
    assert (refit["tpr"], refit["fpr"]) == (cal["tpr"], cal["fpr"])
    with pytest.raises(ValueError, match="evaluation's latent seed"):
        quantization_inputs(folder, "generator", 8, 1, data_dir)
    feeds = quantization_inputs(folder, "discriminator", 8, 1000, data_dir)
    assert feeds["image"].shape == (8, 1, 28, 28) and feeds["label"].dtype == np.int64


def test_int8_is_not_served_on_cuda(served_toy, monkeypatch, caplog):
    import serving.runtime
    from serving.catalog import int8_path

    model = store.latest("toy-discriminator")
    monkeypatch.setenv("ECOMGAN_PRECISION", "int8")
    assert int8_path(model) == model.path_of("model.int8.onnx")
    monkeypatch.setattr(serving.runtime, "available_providers", lambda: ["CUDAExecutionProvider"])
    assert int8_path(model, warn=True) is None
    assert "CPU provider only, not CUDAExecutionProvider" in caplog.text
