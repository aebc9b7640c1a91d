"""Tests of gan.loop with a third, sequence-shaped family: the contract is not image-shaped."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import gan.loop
from gan.common import FlatConfig, atomic_write, load_checkpoint, option
from gan.loop import Family, fit
from tests.unit.gan.test_products_train import assert_same_tensors


@dataclass(frozen=True)
class SeqConfig(FlatConfig):
    seed: int = option(0, "seed")
    steps: int = option(4, "generator updates")
    batch_size: int = option(8, "sequences per minibatch")
    ema_decay: float = option(0.9, "EMA decay")
    sample_every: int = option(2, "steps between samples")
    checkpoint_every: int = option(2, "steps between checkpoints")
    log_every: int = option(1, "steps between metrics lines")
    num_threads: int = option(1, "torch threads")
    length: int = option(12, "time steps per sequence")
    nz: int = option(4, "latent size")


class SeqGAN(Family):
    """Weekly-sales-like sequences (B, T): MLP generator, 1-D conv critic, non-saturating BCE."""

    name = "toy-sequences"
    rate_name = "seq_per_s"
    progress_fields = {"loss_d": ".3f", "loss_g": ".3f"}
    cfg: SeqConfig

    def load_data(self, data_dir, dry_run, ckpt, info) -> str:
        t = torch.arange(self.cfg.length, dtype=torch.float32)
        phase = torch.rand(64, 1)  # from torch's global generator, as a dry run may
        self.real = torch.sin(t / 2 + 6.28 * phase)  # (64, T)
        return "toy"

    def model_config(self, cfg: SeqConfig) -> tuple[int, int]:
        return cfg.length, cfg.nz

    def networks(self) -> dict[str, nn.Module]:
        n, nz = self.cfg.length, self.cfg.nz
        critic = nn.Sequential(nn.Unflatten(1, (1, n)), nn.Conv1d(1, 4, 3), nn.Flatten(),
                               nn.LeakyReLU(0.2), nn.Linear(4 * (n - 2), 1))  # fmt: skip
        return {"generator": nn.Sequential(nn.Linear(nz, n), nn.Tanh()), "discriminator": critic}

    def optimizers(self, nets) -> dict[str, torch.optim.Optimizer]:
        return {f"optim_{k[0]}": torch.optim.Adam(v.parameters(), 1e-2) for k, v in nets.items()}

    def train_step(self, nets, optims, gen, info) -> dict[str, float]:
        net_g, net_d, b = nets["generator"], nets["discriminator"], self.cfg.batch_size
        # (1) update D
        x = self.real[torch.randint(len(self.real), (b,), generator=gen)]  # (B, T)
        fake = net_g(torch.randn(b, self.cfg.nz, generator=gen))  # (B, T)
        out_real, out_fake = net_d(x), net_d(fake.detach())  # (B, 1) each
        loss_d_real = F.binary_cross_entropy_with_logits(out_real, torch.ones_like(out_real))
        loss_d_fake = F.binary_cross_entropy_with_logits(out_fake, torch.zeros_like(out_fake))
        optims["optim_d"].zero_grad()
        (loss_d_real + loss_d_fake).backward()
        optims["optim_d"].step()
        # (2) update G
        out = net_d(fake)
        loss_g = F.binary_cross_entropy_with_logits(out, torch.ones_like(out))
        optims["optim_g"].zero_grad()
        loss_g.backward()
        optims["optim_g"].step()
        return {"loss_d": (loss_d_real + loss_d_fake).item(), "loss_g": loss_g.item(),
                "d_x": out_real.sigmoid().mean().item()}  # fmt: skip

    def save_samples(self, generator, out_dir: Path, step: int) -> None:
        z = torch.linspace(-1, 1, 3 * self.cfg.nz).view(3, self.cfg.nz)
        rows = "".join(",".join(f"{v:.6f}" for v in seq) + "\n" for seq in generator(z).tolist())
        for name in (f"step_{step:06d}.csv", "latest.csv"):
            with atomic_write(out_dir / "samples" / name) as f:
                f.write(rows.encode())

    def checkpoint_extras(self) -> dict:
        return {"vocabulary": ["low", "high"]}


def run(out: Path, cfg: SeqConfig = SeqConfig(), **kwargs) -> Path:
    return fit(SeqGAN(cfg), out, progress=False, **kwargs)


STATE = ("generator", "generator_ema", "discriminator", "optim_g", "optim_d", "rng_state")


@pytest.fixture(scope="module")
def full(tmp_path_factory) -> Path:
    return run(tmp_path_factory.mktemp("full"))


def test_checkpoint_holds_the_documented_entries(full):
    ckpt = torch.load(full, map_location="cpu", weights_only=True)
    assert set(ckpt) == {
        "format", "version", "family", "config", "step", "elapsed_s", "last_metrics",
        "data_sha256", "rng_state", "vocabulary", *STATE,
    }  # fmt: skip
    assert (ckpt["format"], ckpt["version"], ckpt["family"], ckpt["step"]) == (
        "ecomgan-checkpoint", 1, "toy-sequences", 4,
    )  # fmt: skip
    assert ckpt["config"] == SeqConfig().to_dict() and ckpt["vocabulary"] == ["low", "high"]
    assert set(ckpt["last_metrics"]) == {"step", "loss_d", "loss_g", "d_x", "seq_per_s",
                                         "elapsed_s"}  # fmt: skip
    ema, raw = ckpt["generator_ema"]["0.weight"], ckpt["generator"]["0.weight"]
    assert not torch.equal(ema, raw)  # the EMA lags the trained weights


def test_metrics_and_samples_at_their_intervals(full):
    out = full.parent
    assert [json.loads(line)["step"] for line in (out / "metrics.jsonl").open()] == [1, 2, 3, 4]
    names = sorted(p.name for p in (out / "samples").iterdir())
    assert names == ["latest.csv", "step_000002.csv", "step_000004.csv"]
    assert (out / "samples" / "latest.csv").read_text().count("\n") == 3


def test_resume_is_bit_identical(tmp_path, full):
    half = run(tmp_path, dataclasses.replace(SeqConfig(), steps=2))
    resumed = run(tmp_path, resume=half)
    a, b = load_checkpoint(full), load_checkpoint(resumed)
    for key in STATE:
        assert_same_tensors(a[key], b[key], key)
    assert [json.loads(line)["step"] for line in (tmp_path / "metrics.jsonl").open()] == [
        1, 2, 3, 4,
    ]  # fmt: skip
    other = load_checkpoint(run(tmp_path / "seed1", dataclasses.replace(SeqConfig(), seed=1)))
    assert not torch.equal(a["generator"]["0.weight"], other["generator"]["0.weight"])


def test_ctrl_c_saves_the_completed_steps_and_resumes_exactly(tmp_path, full, monkeypatch):
    real_step, calls = SeqGAN.train_step, []

    def step_then_interrupt(*args):
        calls.append(1)
        if len(calls) == 4:
            raise KeyboardInterrupt
        return real_step(*args)

    monkeypatch.setattr(SeqGAN, "train_step", step_then_interrupt)
    cfg = dataclasses.replace(SeqConfig(), checkpoint_every=100)
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path, cfg)
    assert load_checkpoint(tmp_path / "checkpoint.pt")["step"] == 3
    monkeypatch.undo()
    resumed = load_checkpoint(run(tmp_path, cfg, resume=tmp_path / "checkpoint.pt"))
    for key in STATE:
        assert_same_tensors(load_checkpoint(full)[key], resumed[key], key)


def test_a_ctrl_c_during_a_save_waits_for_the_save(tmp_path, monkeypatch):
    real_save, completed = gan.loop.save_checkpoint, []

    def save_with_ctrl_c(path, payload):
        if not completed:
            os.kill(os.getpid(), signal.SIGINT)  # arrives while the checkpoint is written
        real_save(path, payload)
        completed.append(payload["step"])

    monkeypatch.setattr(gan.loop, "save_checkpoint", save_with_ctrl_c)
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path)
    assert completed == [2, 2]  # the interrupted save finished; then the Ctrl-C checkpoint
    assert load_checkpoint(tmp_path / "checkpoint.pt")["step"] == 2
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_resume_refuses_other_families_and_shapes(tmp_path, full):
    with pytest.raises(ValueError, match="model shape"):
        run(tmp_path, dataclasses.replace(SeqConfig(), length=10), resume=full)

    class Other(SeqGAN):
        name = "toy-text"

    with pytest.raises(ValueError, match="'toy-sequences' checkpoint, not 'toy-text'"):
        fit(Other(SeqConfig()), tmp_path, resume=full, progress=False)


def test_a_one_process_family_refuses_torchrun(tmp_path, monkeypatch):
    class OneProcess(SeqGAN):
        data_parallel = False

    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(ValueError, match="toy-sequences family trains in one process"):
        fit(OneProcess(SeqConfig()), tmp_path, progress=False)


def test_ctrl_c_mid_step_finishes_the_step_and_resumes_exactly(tmp_path, full, monkeypatch):
    real_step, calls = SeqGAN.train_step, []

    def step_with_ctrl_c(self, nets, optims, gen, info):
        calls.append(1)
        if len(calls) != 3:
            return real_step(self, nets, optims, gen, info)
        opt_d = optims["optim_d"]
        real_update = opt_d.step

        def update_then_ctrl_c(*args, **kwargs):  # after this step's D update, before G's
            real_update(*args, **kwargs)
            os.kill(os.getpid(), signal.SIGINT)

        opt_d.step = update_then_ctrl_c
        try:
            return real_step(self, nets, optims, gen, info)
        finally:
            del opt_d.step

    monkeypatch.setattr(SeqGAN, "train_step", step_with_ctrl_c)
    cfg = dataclasses.replace(SeqConfig(), checkpoint_every=100)
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path, cfg)
    assert len(calls) == 3 and load_checkpoint(tmp_path / "checkpoint.pt")["step"] == 3
    resumed = load_checkpoint(run(tmp_path, cfg, resume=tmp_path / "checkpoint.pt"))
    for key in STATE:
        assert_same_tensors(load_checkpoint(full)[key], resumed[key], key)
