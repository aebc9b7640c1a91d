"""Golden digests: the families' training gives the weights the code before ``gan.loop`` gave.

The digests are SHA-256 over every tensor of a checkpoint's trained state (networks, EMA,
optimiser states, both RNG states), recorded from tiny runs of the pre-loop code (commit
dee6fbb, torch 2.13.0 CPU, one thread) with the functions below. A change of the step order,
of any random draw, of the initialisation order or of the resume logic changes them. They hold
for the recording's torch version and CPU kernels: each machine kind gets its digests (the same
code gives other low bits on Intel's and AMD's AVX-512 kernels). On another torch version, or on
a CPU whose kernel fingerprint (`kernel_fingerprint`) was never recorded and whose digest is
none of the recorded ones, the test is skipped (the resume and same-seed tests of each family
still run everywhere).
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import signal
from pathlib import Path
from typing import Any

import pytest
import torch

import gan.products
import gan.shoppers
from gan.common import load_checkpoint
from gan.shoppers.data import FILENAME, synthetic_table
from tests.unit.gan.test_products_data import write_split

RECORDED_WITH = "2.13.0"
# Per machine kind: the family's digest. Intel Xeon (family 6 model 143, AVX-512 and AMX) at
# the pre-loop commit; AMD EPYC (AVX-512) recorded by running this file's __main__ there.
GOLDEN = {
    "products": {
        "1f5aeb734eac5e9ab81c060c24a0277edbc062d3604db8aea36ed06fbef56adf",
        "1aca232e00a3d0b728a27133eb7d87b311b01cce11de336d104859ace4820768",
    },
    "shoppers": {
        "0d7841d11ae143a19cca1eac1be4b568aa2d89325c3c7bd16e69f3019f637f9f",
        "bd69b5e2e4f14f8d286cca470549d69a5249cc7b743c0d4b2e9ca72e5f4d0209",
    },
}
# `kernel_fingerprint()` of the machines whose digests are above (where it was recorded): on
# these a digest outside GOLDEN is a change of the training code, not of the CPU.
KNOWN_KERNELS = {
    "AMD EPYC (AVX-512)": "de16907b6f5535123a2d7690be46a8460ea67324c08ddd831b6f9d8ceb527bbc",
}
PRODUCTS = gan.products.TrainConfig(
    steps=6, batch_size=8, nz=8, ngf=8, ndf=8, embed_dim=4, n_critic=2, num_threads=1,
    log_every=1, sample_every=3, checkpoint_every=3,
)  # fmt: skip
SHOPPERS = gan.shoppers.TrainConfig(
    steps=6, batch_size=20, pac=10, nz=8, gen_width=16, gen_depth=1, critic_width=16,
    num_threads=1, log_every=1, sample_every=3, checkpoint_every=3,
)  # fmt: skip


def kernel_fingerprint() -> str:
    """SHA-256 of a few seeded forward and backward passes through the layer kinds the tiny
    runs use, on one thread: it changes with the CPU's kernels, never with this project's code."""
    with torch.random.fork_rng(), _one_thread():
        torch.manual_seed(0)
        net = torch.nn.Sequential(
            torch.nn.ConvTranspose2d(4, 8, 4, 2, 1),
            torch.nn.BatchNorm2d(8),
            torch.nn.LeakyReLU(0.2),
            torch.nn.Conv2d(8, 4, 3, 1, 1),
            torch.nn.Flatten(),
            torch.nn.Linear(4 * 14 * 14, 16),
        )
        x = torch.randn(8, 4, 7, 7)
        out = net(x)
        out.square().mean().backward()
        h = hashlib.sha256(out.detach().numpy().tobytes())
        for p in net.parameters():
            h.update(p.grad.numpy().tobytes())
    return h.hexdigest()


class _one_thread:
    def __enter__(self) -> None:
        self.threads = torch.get_num_threads()
        torch.set_num_threads(1)

    def __exit__(self, *exc) -> None:
        torch.set_num_threads(self.threads)


def state_digest(ckpt: dict[str, Any]) -> str:
    """SHA-256 over every tensor in ``ckpt``, in sorted key order, with its key path."""
    h = hashlib.sha256()

    def walk(obj: Any, path: str) -> None:
        if isinstance(obj, torch.Tensor):
            h.update(path.encode())
            h.update(obj.contiguous().numpy().tobytes())
        elif isinstance(obj, dict):
            for k in sorted(obj, key=str):
                walk(obj[k], f"{path}.{k}")
        elif isinstance(obj, list | tuple):
            for i, v in enumerate(obj):
                walk(v, f"{path}[{i}]")

    walk(ckpt, "")
    return h.hexdigest()


def run(family: str, root: Path, *, split_at: int | None = None) -> str:
    """Train the tiny run of ``family`` in ``root`` (resuming at ``split_at``); its digest.

    ``split_at`` < 0 sends Ctrl-C (SIGINT) during step ``-split_at`` instead of stopping
    there, and resumes from the checkpoint written on the way out.
    """
    if family == "products":
        module, cfg, data = gan.products, PRODUCTS, root / "fashion-mnist"
        write_split(data, "train", n=32, seed=0)
    else:
        module, cfg, data = gan.shoppers, SHOPPERS, root / "shoppers"
        data.mkdir(parents=True, exist_ok=True)
        synthetic_table(300, seed=0).to_csv(data / FILENAME, index=False)
    out = root / "run"
    resume = None
    if split_at is not None and split_at > 0:
        first = dataclasses.replace(cfg, steps=split_at)
        resume = module.train(first, out, data_dir=data, progress=False)
    elif split_at is not None:
        from gan.products.train import ProductsGAN  # (the pre-loop code had no such class)
        from gan.shoppers.train import ShoppersGAN

        family_cls = ProductsGAN if family == "products" else ShoppersGAN
        real_step, calls = family_cls.train_step, []
        with pytest.MonkeyPatch.context() as mp, pytest.raises(KeyboardInterrupt):

            def step_with_ctrl_c(*args):
                calls.append(1)
                if len(calls) == -split_at:
                    os.kill(os.getpid(), signal.SIGINT)
                return real_step(*args)

            mp.setattr(family_cls, "train_step", step_with_ctrl_c)
            module.train(cfg, out, data_dir=data, progress=False)
        resume = out / "checkpoint.pt"
        assert load_checkpoint(resume)["step"] == -split_at
    path = module.train(cfg, out, data_dir=data, resume=resume, progress=False)
    return state_digest(load_checkpoint(path))


@pytest.mark.skipif(torch.__version__.split("+")[0] != RECORDED_WITH, reason="other torch")
@pytest.mark.parametrize("family", ["products", "shoppers"])
@pytest.mark.parametrize("split_at", [None, 4])
def test_training_matches_the_pre_loop_code(tmp_path, family, split_at):
    digest = run(family, tmp_path, split_at=split_at)
    if digest in GOLDEN[family]:
        return
    if kernel_fingerprint() not in KNOWN_KERNELS.values():
        pytest.skip(f"CPU kernels unlike the recorded machines' (digest {digest[:12]}...)")
    assert digest in GOLDEN[family], "the training code no longer gives the recorded weights"


@pytest.mark.parametrize("family", ["products", "shoppers"])
def test_ctrl_c_then_resume_matches_the_uninterrupted_run(tmp_path, family):
    assert run(family, tmp_path / "a", split_at=-4) == run(family, tmp_path / "b")


if __name__ == "__main__":  # how GOLDEN was recorded (run at the pre-loop commit)
    import tempfile

    print("kernel fingerprint:", kernel_fingerprint())
    for name in GOLDEN:
        with tempfile.TemporaryDirectory() as d:
            print(f'    "{name}": "{run(name, Path(d))}",')
