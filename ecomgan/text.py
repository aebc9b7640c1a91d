"""Text for the reviews family, torch-free: normalisation, a word tokenizer shipped as JSON, and
the numpy sampling loop around the ONNX generator step.

Training (``gan.reviews``), export and the service all use this module, so a text is tokenised
the same way everywhere and the same seed gives the same review in training and serving.

The tokenizer is word level (lower-cased words, numbers and single punctuation marks) with a
vocabulary learnt from the training reviews; words below the count threshold map to ``<unk>``.
``decode`` re-joins tokens with English punctuation spacing and sentence capitals, and
``encode(decode(ids)) == ids`` for every id sequence without ``<unk>``/specials (the round
trip the tests check).

The detector also reads hashed character n-grams of the words (fastText subwords, Bojanowski
et al. 2017): ``subword_ids`` turns tokens into the set of their 3..5-character n-grams (each
word wrapped in ``<``/``>``), hashed with CRC-32 (stable across runs and platforms) into
``subword_buckets`` buckets, id 0 being padding. Each n-gram counts once per review (binary
features, the analogue of sublinear term frequency).

The service imports this module: it must depend on numpy and the standard library only.
"""

from __future__ import annotations

import re
import unicodedata
import zlib
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

PAD, UNK, BOS, EOS = "<pad>", "<unk>", "<bos>", "<eos>"
SPECIALS = (PAD, UNK, BOS, EOS)
PAD_ID, UNK_ID, BOS_ID, EOS_ID = range(4)
FORMAT = "ecomgan-word-tokenizer/1"
_TOKEN = re.compile(r"[a-z0-9]+(?:'[a-z]+)?|[^\sa-z0-9]")
_NO_SPACE_BEFORE = set(".,!?;:)%'\"-/")
_NO_SPACE_AFTER = set("($#-/")
_SENTENCE_END = set(".!?")
SUBWORD_N = (3, 5)  # character n-gram lengths, inclusive


def subword_ids(tokens: Iterable[str], buckets: int, length: int) -> list[int]:
    """The distinct hashed character n-grams of ``tokens``, in order of first occurrence, at
    most ``length``: ids 1..buckets-1 (0 is padding)."""
    seen: dict[int, None] = {}
    for tok in tokens:
        w = ("<" + tok + ">").encode()
        for n in range(SUBWORD_N[0], SUBWORD_N[1] + 1):
            for i in range(len(w) - n + 1):
                seen[zlib.crc32(w[i : i + n]) % (buckets - 1) + 1] = None
    return list(seen)[:length]


def normalise(text: str) -> str:
    """Unicode NFC, every run of whitespace (trailing spaces and newlines too) to one space,
    stripped. Applied before any model sees a text: in the corpus truthful reviews end with a
    trailing space and newline far more often than deceptive ones, a label leak."""
    return " ".join(unicodedata.normalize("NFC", text).split())


def words(text: str) -> list[str]:
    """The tokens of a text: lower-cased words (with their apostrophe suffix) and punctuation."""
    return _TOKEN.findall(normalise(text).lower())


