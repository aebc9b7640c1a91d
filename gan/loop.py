"""The one training loop of every GAN family; a family supplies a ``Family`` subclass.

The loop owns what does not depend on the data or the networks: seeding, resume, the EMA
generator, the progress bar, ``metrics.jsonl``, sample snapshots, Ctrl-C checkpoints, data
parallelism (``gan.distributed``) and the checkpoint format. A family owns its config, data,
networks, optimisers, one training step (``# (1) update D`` then ``# (2) update G``, as in
pytorch/examples' dcgan) and how samples are written (an image grid, a CSV, text...).

A run, in order (the order of the random draws, so it must not change, or the weights
of the same seed change with it):

1. seed Python, NumPy and torch; a fresh ``torch.Generator`` serves the step's own draws;
2. ``family.load_data`` (a dry run may draw synthetic data from torch's global generator);
3. ``family.networks()`` (initialised from torch's global generator), the EMA copy of
   ``"generator"``, and, when resuming, the checkpoint's weights;
4. ``family.optimizers(nets)``; when resuming, their states and both generators' states;
5. per step: ``family.train_step`` (all its draws from the step generator), the EMA update,
   then metrics, samples and checkpoints at their intervals.

Ctrl-C lets the step in progress finish (every rank stops at the same step), writes the
checkpoint of the completed steps (atomically; a Ctrl-C during the write waits for it), and
re-raises KeyboardInterrupt: resuming from it is bit-identical. A second Ctrl-C during a
step stops at once (that checkpoint may then hold half a step).

Checkpoint: one dict saved with ``torch.save`` and read with ``weights_only=True`` (the format
of ``gan.common.CHECKPOINT_FORMAT``, version 1; unchanged by this loop)::

    format, version, family, config (TrainConfig.to_dict()), step, elapsed_s, last_metrics,
    data_sha256, rng_state {"train", "torch"}, generator_ema,
    <network name>: state_dict for each of family.networks(), e.g. generator, discriminator,
    <optimiser name>: state_dict for each of family.optimizers(), e.g. optim_g, optim_d,
    <the family's extra entries> (family.checkpoint_extras(), e.g. the data transformer)
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import nn
from tqdm import tqdm

from gan import distributed as gan_dist
from gan.common import (
    CHECKPOINT_FORMAT,
    CHECKPOINT_VERSION,
    EMA,
    MetricsLog,
    load_checkpoint,
    save_checkpoint,
    seed_everything,
)


class LoopConfig(Protocol):
    """The fields of a family's ``TrainConfig`` that the loop reads (all families have them)."""

    seed: int
    steps: int
    batch_size: int
    ema_decay: float
    sample_every: int
    checkpoint_every: int
    log_every: int
    num_threads: int

    def to_dict(self) -> dict[str, Any]: ...

    def from_dict(self, d: dict[str, Any]) -> Any: ...


class Family:
    """What a family supplies to ``fit``; subclass it and set ``name``.

    The instance holds the run's config (``self.cfg``) and whatever ``load_data`` keeps
    (tensors, samplers, transformers) for the other hooks.

    Attributes:
        name: The ``family`` field of its checkpoints.
        data_parallel: Whether it trains under ``torchrun`` with several processes; when
            False it refuses them and trains on the CPU.
        dry_run_steps: Steps of a dry run (``ecomgan train --dry-run``).
        rate_name: Metric of the throughput, e.g. ``img_per_s``.
        progress_fields: Metric -> format shown on the progress bar.
    """

    name: str = ""
    data_parallel: bool = True
    dry_run_steps: int = 1
    rate_name: str = "items_per_s"
    progress_fields: Mapping[str, str] = {}

    def __init__(self, cfg: Any) -> None:
        self.cfg = cfg

    def load_data(
        self, data_dir: Path | None, dry_run: bool, ckpt: dict[str, Any] | None,
        info: gan_dist.DistInfo,
    ) -> str:  # fmt: skip
        """Load (or, for a dry run, make) the training data; return its checksum.

        ``ckpt`` is the checkpoint being resumed, if any (e.g. to reuse a fitted transformer).
        """
        raise NotImplementedError

    def model_config(self, cfg: Any) -> object:
        """What must match between a checkpoint's config and this run's to resume it."""
        raise NotImplementedError

    def networks(self) -> dict[str, nn.Module]:
        """Fresh networks by checkpoint key, built in a fixed order; one is ``"generator"``."""
        raise NotImplementedError

    def optimizers(self, nets: Mapping[str, nn.Module]) -> dict[str, torch.optim.Optimizer]:
        """Optimisers of the bare ``nets``, by checkpoint key (e.g. ``optim_g``)."""
        raise NotImplementedError

    def train_step(
        self, nets: Mapping[str, nn.Module], optims: Mapping[str, torch.optim.Optimizer],
        gen: torch.Generator, info: gan_dist.DistInfo,
    ) -> dict[str, float]:  # fmt: skip
        """One generator update and the discriminator updates before it.

        Args:
            nets: The networks as they train (DDP-wrapped with several processes).
            optims: ``optimizers``' result.
            gen: The seeded CPU generator for every random draw of the step (minibatch
                indices, noise), so that a resumed run draws what the uninterrupted one would.
            info: This process's place in the run; with several processes, draw the global
                minibatch, train on ``gan_dist.shard``, and return ``mean_over_ranks``.

        Returns:
            Named scalars of the step (e.g. ``loss_d``, ``loss_g``, ``d_x``, ``d_g_z``).
        """
        raise NotImplementedError

    def items_per_step(self) -> int:
        """Training examples one step reads, for the throughput metric."""
        return self.cfg.batch_size

    def save_samples(self, generator: nn.Module, out_dir: Path, step: int) -> None:
        """Write samples of the EMA ``generator`` (eval mode) under ``out_dir/samples``."""
        raise NotImplementedError

    def checkpoint_extras(self) -> dict[str, Any]:
        """More checkpoint entries (tensors, dicts, lists, str, numbers, bool only)."""
        return {}


