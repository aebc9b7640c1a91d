"""Tests of the shoppers family interface: training, checkpoints, resume, sampling, artifacts."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

import gan.shoppers
from ecomgan.tabular import TabularTransformer
from gan.common import latent, load_checkpoint, save_checkpoint
from gan.shoppers import (
    TrainConfig,
    artifacts,
    calibration_inputs,
    describe,
    load,
    sample,
    sample_frame,
    train,
)
from gan.shoppers.data import COLUMNS, FILENAME, load_split, synthetic_table
from tests.unit.gan.test_products_train import assert_same_tensors

# One thread: tiny ops on two threads crawl when another process holds a core.
TINY = TrainConfig(
    steps=4, batch_size=20, pac=10, nz=8, gen_width=16, gen_depth=1, critic_width=16,
    log_every=1, sample_every=2, checkpoint_every=2, num_threads=1,
)  # fmt: skip
STATE_KEYS = ("generator", "generator_ema", "critic", "detector", "optim_g", "optim_c",
              "optim_det", "rng_state", "transformer")  # fmt: skip


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    """A small random table in the real CSV layout."""
    folder = tmp_path_factory.mktemp("shoppers")
    synthetic_table(300, seed=0).to_csv(folder / FILENAME, index=False)
    return folder


@pytest.fixture(scope="module")
def tiny_ckpt(tmp_path_factory, data_dir) -> Path:
    return train(TINY, tmp_path_factory.mktemp("run"), data_dir=data_dir, progress=False)


def test_public_interface():
    assert set(gan.shoppers.__all__) >= {
        "TrainConfig", "train", "load", "sample", "sample_frame", "exportables",
        "calibration_inputs", "describe", "artifacts",
    }  # fmt: skip


def test_train_config_is_flat_with_help_and_round_trips():
    for f in dataclasses.fields(TrainConfig):
        assert f.type in (int, float, str, bool), f.name  # real classes, for the CLI
        assert f.metadata["help"] and f.default is not dataclasses.MISSING
    assert TrainConfig.from_dict(TINY.to_dict()) == TINY
    d = TrainConfig()
    assert (d.lr_g, d.lr_d, d.beta1, d.beta2, d.gp_weight, d.pac) == (2e-4, 2e-4, 0.5, 0.9, 10, 10)
    with pytest.raises(ValueError, match="unknown"):
        TrainConfig.from_dict({"lr": 1.0})
    with pytest.raises(ValueError, match="multiple of pac"):
        TrainConfig(batch_size=25)
    with pytest.raises(ValueError, match="free_fraction"):
        TrainConfig(free_fraction=1.5)
    with pytest.raises(dataclasses.FrozenInstanceError):
        TINY.steps = 3  # type: ignore[misc]


def test_dry_run_end_to_end(tmp_path, monkeypatch):
    monkeypatch.setenv("ECOMGAN_OFFLINE", "1")
    monkeypatch.delenv("ECOMGAN_DATA_DIR", raising=False)
    cfg = dataclasses.replace(TINY, steps=1000)
    path = train(cfg, tmp_path / "out", dry_run=True, progress=False)
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    assert (ckpt["format"], ckpt["version"], ckpt["family"], ckpt["step"]) == (
        "ecomgan-checkpoint", 1, "shoppers", 2,
    )  # fmt: skip
    assert ckpt["config"] == cfg.to_dict() and ckpt["data_sha256"] == "synthetic"
    assert set(STATE_KEYS) <= ckpt.keys()
    TabularTransformer.from_dict(ckpt["transformer"])
    records = [json.loads(line) for line in (tmp_path / "out" / "metrics.jsonl").open()]
    assert [r["step"] for r in records] == [1, 2]
    assert {"w_dist", "gp", "loss_g", "cond_ce", "loss_det", "det_acc", "rows_per_s",
            "elapsed_s"} <= records[0].keys()  # fmt: skip
    samples = pd.read_csv(tmp_path / "out" / "samples" / "latest.csv")
    assert list(samples.columns) == list(COLUMNS) and len(samples) == 200
    info = describe(path)
    json.dumps(info)
    assert info["step"] == 2 and info["final_metrics"]["loss_g"] == records[-1]["loss_g"]
    assert set(info["parameters"]) == {"generator", "discriminator", "critic"}


def test_same_seed_same_checkpoint(tmp_path, data_dir, tiny_ckpt):
    assert [json.loads(line)["step"] for line in (tiny_ckpt.parent / "metrics.jsonl").open()] == [
        1, 2, 3, 4,
    ]  # fmt: skip
    again = train(TINY, tmp_path / "again", data_dir=data_dir, progress=False)
    a, b = load_checkpoint(tiny_ckpt), load_checkpoint(again)
    for key in STATE_KEYS:
        assert_same_tensors(a[key], b[key], key)
    other = train(dataclasses.replace(TINY, seed=1), tmp_path / "other", data_dir=data_dir,
                  progress=False)  # fmt: skip
    w = "out.weight"
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
        train(dataclasses.replace(TINY, nz=9), tmp_path / "x", data_dir=data_dir, resume=half)


def test_refuses_several_processes(tmp_path, monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(ValueError, match="one process"):
        train(TINY, tmp_path, dry_run=True, progress=False)


def test_sample_is_seeded_and_typed(tiny_ckpt):
    cfg, nets = load(tiny_ckpt)
    assert cfg == TINY and set(nets) == {"generator", "discriminator"}
    assert not nets["generator"].training and not nets["discriminator"].training
    rows = sample(tiny_ckpt, 64, seed=5)
    assert list(rows) == list(COLUMNS)
    again, other = sample(tiny_ckpt, 64, seed=5), sample(tiny_ckpt, 64, seed=6)
    for name, values in rows.items():
        np.testing.assert_array_equal(values, again[name])
    assert any(not np.array_equal(v, other[n]) for n, v in rows.items())
    # The service's path: seeded latents, free conditional vector, EMA generator, decoding.
    tf = gan.shoppers.load_transformer(tiny_ckpt)
    with torch.no_grad():
        x = nets["generator"](torch.from_numpy(latent(64, nets["generator"].z_dim, 5)),
                              torch.zeros(64, tf.cond_dim))  # fmt: skip
    for name, values in tf.decode(x.numpy()).items():
        np.testing.assert_array_equal(rows[name], values)


def test_conditions_hold_on_every_row(tiny_ckpt, data_dir):
    conditions = {"Revenue": "true", "VisitorType": "New_Visitor", "Month": "nov"}
    frame = sample_frame(tiny_ckpt, 500, seed=1, conditions=conditions)
    assert frame["Revenue"].all() and (frame["VisitorType"] == "New_Visitor").all()
    assert (frame["Month"] == "Nov").all()
    real = load_split(data_dir)[0]
    assert list(frame.columns) == list(real.columns)
    assert (frame.dtypes == real.dtypes).all()
    for name, kind in COLUMNS.items():
        if kind == "count" or kind in ("duration", "amount"):
            assert frame[name].min() >= 0
        elif kind == "rate":
            assert frame[name].between(0, 1).all()
        else:
            assert set(frame[name]) <= set(real[name]), name


def test_condition_errors(tiny_ckpt):
    with pytest.raises(ValueError, match="unknown column 'Colour'"):
        sample(tiny_ckpt, 1, seed=0, conditions={"Colour": "red"})
    with pytest.raises(ValueError, match="unknown value 'Smarch' for Month; allowed: "):
        sample(tiny_ckpt, 1, seed=0, conditions={"Month": "Smarch"})
    with pytest.raises(ValueError, match="n must be >= 1"):
        sample(tiny_ckpt, 0, seed=0)
    tf = gan.shoppers.load_transformer(tiny_ckpt)
    seen = tf.cooccurrence[("Browser", "TrafficType")]
    spec = {c.name: c for c in tf.columns}
    b, t = next((b, t) for b in range(spec["Browser"].width)
                for t in range(spec["TrafficType"].width) if (b, t) not in seen)  # fmt: skip
    never = {"Browser": spec["Browser"].categories[b],
             "TrafficType": spec["TrafficType"].categories[t]}  # fmt: skip
    with pytest.raises(ValueError, match="never occur together"):
        sample(tiny_ckpt, 1, seed=0, conditions=never)


def test_calibration_inputs(tiny_ckpt, data_dir):
    real, fake = calibration_inputs(tiny_ckpt, 12, seed=3, data_dir=data_dir)
    tf = gan.shoppers.load_transformer(tiny_ckpt)
    for (x,) in (real, fake):
        assert x.shape == (12, tf.output_dim) and x.dtype == np.float32
        assert np.abs(x).max() <= 1
    again = calibration_inputs(tiny_ckpt, 12, seed=3, data_dir=data_dir)
    np.testing.assert_array_equal(fake[0], again[1][0])
    np.testing.assert_array_equal(real[0], again[0][0])
    capped = calibration_inputs(tiny_ckpt, 10**6, seed=3, data_dir=data_dir)
    assert len(capped[0][0]) == len(capped[1][0]) <= 10**6  # capped at the usable test rows
    with pytest.raises(ValueError, match="n must be >= 1"):
        calibration_inputs(tiny_ckpt, 0, seed=3, data_dir=data_dir)


def test_artifacts_ship_the_transformer(tiny_ckpt):
    files = artifacts(tiny_ckpt)
    assert set(files) == {"transformer.json"}
    doc = json.loads(files["transformer.json"])
    assert doc == load_checkpoint(tiny_ckpt)["transformer"]
    assert TabularTransformer.from_dict(doc).output_dim > 0


def test_load_rejects_other_families(tmp_path, tiny_ckpt):
    ckpt = load_checkpoint(tiny_ckpt)
    save_checkpoint(tmp_path / "other.pt", {**ckpt, "family": "products"})
    with pytest.raises(ValueError, match="products"):
        load(tmp_path / "other.pt")