@dataclass(frozen=True)
class WordTokenizer:
    """Word-level tokenizer: ``vocab[i]`` is token ``i``; the first four are `SPECIALS`.

    Attributes:
        vocab: Tokens by id.
        max_tokens: Cap of an encoded text (tokens beyond it are cut).
        subword_buckets: Hashed character n-gram buckets of the detector (0: none).
        max_subwords: Width of `subword_batch` (distinct n-grams beyond it are cut).
    """

    vocab: tuple[str, ...]
    max_tokens: int
    subword_buckets: int = 0
    max_subwords: int = 2048

    @classmethod
    def fit(cls, texts: Iterable[str], *, min_count: int = 2, max_vocab: int = 8000,
            max_tokens: int = 400, subword_buckets: int = 0,
            max_subwords: int = 2048) -> WordTokenizer:  # fmt: skip
        """Learn the vocabulary: tokens seen ``min_count`` times or more, most frequent first
        (ties alphabetical), at most ``max_vocab`` ids including the specials."""
        counts = Counter(t for text in texts for t in words(text))
        kept = sorted((t for t, c in counts.items() if c >= min_count),
                      key=lambda t: (-counts[t], t))  # fmt: skip
        return cls(SPECIALS + tuple(kept[: max_vocab - len(SPECIALS)]), max_tokens,
                   subword_buckets, max_subwords)  # fmt: skip

    def __post_init__(self) -> None:
        if self.vocab[: len(SPECIALS)] != SPECIALS:
            raise ValueError(f"a vocabulary starts with {SPECIALS}")

    @property
    def index(self) -> dict[str, int]:
        """Token -> id (built once per instance)."""
        cached = self.__dict__.get("_index")
        if cached is None:
            cached = {t: i for i, t in enumerate(self.vocab)}
            object.__setattr__(self, "_index", cached)
        return cached

    def __len__(self) -> int:
        return len(self.vocab)

    def encode(self, text: str) -> list[int]:
        """Token ids of a text (normalised first), at most ``max_tokens``."""
        index = self.index
        return [index.get(t, UNK_ID) for t in words(text)[: self.max_tokens]]

    def encode_batch(self, texts: Iterable[str], length: int | None = None) -> np.ndarray:
        """int64 (n, length) ids right-padded with ``<pad>`` (length: ``max_tokens``)."""
        length = length or self.max_tokens
        rows = [self.encode(t)[:length] for t in texts]
        out = np.full((len(rows), length), PAD_ID, dtype=np.int64)
        for i, r in enumerate(rows):
            out[i, : len(r)] = r
        return out

    def subword_batch(self, texts: Iterable[str]) -> np.ndarray:
        """int64 (n, ``max_subwords``): each text's hashed character n-grams (of the same
        ``max_tokens`` words `encode` reads, unknown words included), right-padded with 0."""
        return self._pad_subwords([words(t)[: self.max_tokens] for t in texts])

    def subword_batch_of_ids(self, ids: np.ndarray) -> np.ndarray:
        """`subword_batch` of token-id rows (generated text): specials are skipped."""
        vocab = self.vocab
        return self._pad_subwords([[vocab[i] for i in row if i >= len(SPECIALS)]
                                   for row in np.asarray(ids).tolist()])  # fmt: skip

    def _pad_subwords(self, rows: list[list[str]]) -> np.ndarray:
        if self.subword_buckets < 2:
            raise ValueError("this tokenizer has no subword buckets")
        out = np.zeros((len(rows), self.max_subwords), dtype=np.int64)
        for i, toks in enumerate(rows):
            r = subword_ids(toks, self.subword_buckets, self.max_subwords)
            out[i, : len(r)] = r
        return out

    def decode(self, ids: Iterable[int]) -> str:
        """Text of token ids: specials dropped, punctuation spacing and sentence capitals."""
        parts: list[str] = []
        capital, prev = True, ""
        for i in ids:
            tok = self.vocab[int(i)]
            if tok in SPECIALS:
                continue
            shown = tok.capitalize() if capital and tok[0].isalpha() else tok
            if tok == "i" or tok.startswith("i'"):
                shown = "I" + tok[1:]
            glue = not parts or tok in _NO_SPACE_BEFORE or prev in _NO_SPACE_AFTER
            parts.append(shown if glue else " " + shown)
            prev = tok
            if tok[0].isalnum():
                capital = False
            elif tok in _SENTENCE_END:
                capital = True
        return "".join(parts)

    def to_dict(self) -> dict[str, Any]:
        return {"format": FORMAT, "max_tokens": self.max_tokens,
                "subword_buckets": self.subword_buckets, "max_subwords": self.max_subwords,
                "vocab": list(self.vocab)}  # fmt: skip

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> WordTokenizer:
        """Read `to_dict`'s document; raises ValueError on another format."""
        if d.get("format") != FORMAT:
            raise ValueError(f"not a {FORMAT} document (format {d.get('format')!r})")
        return cls(tuple(d["vocab"]), int(d["max_tokens"]), int(d.get("subword_buckets", 0)),
                   int(d.get("max_subwords", 2048)))  # fmt: skip


Step = Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]]


