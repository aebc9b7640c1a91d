"""`evaluate` end to end on tiny dry-run models; the detector and classifier artifacts."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import gan.products
from ecomgan.gates import enforce
from gan.common import load_checkpoint
from gan.products import TrainConfig, exportables, train
from gan.products.baseline import BaselineConfig, load_baseline, train_baseline
from gan.products.classifier import (
    Classifier,
    ClassifierConfig,
    embed,
    load_classifier,
    save_classifier,
)
from gan.products.detector import (
    DetectorConfig,
    augment,
    finetune_detector,
    save_detector_checkpoint,
)
from gan.products.evaluate import (
    DEFAULT_CLASSIFIER,
    balanced_labels,
    evaluate_generators,
    open_generator,
)
from gan.products.report import write_report

TINY = TrainConfig(steps=1, batch_size=8, nz=8, ngf=8, ndf=8, embed_dim=4, num_threads=1)


@pytest.fixture(scope="module")
def fmnist(data_dir: Path) -> Path:
    return data_dir / "fashion-mnist"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return train(TINY, tmp_path_factory.mktemp("tiny"), dry_run=True, progress=False)


@pytest.fixture(scope="module")
def baseline(tmp_path_factory) -> Path:
    cfg = BaselineConfig(batch_size=8, nz=8, ngf=4, ndf=4)
    return train_baseline(cfg, tmp_path_factory.mktemp("baseline"), dry_run=True, log=None)


def test_the_shipped_classifier_is_small_loads_safely_and_is_accurate():
    assert DEFAULT_CLASSIFIER.stat().st_size < 2_000_000
    with np.load(DEFAULT_CLASSIFIER, allow_pickle=False) as arrays:  # plain arrays, no pickle
        assert all(arrays[k].dtype.kind == "f" or arrays[k].dtype.kind == "i" for k in arrays.files)
    model, metrics = load_classifier(DEFAULT_CLASSIFIER)
    assert metrics["test_accuracy"] >= 0.92
    sidecar = json.loads(DEFAULT_CLASSIFIER.with_suffix(".json").read_text())
    assert sidecar["test_accuracy"] == metrics["test_accuracy"]
    f, p = embed(model, np.zeros((3, 1, 28, 28), np.float32))
    assert f.shape == (3, model.cfg.feature_dim) and np.allclose(p.sum(1), 1, atol=1e-5)


def test_classifier_save_load_round_trip(tmp_path):
    model = Classifier(ClassifierConfig(width=4, feature_dim=8)).eval()
    path = save_classifier(model, tmp_path / "c.npz", {"test_accuracy": 0.5})
    loaded, metrics = load_classifier(path)
    x = torch.randn(2, 1, 28, 28)
    assert torch.equal(loaded(x), model(x)) and metrics == {"test_accuracy": 0.5}
    with pytest.raises(ValueError, match="does not exist"):
        load_classifier(tmp_path / "missing.npz")


def test_every_kind_of_generator_draws_the_same_labels_on_the_8_bit_grid(tiny, baseline,
                                                                          tmp_path):  # fmt: skip
    from export.onnx import export_onnx

    onnx_path = export_onnx(exportables(tiny)["generator"], tmp_path / "generator.onnx")
    labels = balanced_labels(25)
    assert np.bincount(labels).tolist() == [3] * 5 + [2] * 5
    torch_imgs = open_generator(tiny).generate(labels, seed=3)
    onnx_imgs = open_generator(onnx_path).generate(labels, seed=3)
    assert onnx_imgs.shape == torch_imgs.shape == (25, 1, 28, 28)
    assert np.abs(onnx_imgs - torch_imgs).max() <= 1 / 127.5 + 1e-6  # one 8-bit step
    assert np.allclose(np.rint((torch_imgs + 1) * 127.5), (torch_imgs + 1) * 127.5, atol=1e-4)
    assert open_generator(baseline).generate(labels, seed=3).shape == (25, 1, 28, 28)
    assert load_baseline(baseline)[1]["step"] == 1


def test_evaluate_runs_end_to_end_and_writes_the_report(tiny, baseline, fmnist, tmp_path):
    report, arrays = evaluate_generators(
        {"tiny": tiny, "baseline": baseline}, data_dir=fmnist,
        n_samples=60, n_test=200, n_train=1000, log=None,
    )  # fmt: skip
    assert report["subject"] == "tiny" and set(report["generators"]) == {"tiny", "baseline"}
    for entry in [report["real"], *report["generators"].values()]:
        assert 0 <= entry["precision"] <= 1 and 0 <= entry["recall"] <= 1
        assert entry["fid"] >= 0 and len(entry["fid_per_class"]) == 10
        assert 0 <= entry["c2st"]["accuracy"] <= 1
        assert "fake_distances" not in entry["memorisation_pixels"]  # arrays, not JSON
    # Untrained generators are far from real data; real data is close to itself.
    assert report["generators"]["tiny"]["fid"] > 10 * report["real"]["fid"]
    assert report["real"]["c2st"]["accuracy"] < 0.65
    det = report["detector"]["against"]
    assert set(det) == {"tiny", "baseline"} and 0 <= det["tiny"]["auroc"] <= 1
    meta = enforce(report, override=True)
    assert meta["override_used"]  # an untrained model is below the gates
    files = write_report(report, arrays, tmp_path / "out", meta)
    names = {f.name for f in files}
    assert {"report.json", "report.md", "samples_tiny.png", "samples_baseline.png"} <= names
    saved = json.loads((tmp_path / "out" / "report.json").read_text())
    assert saved["gates"]["override_used"] is True
    assert "| FID vs test" in (tmp_path / "out" / "report.md").read_text()


def test_detector_fine_tuning_writes_an_exportable_checkpoint(tiny, fmnist, tmp_path):
    cfg = DetectorConfig(steps=2, batch_size=8, fakes_per_generator=8)
    disc, info = finetune_detector(tiny, [tiny], cfg, data_dir=fmnist, log=None)
    assert info["n_fakes"] == 16 and len(info["generators"]) == 2  # EMA + raw generator
    out = save_detector_checkpoint(tiny, disc, tmp_path / "detector.pt", info)
    assert load_checkpoint(out)["detector"]["config"]["steps"] == 2
    ex = exportables(out)["discriminator"]
    with torch.no_grad():
        baked = ex.module(*ex.example_inputs)
        assert torch.allclose(baked, disc.eval()(*ex.example_inputs), atol=1e-5)
    # The generator is untouched.
    assert np.array_equal(gan.products.sample(out, 2, 0, 0), gan.products.sample(tiny, 2, 0, 0))


def test_augmentations_keep_shape_range_and_are_seeded():
    pixels = np.random.default_rng(0).integers(0, 256, (16, 28, 28), dtype=np.uint8)
    cfg = DetectorConfig(p_noise=1.0, p_blur=1.0, p_jpeg=1.0)
    a = augment(pixels, cfg, np.random.default_rng(1))
    b = augment(pixels, cfg, np.random.default_rng(1))
    assert a.shape == (16, 1, 28, 28) and torch.equal(a, b)
    assert a.min() >= -1 and a.max() <= 1
