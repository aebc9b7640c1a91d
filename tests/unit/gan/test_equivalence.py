"""Golden digests: the families' training gives the weights the code before ``gan.loop`` gave.

The digests are SHA-256 over every tensor of a checkpoint's trained state (networks, EMA,
optimiser states, both RNG states), recorded from tiny runs of the pre-loop code (commit
dee6fbb, torch 2.13.0 CPU, one thread) with the functions below. A change of the step order,
of any random draw, of the initialisation order or of the resume logic changes them. They hold
for the recording's torch version and CPU kernels; on another torch version the test is
skipped (the resume and same-seed tests of each family still run everywhere).
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
GOLDEN = {
    "products": "1f5aeb734eac5e9ab81c060c24a0277edbc062d3604db8aea36ed06fbef56adf",
    "shoppers": "0d7841d11ae143a19cca1eac1be4b568aa2d89325c3c7bd16e69f3019f637f9f",
}
PRODUCTS = gan.products.TrainConfig(
    steps=6, batch_size=8, nz=8, ngf=8, ndf=8, embed_dim=4, n_critic=2, num_threads=1,
    log_every=1, sample_every=3, checkpoint_every=3,
)  # fmt: skip
SHOPPERS = gan.shoppers.TrainConfig(
    steps=6, batch_size=20, pac=10, nz=8, gen_width=16, gen_depth=1, critic_width=16,
    num_threads=1, log_every=1, sample_every=3, checkpoint_every=3,
)  # fmt: skip


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
    assert run(family, tmp_path, split_at=split_at) == GOLDEN[family]


@pytest.mark.parametrize("family", ["products", "shoppers"])
def test_ctrl_c_then_resume_matches_the_uninterrupted_run(tmp_path, family):
    assert run(family, tmp_path / "a", split_at=-4) == run(family, tmp_path / "b")


if __name__ == "__main__":  # how GOLDEN was recorded (run at the pre-loop commit)
    import tempfile

    for name in GOLDEN:
        with tempfile.TemporaryDirectory() as d:
            print(f'    "{name}": "{run(name, Path(d))}",')
