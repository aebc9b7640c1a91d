"""Tests of gan.common: seeding, latents, atomic checkpoints, EMA, grids, metrics."""

from __future__ import annotations

import hashlib
import json
import os

import numpy as np
import pytest
import torch
from PIL import Image

from gan import common
from gan.common import (
    EMA,
    MetricsLog,
    latent,
    load_checkpoint,
    save_checkpoint,
    save_grid,
    seed_everything,
    sha256_file,
)


def _payload(**extra):
    return {"format": "ecomgan-checkpoint", "version": 1, "w": torch.arange(4.0), **extra}


def test_seed_everything_repeats_draws():
    g1 = seed_everything(3)
    a = (torch.randn(5), torch.randn(5, generator=g1), np.random.rand())
    g2 = seed_everything(3)
    b = (torch.randn(5), torch.randn(5, generator=g2), np.random.rand())
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) and a[2] == b[2]


def test_latent_is_canonical_numpy_pcg64():
    z = latent(4, 16, seed=42)
    assert z.shape == (4, 16) and z.dtype == np.float32
    np.testing.assert_array_equal(z, latent(4, 16, seed=42))
    expected = np.random.Generator(np.random.PCG64(42)).standard_normal((4, 16), np.float32)
    np.testing.assert_array_equal(z, expected)
    assert not np.array_equal(z, latent(4, 16, seed=43))
    # A larger batch starts with the same vectors, so n does not change earlier samples.
    np.testing.assert_array_equal(latent(2, 16, seed=42), z[:2])


def test_checkpoint_round_trip(tmp_path):
    path = tmp_path / "sub" / "ckpt.pt"
    save_checkpoint(path, _payload(step=3, nested={"a": [1, 2.5, "x", True]}))
    back = load_checkpoint(path)
    assert back["step"] == 3 and back["nested"] == {"a": [1, 2.5, "x", True]}
    assert torch.equal(back["w"], torch.arange(4.0))
    assert [p.name for p in path.parent.iterdir()] == ["ckpt.pt"]  # no temp files left
    umask = os.umask(0o022)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask


@pytest.mark.parametrize(
    "content, match",
    [
        (None, "does not exist"),
        (b"not a zip file at all", "corrupt"),
        ({"some": "dict"}, "not an ecomgan-checkpoint"),
        ({"format": "ecomgan-checkpoint", "version": 99}, "version 99"),
    ],
)
def test_load_checkpoint_errors_name_the_file(tmp_path, content, match):
    path = tmp_path / "bad.pt"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        torch.save(content, path)
    with pytest.raises(ValueError, match=match) as err:
        load_checkpoint(path)
    assert str(path) in str(err.value)


def test_load_checkpoint_refuses_pickled_code(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"format": "ecomgan-checkpoint", "version": 1, "obj": EMA}, path)
    with pytest.raises(ValueError, match="corrupt"):
        load_checkpoint(path)


def test_interrupted_save_keeps_previous_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "ckpt.pt"
    save_checkpoint(path, _payload(step=1))

    def interrupted_save(obj, f):
        f.write(b"partial bytes")
        raise KeyboardInterrupt

    monkeypatch.setattr(common.torch, "save", interrupted_save)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(path, _payload(step=2))
    monkeypatch.undo()
    assert load_checkpoint(path)["step"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt.pt"]


def test_ema_update_math():
    net = torch.nn.Linear(2, 1)
    net.register_buffer("counter", torch.zeros(()))
    ema = EMA(net, decay=0.5)
    avg = net.weight.detach().clone()
    assert not ema.module.training and not ema.module.weight.requires_grad
    for n in range(4):
        with torch.no_grad():
            net.weight.add_(1.0)
            net.counter.add_(1.0)
        d = min(0.5, (1 + n) / (10 + n))  # warm-up
        assert ema.current_decay() == pytest.approx(d)
        ema.update(net)
        avg = d * avg + (1 - d) * net.weight.detach()
        torch.testing.assert_close(ema.module.weight, avg)
        assert ema.module.counter.item() == n + 1  # buffers are copied
    assert ema.num_updates == 4
    with pytest.raises(ValueError):
        EMA(net, decay=1.0)


def test_save_grid_layout_and_range(tmp_path):
    images = np.full((12, 1, 28, 28), -1.0, np.float32)
    images[1] = 1.0
    images[2] = 3.0  # clipped
    save_grid(torch.from_numpy(images), nrow=5, path=tmp_path / "g.png", padding=2)
    grid = np.asarray(Image.open(tmp_path / "g.png"))
    assert grid.shape == (3 * 30 + 2, 5 * 30 + 2) and grid.dtype == np.uint8
    assert grid[2:30, 2:30].max() == 0  # image 0 is black
    assert grid[2:30, 32:60].min() == 255 and grid[2:30, 62:90].min() == 255
    assert grid[0, 0] == 128  # padding
    with pytest.raises(ValueError, match="shape"):
        save_grid(np.zeros((2, 3, 28, 28)), 2, tmp_path / "bad.png")


def test_metrics_log_appends_and_truncates_on_resume(tmp_path):
    path = tmp_path / "metrics.jsonl"
    log = MetricsLog(path)
    for step in (10, 20, 30):
        log.append({"step": step, "loss": step / 10})
    assert [json.loads(line)["step"] for line in path.read_text().splitlines()] == [10, 20, 30]
    resumed = MetricsLog(path, keep_until=20)
    assert [r["step"] for r in resumed.records] == [10, 20]
    resumed.append({"step": 30, "loss": 0.5})
    assert [json.loads(line)["loss"] for line in path.read_text().splitlines()] == [1, 2, 0.5]
    assert MetricsLog(path).records == [] and path.read_text() == ""


def test_sha256_file(tmp_path):
    path = tmp_path / "f.bin"
    path.write_bytes(b"abc" * 1000)
    assert sha256_file(path) == hashlib.sha256(b"abc" * 1000).hexdigest()
