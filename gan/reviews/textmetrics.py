"""Metrics of generated text against real reviews (word tokens of ``ecomgan.text.words``).

- copying: the share of reviews containing an 8-word sequence of a training review, the
  longest copied span, and the share repeating half of some training review;
- diversity: distinct-1/2 (Li et al. 2016) and self-BLEU-4 (Zhu et al. 2018, Texygen);
- a word-bigram Markov chain (the floor every generator must beat);
- a trigram language model with add-k smoothing whose per-token scores feed the
  real-vs-generated classifier (features that see beyond a few characters).
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Sequence

import numpy as np

Tokens = Sequence[str]


def ngrams(tokens: Tokens, n: int) -> list[tuple[str, ...]]:
    return [tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]


class CopyIndex:
    """The n-grams of the training reviews, to measure how much generated text copies them."""

    def __init__(self, train: Sequence[Tokens], n: int = 8) -> None:
        self.n, self.train = n, train
        self.where: dict[tuple[str, ...], set[int]] = defaultdict(set)
        for i, toks in enumerate(train):
            for g in ngrams(toks, n):
                self.where[g].add(i)
        self._all: dict[int, set[tuple[str, ...]]] = {}

    def _kgrams(self, k: int) -> set[tuple[str, ...]]:
        if k not in self._all:
            self._all[k] = {g for t in self.train for g in ngrams(t, k)}
        return self._all[k]

    def copies(self, toks: Tokens) -> bool:
        """Whether the review contains an n-gram of a training review."""
        return any(g in self.where for g in ngrams(toks, self.n))

    def longest_span(self, toks: Tokens, cap: int = 64) -> int:
        """The longest run of words the review shares with a training review (up to ``cap``)."""
        best = 0
        for k in range(1, cap + 1):
            grams = self._kgrams(k)
            if not any(g in grams for g in ngrams(toks, k)):
                break
            best = k
        return best

    def half_copied(self, toks: Tokens) -> bool:
        """Whether the review's shared n-grams cover half or more of some training review."""
        covered: dict[int, set[int]] = defaultdict(set)
        for g in ngrams(toks, self.n):
            for i in self.where.get(g, ()):
                t = self.train[i]
                for s in range(len(t) - self.n + 1):
                    if tuple(t[s : s + self.n]) == g:
                        covered[i].update(range(s, s + self.n))
        return any(len(c) >= 0.5 * len(self.train[i]) for i, c in covered.items())


def copying(texts: Sequence[Tokens], index: CopyIndex) -> dict[str, float]:
    """Copy metrics of a set of reviews against the training reviews."""
    spans = [index.longest_span(t) for t in texts]
    return {
        "copy_share_8gram": float(np.mean([index.copies(t) for t in texts])),
        "longest_copied_span": int(max(spans)),
        "median_copied_span": float(np.median(spans)),
        "half_copied_share": float(np.mean([index.half_copied(t) for t in texts])),
    }


def distinct(texts: Sequence[Tokens], n: int) -> float:
    """Distinct n-grams over all n-grams of the set."""
    grams = [g for t in texts for g in ngrams(t, n)]
    return len(set(grams)) / max(len(grams), 1)


def bleu4(hyp: Tokens, refs: Sequence[Tokens]) -> float:
    """Sentence BLEU-4 with uniform weights, brevity penalty and +1 smoothing (Lin & Och 2004)."""
    logs = 0.0
    for n in range(1, 5):
        h = Counter(ngrams(hyp, n))
        best: Counter = Counter()
        for r in refs:
            best |= Counter(ngrams(r, n))
        match = sum(min(c, best[g]) for g, c in h.items())
        logs += math.log((match + 1) / (sum(h.values()) + 1)) / 4
    closest = min((len(r) for r in refs), key=lambda m: (abs(m - len(hyp)), m))
    bp = 1.0 if len(hyp) > closest else math.exp(1 - closest / max(len(hyp), 1))
    return bp * math.exp(logs)


