"""Demand networks, the energy score, training determinism, resume and the checkpoint hooks."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import gan.demand
from ecomgan import demand
from gan.demand import (
    TrainConfig,
    artifacts,
    calibration_inputs,
    describe,
    exportables,
    load,
    sample_paths,
    train,
)
from gan.demand.data import synthetic_stores, write_csv
from gan.demand.model import Generator, ModelConfig, energy_score
from tests.unit.gan.test_products_train import assert_same_tensors

TINY = TrainConfig(
    steps=4,
    batch_size=16,
    paths=4,
    width=16,
    depth=1,
    nz=4,
    log_every=1,
    sample_every=2,
    checkpoint_every=2,
    num_threads=1,
)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("walmart")
    write_csv(synthetic_stores(3, 117), folder / "walmart_weekly_sales.csv")
    return folder


@pytest.fixture(scope="module")
def tiny_ckpt(tmp_path_factory, data_dir):
    return train(TINY, tmp_path_factory.mktemp("run"), data_dir=data_dir, progress=False)


def test_energy_score_matches_its_definition():
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(3, 5, 4, generator=g), torch.randn(3, 4, generator=g)
    want = []
    for b in range(3):
        fit = np.mean([np.linalg.norm(x[b, i] - y[b]) for i in range(5)])
        spread = np.mean(
            [np.linalg.norm(x[b, i] - x[b, j]) for i in range(5) for j in range(5) if i != j]
        )
        want.append(fit - 0.5 * spread)
    assert energy_score(x, y).item() == pytest.approx(np.mean(want), abs=1e-4)
    # a proper scoring rule: the true distribution beats a collapsed one
    truth = torch.randn(2000, 8, 2, generator=g)
    wide, point = torch.randn(2000, 8, 2, generator=g), torch.zeros(2000, 8, 2)
    assert energy_score(wide, truth[:, 0]) < energy_score(point, truth[:, 0])


def test_generator_starts_from_the_level_adjusted_seasonal_naive():
    cfg = ModelConfig(
        nz=2, cond_dim=20, horizon=3, window_dim=6, lag_start=5, level_weeks=2, width=8, depth=1
    )
    net = Generator(cfg)
    torch.nn.init.zeros_(net.net[-1].weight)
    torch.nn.init.zeros_(net.net[-1].bias)
    cond = torch.randn(4, 20)
    out = net(torch.randn(4, 2), cond)
    year_ago = torch.exp(cond[:, 3:5]).mean(1, keepdim=True)  # the level a year earlier
    torch.testing.assert_close(out, cond[:, 5:8] - torch.log(year_ago))


def test_unseen_constant_features_are_ignored():
    cfg = ModelConfig(
        nz=2, cond_dim=5, horizon=1, window_dim=6, lag_start=2, level_weeks=1, width=8, depth=1
    )
    net = Generator(cfg)
    cond = torch.randn(50, 5)
    cond[:, 4] = 0.0  # e.g. a Christmas flag never set in training
    net.set_scalers(cond, cond[:, 2:3] + 0.1)
    z = torch.zeros(1, 2)
    a, b = cond[:1].clone(), cond[:1].clone()
    b[0, 4] = 1.0
    torch.testing.assert_close(net(z, a), net(z, b), atol=1e-4, rtol=0)


def test_same_seed_same_weights_and_resume_is_exact(tiny_ckpt, data_dir, tmp_path):
    again = train(TINY, tmp_path / "again", data_dir=data_dir, progress=False)
    a, b = torch.load(tiny_ckpt, weights_only=True), torch.load(again, weights_only=True)
    for key in ("generator", "generator_ema", "critic", "detector"):
        assert_same_tensors(a[key], b[key])
    half = train(
        TrainConfig(**{**TINY.to_dict(), "steps": 2}),
        tmp_path / "half",
        data_dir=data_dir,
        progress=False,
    )
    resumed = train(TINY, tmp_path / "half", data_dir=data_dir, resume=half, progress=False)
    c = torch.load(resumed, weights_only=True)
    for key in ("generator", "generator_ema", "critic", "detector"):
        assert_same_tensors(a[key], c[key])


def test_holdout_is_recorded_and_respected(tiny_ckpt):
    _, _, ckpt = load(tiny_ckpt)
    assert ckpt["last_week"] == 116 - 26
    assert describe(tiny_ckpt)["trained_until_week"] == 90


def test_sampling_is_deterministic_and_matches_the_export(tiny_ckpt, data_dir):
    cfg, nets, _ = load(tiny_ckpt)
    stores = demand.read_sales(data_dir / "walmart_weekly_sales.csv")
    a = sample_paths(nets["generator"], stores[1], cfg.layout(), 50, seed=3)
    b = sample_paths(nets["generator"], stores[1], cfg.layout(), 50, seed=3)
    np.testing.assert_array_equal(a, b)
    assert a.shape == (50, 8) and (a > 0).all()
    ex = exportables(tiny_ckpt)
    assert ex["generator"].input_names == ("z", "cond")
    assert ex["discriminator"].example_inputs[0].shape[1] == cfg.layout().window_dim


def test_artifact_is_a_versioned_encoding(tiny_ckpt):
    doc = json.loads(artifacts(tiny_ckpt)["demand.json"])
    assert demand.read_encoding(doc) == TINY.layout()
    assert len(doc["scalers"]["cond_mean"]) == TINY.layout().cond_dim


def test_calibration_inputs_are_real_and_generated_windows(tiny_ckpt, data_dir):
    (real,), (fake,) = calibration_inputs(tiny_ckpt, 40, seed=0, data_dir=data_dir)
    assert real.shape == fake.shape == (40, TINY.layout().window_dim)
    assert not np.allclose(real, fake)
    # the context weeks (all but the last H) are the same real weeks
    f = len(demand.WINDOW_FEATURES)
    r, g = real.reshape(40, -1, f), fake.reshape(40, -1, f)
    np.testing.assert_allclose(r[:, :, 1:], g[:, :, 1:])


def test_write_samples_draws_a_fan_chart(tiny_ckpt, data_dir, tmp_path):
    msg = gan.demand.write_samples(
        tiny_ckpt,
        tmp_path / "fan",
        count=30,
        seed=1,
        conditions={"store": "2", "data": str(data_dir)},
    )
    assert (tmp_path / "fan.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and "store 2" in msg
    with pytest.raises(ValueError, match="store 9"):
        gan.demand.write_samples(
            tiny_ckpt,
            tmp_path / "x.png",
            count=3,
            seed=1,
            conditions={"store": "9", "data": str(data_dir)},
        )