def sample_tokens(
    step: Step, hidden_size: int, polarity: np.ndarray, seeds: np.ndarray, *, max_tokens: int,
    temperature: float = 1.0, top_p: float = 0.95,
) -> list[list[int]]:  # fmt: skip
    """Sample one token sequence per row from the generator's step function (nucleus sampling,
    Holtzman et al. 2020), stopping at ``<eos>`` or ``max_tokens``.

    Each row draws from its own ``np.random.Generator(PCG64(seed))``, so a review depends only
    on its seed, polarity and the settings, never on the batch it was sampled in.

    Args:
        step: The ONNX step ``{token (n,), hidden (n, H), polarity (n,)} -> {logits (n, V),
            hidden_out (n, H)}``.
        hidden_size: H.
        polarity: int64 (n,) 0 negative, 1 positive.
        seeds: One seed per row.
        max_tokens: Longest review in tokens.
        temperature: Softmax temperature (> 0).
        top_p: Nucleus mass in (0, 1].

    Returns:
        Token ids per row, without ``<bos>``/``<eos>``.
    """
    n = len(polarity)
    rngs = [np.random.Generator(np.random.PCG64(int(s))) for s in seeds]
    token = np.full(n, BOS_ID, dtype=np.int64)
    hidden = np.zeros((n, hidden_size), dtype=np.float32)
    out: list[list[int]] = [[] for _ in range(n)]
    alive = np.ones(n, dtype=bool)
    for _ in range(max_tokens):
        idx = np.flatnonzero(alive)
        res = step({"token": token[idx], "hidden": hidden[idx],
                    "polarity": polarity[idx].astype(np.int64)})  # fmt: skip
        logits = res["logits"].astype(np.float64) / temperature  # (k, V)
        hidden[idx] = res["hidden_out"]
        logits[:, [PAD_ID, BOS_ID, UNK_ID]] = -np.inf
        probs = np.exp(logits - logits.max(axis=1, keepdims=True))
        probs /= probs.sum(axis=1, keepdims=True)
        cuts = _candidate_cuts(probs)
        for row, i in enumerate(idx):
            t = _nucleus(probs[row], top_p, rngs[i], None if cuts is None else cuts[row])
            token[i] = t
            if t == EOS_ID:
                alive[i] = False
            else:
                out[i].append(t)
        if not alive.any():
            break
    return out


# Candidates sorted per nucleus draw before falling back to sorting the whole vocabulary.
_NUCLEUS_CANDIDATES = 512


def _candidate_cuts(probs: np.ndarray) -> np.ndarray | None:
    """Per row (k, V): the probability of its `_NUCLEUS_CANDIDATES`-th most likely token, or
    None for a vocabulary too small to gain from it (one partition call for all rows)."""
    v = probs.shape[1]
    if v <= 2 * _NUCLEUS_CANDIDATES:
        return None
    return np.partition(probs, v - _NUCLEUS_CANDIDATES, axis=1)[:, v - _NUCLEUS_CANDIDATES]


def _nucleus(
    p: np.ndarray, top_p: float, rng: np.random.Generator, cut: float | None = None
) -> int:
    """One token from the smallest set of most likely tokens whose mass reaches `top_p`.

    Sorting the whole vocabulary for every token of every review was most of the generation
    time; the nucleus nearly always lies within the few hundred most likely tokens, so those
    (`cut`: the probability of the last of them, from `_candidate_cuts`; every token tied with
    it is included, so the order equals the full stable sort's) are sorted first and the full
    sort runs only when their mass falls short or `cut` is None. Either way the draw is the one
    the full sort gives.
    """
    order = None
    if cut is not None:
        top = np.flatnonzero(p >= cut)
        top = top[np.argsort(-p[top], kind="stable")]
        cum = np.cumsum(p[top])
        if cum[-1] >= top_p:
            order = top
    if order is None:
        order = np.argsort(-p, kind="stable")
        cum = np.cumsum(p[order])
    keep = order[: int(np.searchsorted(cum, top_p)) + 1]
    q = p[keep] / p[keep].sum()
    return int(keep[min(int(np.searchsorted(np.cumsum(q), rng.random())), len(keep) - 1)])