def fit(
    family: Family,
    out_dir: Path,
    *,
    data_dir: Path | None = None,
    resume: Path | None = None,
    dry_run: bool = False,
    progress: bool = True,
) -> Path:
    """Train (or resume training) and return the path of the final checkpoint.

    Under ``torchrun`` every process calls this with the same arguments; the processes
    split each minibatch and only rank 0 writes to ``out_dir``.

    Args:
        family: The family, holding the run's config.
        out_dir: Receives ``checkpoint.pt``, ``metrics.jsonl`` and ``samples/``.
        data_dir: The dataset's folder or file (see ``gan.datasets``).
        resume: A checkpoint of the same family to continue from, up to ``cfg.steps``; its
            ``family.model_config`` must match this run's.
        dry_run: ``family.dry_run_steps`` steps on synthetic data (no dataset needed).
        progress: Show a tqdm progress bar (rank 0 only).

    Returns:
        ``out_dir / "checkpoint.pt"``.

    Raises:
        ValueError: On a bad ``resume`` checkpoint, a ``batch_size`` that does not split
            over the processes, or several processes for a family that trains in one.
        KeyboardInterrupt: Re-raised after writing a checkpoint of the steps completed so far.
    """
    if not family.data_parallel:
        if int(os.environ.get("WORLD_SIZE", "1")) > 1:
            raise ValueError(f"the {family.name} family trains in one process; "
                             "run it without torchrun")  # fmt: skip
        return _fit(family, Path(out_dir), gan_dist.DistInfo(), data_dir, resume, dry_run,
                    progress)  # fmt: skip
    with gan_dist.distributed() as info:
        return _fit(family, Path(out_dir), info, data_dir, resume, dry_run, progress)


def trainer(family: type[Family]) -> Callable[..., Path]:
    """A family's public ``train`` function: ``fit`` with a fresh ``family(cfg)``."""

    def train(
        cfg: Any, out_dir: Path, *, data_dir: Path | None = None, resume: Path | None = None,
        dry_run: bool = False, progress: bool = True,
    ) -> Path:  # fmt: skip
        """Train (or resume training) and return the path of the final checkpoint.

        ``cfg`` is the family's ``TrainConfig``; the other arguments, the result and the
        errors are those of ``gan.loop.fit``.
        """
        return fit(family(cfg), out_dir, data_dir=data_dir, resume=resume, dry_run=dry_run,
                   progress=progress)  # fmt: skip

    train.__module__ = family.__module__
    return train


