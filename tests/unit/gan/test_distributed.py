"""Tests of data-parallel training: 2 CPU processes under torchrun match 1 process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from torch import nn

from gan import distributed as gan_dist
from gan.common import load_checkpoint
from gan.products import TrainConfig, load, train
from gan.products.model import Generator
from tests.unit.gan.test_products_data import write_split

REPO = Path(__file__).resolve().parents[3]
# Batch 8 splits into two shards of 4; one thread per process keeps 2 cores from thrashing.
TINY = TrainConfig(
    steps=3, batch_size=8, nz=8, ngf=8, ndf=8, embed_dim=4,
    log_every=1, sample_every=2, checkpoint_every=2, num_threads=1,
)  # fmt: skip
FLAGS = [f"--{k.replace('_', '-')}={v}" for k, v in TINY.to_dict().items()]
# Each rank trains through the CLI into its own folder, so files from rank 1 would show.
WORKER = """
import os, sys
from ecomgan.cli import main
sys.exit(main([*sys.argv[2:], "--out", os.path.join(sys.argv[1], "rank" + os.environ["RANK"])]))
"""


@pytest.fixture(autouse=True)
def restore_num_threads():
    """train() sets torch's thread count for the process; put it back for other tests."""
    n = torch.get_num_threads()
    yield
    torch.set_num_threads(n)


def torchrun(script: Path, *args: str, nproc: int = 2) -> subprocess.CompletedProcess:
    """``torchrun --standalone`` (it picks a free port) on the CPU, as a subprocess."""
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone",
           f"--nproc_per_node={nproc}", str(script), *args]  # fmt: skip
    return subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=120)


def max_diff(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    assert a.keys() == b.keys()
    return max((a[k].double() - b[k].double()).abs().max().item() for k in a)


def read_metrics(run: Path) -> list[dict[str, float]]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_two_processes_match_one_process(tmp_path, monkeypatch):
    data = tmp_path / "data"
    write_split(data, "train", n=32, seed=0)
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    runs = tmp_path / "runs"
    proc = torchrun(script, str(runs), "train", "--family=products", f"--data-dir={data}", *FLAGS)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert sorted(p.name for p in runs.iterdir()) == ["rank0"]  # rank 1 wrote nothing
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # CPU, like the workers
    single = train(TINY, tmp_path / "single", data_dir=data, progress=False)

    a, b = load_checkpoint(single), load_checkpoint(runs / "rank0" / "checkpoint.pt")
    assert b["step"] == TINY.steps and b["config"] == a["config"]
    # Same seeded draws on every rank: the minibatch generator ends in the same state.
    assert torch.equal(a["rng_state"]["train"], b["rng_state"]["train"])
    for key in ("generator", "generator_ema", "discriminator"):
        assert max_diff(a[key], b[key]) < 1e-5, key  # measured ~2e-7: float order only
    # Metrics are means over ranks, i.e. over the global minibatch.
    multi, one = read_metrics(runs / "rank0"), read_metrics(single.parent)
    assert [r["step"] for r in multi] == [1, 2, 3]
    for r, s in zip(multi, one, strict=True):
        for k in ("loss_d", "loss_g", "d_x", "d_g_z"):
            assert r[k] == pytest.approx(s[k], abs=1e-5), k
    assert sorted(p.name for p in (runs / "rank0" / "samples").iterdir()) == [
        "latest.png", "step_000002.png", "step_000003.png",
    ]  # fmt: skip
    cfg, nets = load(runs / "rank0" / "checkpoint.pt")
    assert cfg == TINY and set(nets) == {"generator", "discriminator"}
    assert not [p for p in runs.rglob("*") if p.name.endswith(".tmp")]


def test_batch_size_must_split_across_processes():
    info = gan_dist.DistInfo(rank=1, world_size=3)
    assert gan_dist.local_batch_size(9, info) == 3
    with pytest.raises(ValueError, match="multiple of the number of processes"):
        gan_dist.local_batch_size(8, info)


def test_shard_is_the_distributed_sampler_split():
    t = torch.arange(8)
    shards = [gan_dist.shard(t, gan_dist.DistInfo(rank=r, world_size=2)) for r in range(2)]
    assert shards[0].tolist() == [0, 2, 4, 6] and shards[1].tolist() == [1, 3, 5, 7]
    assert torch.equal(gan_dist.shard(t, gan_dist.DistInfo()), t)


def test_outside_torchrun_is_one_process(monkeypatch):
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with gan_dist.distributed() as info:
        assert info == gan_dist.DistInfo() and info.is_main
        assert not torch.distributed.is_initialized()
        net = nn.Linear(2, 2)
        assert gan_dist.wrap(net, info) is net and gan_dist.unwrap(net) is net
        assert gan_dist.mean_over_ranks({"a": 1.5}, info) == {"a": 1.5}


def test_cpu_sync_batchnorm_conversion_shares_tensors_and_keys():
    net = Generator(TINY.model_config())
    before = net.state_dict(keep_vars=True)
    assert gan_dist.convert_sync_batchnorm(net, torch.device("cpu")) is net
    after = net.state_dict(keep_vars=True)
    assert before.keys() == after.keys()
    assert all(before[k] is after[k] for k in before)  # the optimiser sees the same tensors
    assert sum(isinstance(m, gan_dist.CpuSyncBatchNorm) for m in net.modules()) == 3
    # Without a process group it is plain BatchNorm.
    bn, sync = nn.BatchNorm2d(3), gan_dist.CpuSyncBatchNorm(3)
    x = torch.randn(4, 3, 5, 5)
    torch.testing.assert_close(sync(x), bn(x), rtol=0, atol=0)
    torch.testing.assert_close(sync.running_var, bn.running_var, rtol=0, atol=0)


def wait_for(flag) -> None:
    deadline = time.monotonic() + 5
    while not flag() and time.monotonic() < deadline:
        time.sleep(0.01)


def test_stop_signal_turns_sigint_into_a_flag():
    with gan_dist.StopSignal(gan_dist.DistInfo(world_size=2)) as stop:
        assert signal.getsignal(signal.SIGINT) == stop._handle  # else SIGINT would stop pytest
        os.kill(os.getpid(), signal.SIGINT)
        wait_for(lambda: stop.signalled)
        assert stop.signalled
        os.kill(os.getpid(), signal.SIGINT)  # several processes: still only the flag
        time.sleep(0.05)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    # One process: the first Ctrl-C is a flag too (the step ends), the second stops at once.
    with pytest.raises(KeyboardInterrupt), gan_dist.StopSignal(gan_dist.DistInfo()) as stop:
        assert not stop.requested()
        os.kill(os.getpid(), signal.SIGINT)
        wait_for(stop.requested)
        assert stop.requested()
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(5)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
