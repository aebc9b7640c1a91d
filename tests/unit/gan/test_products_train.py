"""Tests of the products family interface: training, checkpoints, resume, Ctrl-C, sampling."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import gan.products
from gan.common import latent, load_checkpoint, save_checkpoint
from gan.exportable import Exportable
from gan.products import (
    TrainConfig,
    calibration_inputs,
    describe,
    exportables,
    load,
    sample,
    train,
)
from tests.unit.gan.test_products_data import write_split

# One thread: tiny ops on two threads crawl when another process holds a core.
TINY = TrainConfig(
    steps=4, batch_size=8, nz=8, ngf=8, ndf=8, embed_dim=4,
    log_every=1, sample_every=2, checkpoint_every=2, num_threads=1,
)  # fmt: skip
STATE_KEYS = ("generator", "generator_ema", "discriminator", "optim_g", "optim_d", "rng_state")


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    """A tiny dataset in the real file layout (both splits)."""
    folder = tmp_path_factory.mktemp("fashion-mnist")
    write_split(folder, "train", n=32, seed=0)
    write_split(folder, "test", n=20, seed=1)
    return folder


@pytest.fixture(scope="module")
def tiny_ckpt(tmp_path_factory, data_dir) -> Path:
    return train(TINY, tmp_path_factory.mktemp("run"), data_dir=data_dir, progress=False)


def assert_same_tensors(a, b, path="ckpt"):
    if isinstance(a, torch.Tensor):
        assert torch.equal(a, b), path
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), path
        for k in a:
            assert_same_tensors(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, list | tuple):
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_same_tensors(x, y, f"{path}[{i}]")
    else:
        assert a == b, path


def test_public_interface():
    assert set(gan.products.__all__) >= {
        "TrainConfig", "train", "load", "sample", "exportables", "calibration_inputs", "describe",
    }  # fmt: skip


def test_train_config_is_flat_with_help_and_round_trips():
    for f in dataclasses.fields(TrainConfig):
        assert f.type in (int, float, str, bool), f.name  # real classes, for the CLI
        assert f.metadata["help"] and f.default is not dataclasses.MISSING
    assert TrainConfig.from_dict(TINY.to_dict()) == TINY
    with pytest.raises(ValueError, match="unknown"):
        TrainConfig.from_dict({"lr": 1.0})
    with pytest.raises(ValueError, match="loss"):
        TrainConfig(loss="wasserstein")
    with pytest.raises(dataclasses.FrozenInstanceError):
        TINY.steps = 3  # type: ignore[misc]


def test_dry_run_end_to_end(tmp_path, monkeypatch):
    monkeypatch.setenv("ECOMGAN_OFFLINE", "1")
    monkeypatch.setattr("gan.datasets.SYSTEM_ROOT", tmp_path / "none")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    cfg = TrainConfig(num_threads=1)
    path = train(cfg, tmp_path / "out", dry_run=True, progress=False)
    assert path == tmp_path / "out" / "checkpoint.pt"
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    assert (ckpt["format"], ckpt["version"], ckpt["family"], ckpt["step"]) == (
        "ecomgan-checkpoint", 1, "products", 1,
    )  # fmt: skip
    assert ckpt["config"] == cfg.to_dict() and ckpt["data_sha256"] == "synthetic"
    assert set(STATE_KEYS) <= ckpt.keys()
    records = [json.loads(line) for line in (tmp_path / "out" / "metrics.jsonl").open()]
    assert len(records) == 1 and records[0]["step"] == 1
    assert {"loss_d", "loss_d_real", "loss_d_fake", "loss_g", "d_x", "d_g_z",
            "img_per_s", "elapsed_s"} <= records[0].keys()  # fmt: skip
    for name in ("step_000001.png", "latest.png"):
        assert Image.open(tmp_path / "out" / "samples" / name).size == (302, 302)  # 10 x 10
    info = describe(path)
    json.dumps(info)
    assert info["step"] == 1 and info["final_metrics"]["loss_g"] == records[0]["loss_g"]


def test_training_writes_samples_metrics_and_checkpoints(tiny_ckpt):
    out = tiny_ckpt.parent
    assert sorted(p.name for p in (out / "samples").iterdir()) == [
        "latest.png", "step_000002.png", "step_000004.png",
    ]  # fmt: skip
    assert [json.loads(line)["step"] for line in (out / "metrics.jsonl").open()] == [1, 2, 3, 4]
    assert load_checkpoint(tiny_ckpt)["step"] == 4


def test_same_seed_same_checkpoint(tmp_path, data_dir, tiny_ckpt):
    again = train(TINY, tmp_path / "again", data_dir=data_dir, progress=False)
    a, b = load_checkpoint(tiny_ckpt), load_checkpoint(again)
    for key in STATE_KEYS:
        assert_same_tensors(a[key], b[key], key)
    latest = "samples/latest.png"
    assert (tiny_ckpt.parent / latest).read_bytes() == (again.parent / latest).read_bytes()
    other = train(dataclasses.replace(TINY, seed=1), tmp_path / "other", data_dir=data_dir,
                  progress=False)  # fmt: skip
    w = "project.weight"
    assert not torch.equal(a["generator"][w], load_checkpoint(other)["generator"][w])


def test_resume_continues_exactly(tmp_path, data_dir, tiny_ckpt):
    out = tmp_path / "resumed"
    half = train(dataclasses.replace(TINY, steps=2), out, data_dir=data_dir, progress=False)
    assert load_checkpoint(half)["step"] == 2
    full = train(TINY, out, data_dir=data_dir, resume=half, progress=False)
    a, b = load_checkpoint(tiny_ckpt), load_checkpoint(full)
    assert b["step"] == 4
    for key in STATE_KEYS:
        assert_same_tensors(a[key], b[key], key)
    assert [json.loads(line)["step"] for line in (out / "metrics.jsonl").open()] == [1, 2, 3, 4]
    with pytest.raises(ValueError, match="model shape"):
        train(dataclasses.replace(TINY, ngf=16), tmp_path / "x", data_dir=data_dir, resume=half)


def test_sigint_to_a_training_process(tmp_path, data_dir):
    cfg = dataclasses.replace(TINY, steps=10**6, checkpoint_every=10**6)
    code = (
        "import sys; from pathlib import Path; from gan.products import TrainConfig, train\n"
        f"train(TrainConfig(**{cfg.to_dict()!r}), Path(sys.argv[1]), data_dir=Path(sys.argv[2]),"
        " progress=False)"
    )
    repo = Path(__file__).resolve().parents[3]
    proc = subprocess.Popen([sys.executable, "-c", code, str(tmp_path), str(data_dir)], cwd=repo)
    metrics, deadline = tmp_path / "metrics.jsonl", time.monotonic() + 60
    while not (metrics.exists() and len(metrics.read_text().splitlines()) >= 3):
        assert proc.poll() is None and time.monotonic() < deadline, "training did not start"
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=60) != 0
    assert load_checkpoint(tmp_path / "checkpoint.pt")["step"] >= 3
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]


def test_load_and_sample(tiny_ckpt):
    cfg, nets = load(tiny_ckpt)
    assert cfg == TINY and set(nets) == {"generator", "discriminator"}
    assert not nets["generator"].training and not nets["discriminator"].training
    images = sample(tiny_ckpt, 3, label=7, seed=5)
    assert images.shape == (3, 1, 28, 28) and images.dtype == np.float32
    assert images.min() >= -1 and images.max() <= 1
    np.testing.assert_array_equal(images, sample(tiny_ckpt, 3, label=7, seed=5))
    assert not np.array_equal(images, sample(tiny_ckpt, 3, label=7, seed=6))
    # The service draws z with gan.common.latent and runs the EMA generator on it.
    with torch.no_grad():
        expected = nets["generator"](torch.from_numpy(latent(3, cfg.nz, 5)), torch.full((3,), 7))
    np.testing.assert_array_equal(images, expected.numpy())
    with pytest.raises(ValueError, match="label"):
        sample(tiny_ckpt, 1, label=10, seed=0)


def test_exportables(tiny_ckpt):
    ex = exportables(tiny_ckpt)
    assert set(ex) == {"generator", "discriminator"}
    g, d = ex["generator"], ex["discriminator"]
    assert isinstance(g, Exportable) and isinstance(d, Exportable)
    assert (g.input_names, g.output_names) == (("z", "label"), ("image",))
    assert (d.input_names, d.output_names) == (("image", "label"), ("logit",))
    assert [t.shape for t in g.example_inputs] == [(10, 8), (10,)]
    assert g.example_inputs[1].dtype == torch.int64
    with torch.no_grad():
        assert g.module(*g.example_inputs).shape == (10, 1, 28, 28)
        logit = d.module(*d.example_inputs)
        assert logit.shape == (10,)
        torch.testing.assert_close(logit, load(tiny_ckpt)[1]["discriminator"](*d.example_inputs))


def test_calibration_inputs(tiny_ckpt, data_dir):
    real, fake = calibration_inputs(tiny_ckpt, 12, seed=3, data_dir=data_dir)
    (real_x, real_y), (fake_x, fake_y) = real, fake
    for x, y in ((real_x, real_y), (fake_x, fake_y)):
        assert x.shape == (12, 1, 28, 28) and x.dtype == np.float32
        assert y.shape == (12,) and y.dtype == np.int64
        assert x.min() >= -1 and x.max() <= 1 and y.min() >= 0 and y.max() < 10
    again = calibration_inputs(tiny_ckpt, 12, seed=3, data_dir=data_dir)
    np.testing.assert_array_equal(fake_x, again[1][0])
    with pytest.raises(ValueError, match="n must be"):
        calibration_inputs(tiny_ckpt, 21, seed=3, data_dir=data_dir)


def test_load_rejects_other_families(tmp_path, tiny_ckpt):
    ckpt = load_checkpoint(tiny_ckpt)
    save_checkpoint(tmp_path / "other.pt", {**ckpt, "family": "tabular"})
    with pytest.raises(ValueError, match="tabular"):
        load(tmp_path / "other.pt")
