"""Networks of the reviews family: a fastText-style detector and a polarity-conditioned GRU
language model.

- ``Detector`` (the served discriminator): two bags, the mean of word-unigram and hashed
  word-bigram embeddings (fastText, Joulin et al. 2017) and the mean of the review's distinct
  hashed character 3..5-gram embeddings (fastText subwords, Bojanowski et al. 2017; character
  n-grams as features on this corpus: Ott et al. 2011), concatenated, then a linear layer to
  k+1 = 3 classes:
  truthful, deceptive, generated, as in the semi-supervised GAN discriminator (Salimans et al.
  2016; spamGAN, Stanton & Irissappane 2019; GAN-BERT, Croce et al. 2020). ``DetectorExport``
  is what ONNX gets: (ids, subwords) -> the deceptive-vs-truthful logit.
- ``Generator``: a GRU language model conditioned on polarity, trained by MLE then SeqGAN-style
  policy gradient (Yu et al. 2017). ``GeneratorStep`` is its one-token step for ONNX; the
  sampling loop runs in numpy (``ecomgan.text.sample_tokens``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ecomgan.text import BOS_ID, EOS_ID, PAD_ID, UNK_ID

N_CLASSES = 3  # truthful, deceptive, generated
GENERATED = 2


@dataclass(frozen=True)
class ModelConfig:
    """Shapes of both networks (what must match to resume or load)."""

    vocab_size: int
    max_tokens: int = 400
    embed_dim: int = 16
    bigram_buckets: int = 65536
    lm_embed: int = 96
    lm_hidden: int = 192
    dropout: float = 0.3
    subword_buckets: int = 131072  # 0: no character n-gram bag


class Detector(nn.Module):
    """ids (B, L) int64, right-padded with ``<pad>``, and subwords (B, S) int64 hashed
    character n-grams (``WordTokenizer.subword_batch``), right-padded with 0 -> class logits
    (B, 3)."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.unigram = nn.Embedding(cfg.vocab_size, cfg.embed_dim)
        self.bigram = nn.Embedding(cfg.bigram_buckets, cfg.embed_dim)
        self.subword = nn.Embedding(max(cfg.subword_buckets, 1), cfg.embed_dim)
        self.drop = nn.Dropout(cfg.dropout)
        bags = 2 if cfg.subword_buckets else 1
        self.out = nn.Linear(bags * cfg.embed_dim, N_CLASSES)
        for emb in (self.unigram, self.bigram, self.subword):
            nn.init.uniform_(emb.weight, -0.05, 0.05)

    def word_features(self, ids: torch.Tensor) -> torch.Tensor:
        """The pooled word n-gram embedding (B, D)."""
        mask = (ids != PAD_ID).to(torch.float32)  # (B, L)
        pair = ids[:, :-1] * self.cfg.vocab_size + ids[:, 1:]  # (B, L-1)
        bucket = torch.remainder(pair * 2654435761, self.cfg.bigram_buckets)
        bmask = mask[:, :-1] * mask[:, 1:]  # (B, L-1)
        total = (self.unigram(ids) * mask.unsqueeze(-1)).sum(1)  # (B, D)
        total = total + (self.bigram(bucket) * bmask.unsqueeze(-1)).sum(1)
        count = (mask.sum(1) + bmask.sum(1)).clamp(min=1.0).unsqueeze(-1)  # (B, 1)
        return total / count

    def features(self, ids: torch.Tensor, subwords: torch.Tensor) -> torch.Tensor:
        """Both bags: (B, 2D), or (B, D) without subword buckets."""
        words = self.word_features(ids)  # (B, D)
        if not self.cfg.subword_buckets:
            return words
        smask = (subwords != 0).to(torch.float32)  # (B, S)
        sub = (self.subword(subwords) * smask.unsqueeze(-1)).sum(1)  # (B, D)
        sub = sub / smask.sum(1).clamp(min=1.0).unsqueeze(-1)
        return torch.cat([words, sub], 1)

    def forward(self, ids: torch.Tensor, subwords: torch.Tensor) -> torch.Tensor:
        return self.out(self.drop(self.features(ids, subwords)))  # (B, 3)


class DetectorExport(nn.Module):
    """The served discriminator: ids (B, L), subwords (B, S) -> logit (B,) = log p(deceptive)
    - log p(truthful)."""

    def __init__(self, detector: Detector) -> None:
        super().__init__()
        self.detector = detector

    def forward(self, ids: torch.Tensor, subwords: torch.Tensor) -> torch.Tensor:
        logits = self.detector(ids, subwords)  # (B, 3)
        return logits[:, 1] - logits[:, 0]