def self_bleu(texts: Sequence[Tokens], n: int = 40, seed: int = 0) -> float:
    """Mean BLEU-4 of up to ``n`` reviews, each against the rest of the set (higher: less
    diverse)."""
    rng = np.random.Generator(np.random.PCG64(seed))
    pick = rng.choice(len(texts), size=min(n, len(texts)), replace=False)
    return float(np.mean([bleu4(texts[i], [t for j, t in enumerate(texts) if j != i])
                          for i in pick]))  # fmt: skip


class BigramChain:
    """A word-bigram Markov chain per polarity: the floor generator."""

    def __init__(self, texts: Sequence[Tokens], polarity: Sequence[int]) -> None:
        self.next: dict[tuple[int, str], Counter] = defaultdict(Counter)
        for toks, p in zip(texts, polarity, strict=True):
            seq = ["<s>", *toks, "</s>"]
            for a, b in zip(seq, seq[1:], strict=False):
                self.next[(int(p), a)][b] += 1

    def sample(self, polarity: int, seed: int, max_tokens: int = 160) -> list[str]:
        rng = np.random.Generator(np.random.PCG64(seed))
        out, w = [], "<s>"
        for _ in range(max_tokens):
            options = self.next[(polarity, w)]
            words, counts = list(options), np.array(list(options.values()), dtype=float)
            w = words[int(rng.choice(len(words), p=counts / counts.sum()))]
            if w == "</s>":
                break
            out.append(w)
        return out


class TrigramLM:
    """Add-k smoothed word-trigram language model, interpolated with bigrams and unigrams."""

    def __init__(self, texts: Sequence[Tokens], k: float = 0.1) -> None:
        self.k = k
        self.c1: Counter = Counter()
        self.c2: Counter = Counter()
        self.c3: Counter = Counter()
        for toks in texts:
            seq = ["<s>", "<s>", *toks, "</s>"]
            self.c1.update(seq[2:])
            self.c2.update(zip(seq[1:], seq[2:], strict=False))
            self.c3.update(zip(seq, seq[1:], seq[2:], strict=False))
        self.ctx2: Counter = Counter()
        for (a, _), c in self.c2.items():
            self.ctx2[a] += c
        self.ctx3: Counter = Counter()
        for (a, b, _), c in self.c3.items():
            self.ctx3[(a, b)] += c
        self.total, self.v = sum(self.c1.values()), len(self.c1) + 1

    def token_logprobs(self, toks: Tokens) -> np.ndarray:
        """log p of each token (and the end) given the two before."""
        seq = ["<s>", "<s>", *toks, "</s>"]
        out = []
        for a, b, c in zip(seq, seq[1:], seq[2:], strict=False):
            p1 = (self.c1[c] + self.k) / (self.total + self.k * self.v)
            p2 = (self.c2[(b, c)] + self.k * p1 * self.v) / (self.ctx2[b] + self.k * self.v)
            p3 = (self.c3[(a, b, c)] + self.k * p2 * self.v) / (self.ctx3[(a, b)] + self.k * self.v)
            out.append(math.log(0.6 * p3 + 0.3 * p2 + 0.1 * p1))
        return np.array(out)

    def features(self, toks: Tokens) -> np.ndarray:
        """Per-review features from the per-token scores: mean, spread, quantiles, the share of
        unseen trigrams and bigrams, and the length."""
        lp = self.token_logprobs(toks)
        seq = ["<s>", "<s>", *toks, "</s>"]
        tri = list(zip(seq, seq[1:], seq[2:], strict=False))
        unseen3 = np.mean([self.c3[t] == 0 for t in tri])
        unseen2 = np.mean([self.c2[(b, c)] == 0 for _, b, c in tri])
        return np.array([lp.mean(), lp.std(), *np.quantile(lp, [0.05, 0.25, 0.5]), unseen3,
                         unseen2, math.log(len(toks) + 1)])  # fmt: skip