def _fit(
    family: Family, out_dir: Path, info: gan_dist.DistInfo, data_dir: Path | None,
    resume: Path | None, dry_run: bool, progress: bool,
) -> Path:  # fmt: skip
    cfg: LoopConfig = family.cfg
    gan_dist.local_batch_size(cfg.batch_size, info)  # fail early if it does not split
    ckpt_path = out_dir / "checkpoint.pt"
    if cfg.num_threads:
        torch.set_num_threads(cfg.num_threads)
    gen = seed_everything(cfg.seed)
    total = family.dry_run_steps if dry_run else cfg.steps
    t0 = time.perf_counter()
    ckpt = load_checkpoint(resume, family.name) if resume is not None else None
    data_sha256 = family.load_data(data_dir, dry_run, ckpt, info)
    if ckpt is not None and (
        family.model_config(cfg.from_dict(ckpt["config"])) != family.model_config(cfg)
    ):
        raise ValueError(f"{resume} is not a {family.name} checkpoint of this model shape")

    nets = family.networks()
    ema = EMA(nets["generator"], cfg.ema_decay)  # a plain copy: no DDP, whatever the run
    if ckpt is not None:
        for key, net in nets.items():
            net.load_state_dict(ckpt[key])
        ema.module.load_state_dict(ckpt["generator_ema"])
    ema.module.to(info.device)
    # nets stay the bare modules (checkpoints, EMA); the wrappers in `trained` train them.
    trained = {key: gan_dist.wrap(net, info) for key, net in nets.items()}
    optims = family.optimizers(nets)
    step, elapsed_before, last = 0, 0.0, {}
    if ckpt is not None:
        for key, opt in optims.items():
            opt.load_state_dict(ckpt[key])
        gen.set_state(ckpt["rng_state"]["train"])
        torch.set_rng_state(ckpt["rng_state"]["torch"])
        step, elapsed_before = ckpt["step"], ckpt["elapsed_s"]
        ema.num_updates, last = step, ckpt.get("last_metrics", {})
        t0 = time.perf_counter()  # the first run's setup time is already in elapsed_before

    main = info.is_main
    log = MetricsLog(out_dir / "metrics.jsonl", keep_until=step if ckpt else None) if main else None

    def elapsed() -> float:
        return elapsed_before + time.perf_counter() - t0

    def save() -> None:
        if not main:
            return
        with _sigint_held():
            save_checkpoint(ckpt_path, {
                "format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION,
                "family": family.name, "config": cfg.to_dict(), "step": step,
                **family.checkpoint_extras(),
                **{key: net.state_dict() for key, net in nets.items()},
                "generator_ema": ema.module.state_dict(),
                **{key: opt.state_dict() for key, opt in optims.items()},
                "data_sha256": data_sha256, "elapsed_s": elapsed(), "last_metrics": last,
                "rng_state": {"train": gen.get_state(), "torch": torch.get_rng_state()},
            })  # fmt: skip

    def save_samples() -> None:
        if main:
            with torch.no_grad():
                family.save_samples(ema.module, out_dir, step)

    for net in trained.values():
        net.train()
    window_t, window_step, rate = time.perf_counter(), step, 0.0
    try:
        with (
            tqdm(total=total, initial=step, disable=not (progress and main), unit="step") as bar,
            gan_dist.StopSignal(info) as stop,
        ):
            while step < total:
                m = family.train_step(trained, optims, gen, info)
                ema.update(nets["generator"])
                step += 1
                if step % cfg.log_every == 0 or step == total:
                    now = time.perf_counter()
                    seen = (step - window_step) * family.items_per_step()
                    rate = seen / max(now - window_t, 1e-9)
                    window_t, window_step = now, step
                    last = {"step": step, **m, family.rate_name: rate, "elapsed_s": elapsed()}
                    if log is not None:
                        log.append(last)
                shown = {k: format(m[k], f) for k, f in family.progress_fields.items()}
                bar.set_postfix(**shown, **{family.rate_name: f"{rate:.0f}"}, refresh=False)
                bar.update(1)
                if step % cfg.sample_every == 0:
                    save_samples()
                if step % cfg.checkpoint_every == 0:
                    save()
                if stop.requested():
                    raise KeyboardInterrupt
    except KeyboardInterrupt:
        save()  # whole steps, unless a second Ctrl-C cut one short
        raise
    if step % cfg.sample_every != 0:
        save_samples()
    save()
    return ckpt_path


@contextlib.contextmanager
def _sigint_held() -> Iterator[None]:
    """Hold Ctrl-C until the block ends, then raise it: a second Ctrl-C cannot cut a save short.

    (``save_checkpoint`` is atomic anyway: an interrupted save leaves the previous file.)
    Where SIGINT does not raise KeyboardInterrupt (``gan_dist.StopSignal`` owns it during
    the steps), the handler is left alone.
    """
    if (
        threading.current_thread() is not threading.main_thread()
        or signal.getsignal(signal.SIGINT) is not signal.default_int_handler
    ):
        yield
        return
    caught: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: caught.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if caught:
        raise KeyboardInterrupt