class Generator(nn.Module):
    """Polarity-conditioned GRU LM: tokens (B, T) and polarity (B,) -> next-token logits
    (B, T, V)."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.embed = nn.Embedding(cfg.vocab_size, cfg.lm_embed)
        self.polarity = nn.Embedding(2, cfg.lm_embed)
        self.rnn = nn.GRU(cfg.lm_embed, cfg.lm_hidden, batch_first=True)
        self.drop = nn.Dropout(cfg.dropout)
        # Output tied to the input embedding (Press & Wolf 2017): H -> E, then E -> V.
        self.proj = nn.Linear(cfg.lm_hidden, cfg.lm_embed)
        self.bias = nn.Parameter(torch.zeros(cfg.vocab_size))

    def out(self, hidden: torch.Tensor) -> torch.Tensor:
        """Hidden states (..., H) -> next-token logits (..., V)."""
        return self.proj(hidden) @ self.embed.weight.T + self.bias

    def step(self, token: torch.Tensor, hidden: torch.Tensor, polarity: torch.Tensor
             ) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
        """One token: (B,), (B, H), (B,) -> logits (B, V), hidden (B, H)."""
        x = self.drop(self.embed(token) + self.polarity(polarity))  # (B, E)
        hidden = gru_cell(self.rnn, x, hidden)  # (B, H)
        return self.out(self.drop(hidden)), hidden

    def forward(self, tokens: torch.Tensor, polarity: torch.Tensor) -> torch.Tensor:
        x = self.drop(self.embed(tokens) + self.polarity(polarity).unsqueeze(1))  # (B, T, E)
        hidden, _ = self.rnn(x)  # (B, T, H)
        return self.out(self.drop(hidden))  # (B, T, V)

    def sample(self, polarity: torch.Tensor, max_tokens: int, gen: torch.Generator,
               temperature: float = 1.0) -> torch.Tensor:  # fmt: skip
        """Sampled ids (B, max_tokens), ``<pad>`` after ``<eos>`` (training only; the service
        samples in numpy)."""
        n = polarity.shape[0]
        token = torch.full((n,), BOS_ID, dtype=torch.long)
        hidden = torch.zeros((n, self.cfg.lm_hidden))  # (B, H)
        done = torch.zeros(n, dtype=torch.bool)
        out = torch.full((n, max_tokens), PAD_ID, dtype=torch.long)
        for t in range(max_tokens):
            logits, hidden = self.step(token, hidden, polarity)
            logits[:, [PAD_ID, BOS_ID, UNK_ID]] = -torch.inf
            probs = torch.softmax(logits / temperature, -1)  # (B, V)
            token = torch.multinomial(probs, 1, generator=gen)[:, 0]
            token = torch.where(done, torch.full_like(token, PAD_ID), token)
            out[:, t] = token
            done |= token == EOS_ID
            if bool(done.all()):
                break
        return out


def gru_cell(rnn: nn.GRU, x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
    """One step of a one-layer ``nn.GRU`` written out (its gate order r, z, n), so that the
    ONNX step is plain MatMul/Sigmoid/Tanh: x (B, E), h (B, H) -> (B, H)."""
    gi = x @ rnn.weight_ih_l0.T + rnn.bias_ih_l0  # (B, 3H)
    gh = h @ rnn.weight_hh_l0.T + rnn.bias_hh_l0  # (B, 3H)
    i_r, i_z, i_n = gi.chunk(3, 1)
    h_r, h_z, h_n = gh.chunk(3, 1)
    r, z = torch.sigmoid(i_r + h_r), torch.sigmoid(i_z + h_z)
    n = torch.tanh(i_n + r * h_n)
    return (1 - z) * n + z * h


class GeneratorStep(nn.Module):
    """The served generator: (hidden (B, H), token (B,), polarity (B,)) -> (logits (B, V),
    hidden_out (B, H)), in eval mode. ``hidden`` comes first: tools read a generator's first
    input's width as its latent size (``serving.sampling``)."""

    def __init__(self, generator: Generator) -> None:
        super().__init__()
        self.generator = generator

    def forward(self, hidden: torch.Tensor, token: torch.Tensor, polarity: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
        return self.generator.step(token, hidden, polarity)
