"""Train the reviews family: a k+1 detector and a polarity-conditioned GRU generator.

Per step (``ReviewsGAN.train_step``):

- while ``step < mle_steps``: the generator takes an MLE (teacher-forcing) step on real reviews;
- afterwards, when ``adversarial``: SeqGAN-style policy gradient (Yu et al. 2017; REINFORCE
  with the batch-mean baseline and a sequence-level reward instead of Monte-Carlo roll-outs),
  the reward being the detector's log-probability that a sampled review is real (not class
  "generated"), plus ``mle_weight`` x the MLE loss to keep the language model fluent;
- the detector takes one step of k+1 cross-entropy (Salimans et al. 2016; spamGAN): real
  reviews as truthful/deceptive and, when ``adversarial`` and the generator has been
  pre-trained, the generator's samples as the third class.

``adversarial=False`` trains the same detector on the same labelled reviews without any
generated text and leaves the generator untrained: the baseline ``ecomgan evaluate`` reports
beside it. Reviews of the hotels of
``holdout_fold`` are never trained on (calibration and reporting use them). The tokenizer is
fitted on the training reviews and stored in the checkpoint. The loop (resume, EMA,
checkpoints, metrics, Ctrl-C) is ``gan.loop``'s.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ecomgan.files import sha256_file
from ecomgan.text import BOS_ID, EOS_ID, PAD_ID, WordTokenizer
from gan.common import FlatConfig, atomic_write, option
from gan.distributed import DistInfo
from gan.loop import Family, trainer
from gan.reviews.data import Reviews, csv_path, load, synthetic
from gan.reviews.model import GENERATED, Detector, Generator, ModelConfig

FAMILY = "reviews"


@dataclass(frozen=True)
class TrainConfig(FlatConfig):
    """Every setting of a training run; flat so that the CLI can turn fields into flags."""

    seed: int = option(0, "seed for weights, minibatches and samples")
    holdout_fold: int = option(0, "hotel fold 0..4 never trained on (-1: train on every hotel)")
    steps: int = option(750, "total steps (MLE first, then adversarial)")
    mle_steps: int = option(600, "generator MLE pre-training steps")
    adversarial: bool = option(True, "policy-gradient generator and k+1 detector (False: none)")
    batch_size: int = option(32, "reviews per generator minibatch")
    d_batch: int = option(64, "real reviews per detector minibatch")
    lr_g: float = option(2e-3, "generator Adam learning rate (MLE)")
    lr_pg: float = option(2e-4, "generator Adam learning rate in the adversarial phase")
    lr_d: float = option(3e-3, "detector Adam learning rate")
    weight_decay_d: float = option(1e-6, "detector Adam weight decay")
    mle_weight: float = option(1.0, "weight of the MLE loss in the adversarial phase")
    gen_tokens: int = option(112, "tokens per review the generator trains on and samples")
    temperature: float = option(1.0, "sampling temperature in training")
    min_count: int = option(3, "tokenizer: least count of a kept word")
    max_tokens: int = option(400, "tokenizer: tokens the detector reads per review")
    embed_dim: int = option(16, "detector n-gram embedding size")
    bigram_buckets: int = option(65536, "detector hashed-bigram buckets")
    subword_buckets: int = option(131072, "detector hashed character 3..5-gram buckets")
    max_subwords: int = option(2048, "distinct character n-grams the detector reads per review")
    lm_embed: int = option(96, "generator token embedding size")
    lm_hidden: int = option(192, "generator GRU size")
    dropout: float = option(0.3, "dropout of both networks")
    ema_decay: float = option(0.0, "generator weight average decay (0: the last weights)")
    checkpoint_every: int = option(300, "steps between checkpoints (and one at the end)")
    sample_every: int = option(300, "steps between OUT/samples/latest.txt")
    log_every: int = option(25, "steps between lines in OUT/metrics.jsonl")
    num_threads: int = option(1, "torch CPU threads (0: torch's default, one per core)")

    def __post_init__(self) -> None:
        self.require_positive("steps", "batch_size", "d_batch", "gen_tokens", "min_count",
                              "max_tokens", "embed_dim", "bigram_buckets", "max_subwords",
                              "lm_embed",
                              "lm_hidden", "checkpoint_every", "sample_every",
                              "log_every")  # fmt: skip
        if not -1 <= self.holdout_fold < 5:
            raise ValueError(f"holdout_fold must be -1..4, got {self.holdout_fold}")
        if not 0 <= self.mle_steps <= self.steps:
            raise ValueError(f"mle_steps must be 0..steps, got {self.mle_steps}")
        if self.subword_buckets < 2:
            raise ValueError(f"subword_buckets must be >= 2, got {self.subword_buckets}")

    def model_config(self, vocab_size: int) -> ModelConfig:
        return ModelConfig(vocab_size, self.max_tokens, self.embed_dim, self.bigram_buckets,
                           self.lm_embed, self.lm_hidden, self.dropout,
                           self.subword_buckets)  # fmt: skip


def training_rows(data: Reviews, holdout_fold: int) -> Reviews:
    """The reviews a run trains on: every hotel but those of ``holdout_fold``."""
    return data if holdout_fold < 0 else data.subset(data.fold != holdout_fold)


def lm_batch(tok: WordTokenizer, texts, length: int) -> torch.Tensor:
    """int64 (n, length + 2): ``<bos>`` ids ``<eos>``, right-padded (texts cut at ``length``)."""
    rows = [[BOS_ID, *tok.encode(t)[:length], EOS_ID] for t in texts]
    out = np.full((len(rows), length + 2), PAD_ID, dtype=np.int64)
    for i, r in enumerate(rows):
        out[i, : len(r)] = r
    return torch.from_numpy(out)


def mle_loss(net_g: nn.Module, seq: torch.Tensor, polarity: torch.Tensor,
             reduce: bool = True) -> torch.Tensor:  # fmt: skip
    """Teacher-forced next-token cross-entropy (pads ignored): mean, or per sequence (B,)."""
    logits = net_g(seq[:, :-1], polarity)  # (B, T, V)
    ce = F.cross_entropy(logits.transpose(1, 2), seq[:, 1:], ignore_index=PAD_ID,
                         reduction="none")  # (B, T)  # fmt: skip
    if reduce:
        return ce.sum() / (seq[:, 1:] != PAD_ID).sum()
    return ce.sum(1)


class ReviewsGAN(Family):
    """The reviews family's hooks for ``gan.loop.fit``: one process, on the CPU."""

    name = FAMILY
    data_parallel = False
    dry_run_steps = 3
    rate_name = "reviews_per_s"
    progress_fields = {"loss_d": ".3f", "d_acc": ".2f"}
    cfg: TrainConfig

    def load_data(self, data_dir: Path | None, dry_run: bool, ckpt: dict[str, Any] | None,
                  info: DistInfo) -> str:  # fmt: skip
        cfg = self.cfg
        data = synthetic() if dry_run else load(data_dir)
        self.train_rows = training_rows(data, cfg.holdout_fold)
        if ckpt is not None:
            self.tokenizer = WordTokenizer.from_dict(ckpt["tokenizer"])
        else:
            self.tokenizer = WordTokenizer.fit(self.train_rows.text, min_count=cfg.min_count,
                                               max_tokens=cfg.max_tokens,
                                               subword_buckets=cfg.subword_buckets,
                                               max_subwords=cfg.max_subwords)  # fmt: skip
        tok = self.tokenizer
        self.det_ids = torch.from_numpy(tok.encode_batch(self.train_rows.text))  # (N, L)
        self.det_sub = torch.from_numpy(tok.subword_batch(self.train_rows.text))  # (N, S)
        self.lm_ids = lm_batch(tok, self.train_rows.text, cfg.gen_tokens)  # (N, T+2)
        self.labels = torch.from_numpy(self.train_rows.deceptive)
        self.polarity = torch.from_numpy(self.train_rows.polarity)
        return "synthetic" if dry_run else sha256_file(csv_path(data_dir))

    def model_config(self, cfg: TrainConfig) -> object:
        return (cfg.model_config(0), cfg.holdout_fold)

    def networks(self) -> dict[str, nn.Module]:
        mcfg = self.cfg.model_config(len(self.tokenizer))
        return {"generator": Generator(mcfg), "detector": Detector(mcfg)}

    def optimizers(self, nets: Mapping[str, nn.Module]) -> dict[str, torch.optim.Optimizer]:
        cfg = self.cfg
        return {
            "optim_g": torch.optim.Adam(nets["generator"].parameters(), lr=cfg.lr_g),
            "optim_d": torch.optim.Adam(nets["detector"].parameters(), lr=cfg.lr_d,
                                        weight_decay=cfg.weight_decay_d),  # fmt: skip
        }

    def train_step(self, nets: Mapping[str, nn.Module],
                   optims: Mapping[str, torch.optim.Optimizer], gen: torch.Generator,
                   info: DistInfo) -> dict[str, float]:  # fmt: skip
        cfg, net_g, net_d = self.cfg, nets["generator"], nets["detector"]
        n = len(self.train_rows)
        # The detector's Adam counts the completed steps (and resumes with them).
        step = int(optims["optim_d"].state_dict()["state"].get(0, {}).get("step", 0))
        adv = cfg.adversarial and step >= cfg.mle_steps
        m: dict[str, float] = {}

        # (1) update D: k+1 cross-entropy on real reviews (+ generated ones)
        pick = torch.randint(n, (cfg.d_batch,), generator=gen)
        ids, sub, y = self.det_ids[pick], self.det_sub[pick], self.labels[pick]
        fake = None
        if adv:
            pol = torch.randint(2, (cfg.batch_size,), generator=gen)
            net_g.eval()
            with torch.no_grad():
                fake = net_g.sample(pol, cfg.gen_tokens, gen, cfg.temperature)  # (B, T)
            net_g.train()
            fake_ids = _detector_ids(fake, cfg.max_tokens)
            fake_sub = self._subwords(fake_ids)
            ids, sub = torch.cat([ids, fake_ids]), torch.cat([sub, fake_sub])
            y = torch.cat([y, torch.full((len(fake),), GENERATED)])
        logits = net_d(ids, sub)  # (B, 3)
        loss_d = F.cross_entropy(logits, y)
        optims["optim_d"].zero_grad(set_to_none=True)
        loss_d.backward()
        optims["optim_d"].step()
        m["loss_d"] = float(loss_d.detach())
        m["d_acc"] = float((logits[:, :2].argmax(1) == y).float()[: cfg.d_batch].mean())

        if not cfg.adversarial:  # the detector-only baseline: no generator at all
            return m
        # (2) update G: MLE, then policy gradient against D
        gpick = torch.randint(n, (cfg.batch_size,), generator=gen)
        loss_mle = mle_loss(net_g, self.lm_ids[gpick], self.polarity[gpick])
        loss_g = loss_mle if not adv else cfg.mle_weight * loss_mle
        if adv:
            for group in optims["optim_g"].param_groups:
                group["lr"] = cfg.lr_pg
            net_d.eval()
            with torch.no_grad():
                p = torch.log_softmax(net_d(fake_ids, fake_sub), 1)
                reward = torch.log1p(-p[:, GENERATED].exp().clamp(max=1 - 1e-6))  # (B,)
            net_d.train()
            seq = torch.cat([torch.full((len(fake), 1), BOS_ID), fake], 1)
            nll = mle_loss(net_g, seq, pol, reduce=False)  # (B,) = -log p(sequence)
            loss_pg = ((reward - reward.mean()) * nll).mean() / cfg.gen_tokens
            loss_g = loss_g + loss_pg
            m["reward"] = float(reward.mean())
        optims["optim_g"].zero_grad(set_to_none=True)
        loss_g.backward()
        nn.utils.clip_grad_norm_(net_g.parameters(), 5.0)
        optims["optim_g"].step()
        m["mle"] = float(loss_mle.detach())
        return m

    def _subwords(self, ids: torch.Tensor) -> torch.Tensor:
        """Hashed character n-grams of generated token ids, as the service computes them from
        the decoded text's words."""
        return torch.from_numpy(self.tokenizer.subword_batch_of_ids(ids.numpy()))

    def items_per_step(self) -> int:
        return self.cfg.batch_size + self.cfg.d_batch

    def save_samples(self, generator: nn.Module, out_dir: Path, step: int) -> None:
        pol = torch.tensor([0, 1, 0, 1])
        ids = generator.sample(pol, self.cfg.gen_tokens, torch.Generator().manual_seed(0))
        texts = [f"[synthetic, {'positive' if p else 'negative'}] {self.tokenizer.decode(r)}"
                 for p, r in zip(pol.tolist(), ids.tolist(), strict=True)]  # fmt: skip
        path = out_dir / "samples" / "latest.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_write(path) as f:
            f.write(("\n\n".join(texts) + "\n").encode())

    def checkpoint_extras(self) -> dict[str, Any]:
        return {"tokenizer": self.tokenizer.to_dict()}


def _detector_ids(sampled: torch.Tensor, length: int) -> torch.Tensor:
    """Sampled ids (B, T) with ``<eos>`` -> detector input (B, length), pads after the text."""
    ids = torch.where(sampled == EOS_ID, torch.full_like(sampled, PAD_ID), sampled)
    out = torch.full((len(ids), length), PAD_ID, dtype=torch.long)
    k = min(length, ids.shape[1])
    out[:, :k] = ids[:, :k]
    return out


train = trainer(ReviewsGAN)
