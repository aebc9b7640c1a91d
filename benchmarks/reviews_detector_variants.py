"""Compare detector feature variants on inner validation only (issue 14 follow-up).

The hotels of fold 0 (the shipped models' held-out hotels) are never used; folds 1..4 rotate as
inner validation, each variant trained detector-only (no generator) with the CV budget (250
steps of 64 reviews, Adam 3e-3, dropout 0.3, 16-d embeddings), beside TF-IDF 1-2 grams +
LinearSVC on the same splits. The variants are written out here, not taken from
``gan.reviews.model``, so that the record stays reproducible. The chosen variant (distinct
character n-grams, concatenated bags) is what ``gan.reviews.model.Detector`` now is.

Usage: ``python benchmarks/reviews_detector_variants.py [VARIANT ...]`` (ECOMGAN_DATA_DIR set;
about a minute per variant on one core).
"""

from __future__ import annotations

import sys
import time
import zlib

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ecomgan.text import WordTokenizer, words
from gan.reviews.data import load
from gan.reviews.evaluate import svm_logits

CB = 1 << 17  # character n-gram buckets
VARIANTS: dict[str, dict] = {
    "current (word+bigram mean)": {},
    "+char 3-5, summed into one mean": {"chars": True, "concat": False},
    "+char 3-5, separate means concat": {"chars": True},
    "+char 3-5 concat, unique n-grams": {"chars": True, "unique": True},
    "+char concat, 500 steps": {"chars": True, "steps": 500},
}


def chars(text: str, unique: bool) -> list[int]:
    out = []
    for w in words(text)[:400]:
        w = "<" + w + ">"
        for n in range(3, 6):
            out += [zlib.crc32(w[i : i + n].encode()) % (CB - 1) + 1 for i in range(len(w) - n + 1)]
    return sorted(set(out)) if unique else out


def pad(rows: list[list[int]]) -> torch.Tensor:
    a = np.zeros((len(rows), max(len(r) for r in rows)), np.int64)
    for i, r in enumerate(rows):
        a[i, : len(r)] = r
    return torch.from_numpy(a)


class Net(nn.Module):
    def __init__(self, vocab: int, dim: int, use_chars: bool, concat: bool, drop: float):
        super().__init__()
        self.vocab, self.use_chars, self.concat = vocab, use_chars, concat
        self.u, self.b = nn.Embedding(vocab, dim), nn.Embedding(65536, dim)
        self.c = nn.Embedding(CB, dim)
        for e in (self.u, self.b, self.c):
            nn.init.uniform_(e.weight, -0.05, 0.05)
        self.d = nn.Dropout(drop)
        self.o = nn.Linear(dim * (2 if use_chars and concat else 1), 3)

    def forward(self, ids: torch.Tensor, ch: torch.Tensor | None) -> torch.Tensor:
        m = (ids != 0).float()
        bk = torch.remainder((ids[:, :-1] * self.vocab + ids[:, 1:]) * 2654435761, 65536)
        bm = m[:, :-1] * m[:, 1:]
        w = (self.u(ids) * m[..., None]).sum(1) + (self.b(bk) * bm[..., None]).sum(1)
        wc = (m.sum(1) + bm.sum(1)).clamp(min=1)[:, None]
        if not self.use_chars:
            return self.o(self.d(w / wc))
        cm = (ch != 0).float()
        c, cc = (self.c(ch) * cm[..., None]).sum(1), cm.sum(1).clamp(min=1)[:, None]
        f = torch.cat([w / wc, c / cc], 1) if self.concat else (w + c) / (wc + cc)
        return self.o(self.d(f))


def run(variant: dict, trn, val, seed: int = 0) -> float:
    tok = WordTokenizer.fit(trn.text, min_count=3, max_tokens=400)
    ids_t = torch.from_numpy(tok.encode_batch(trn.text))
    ids_v = torch.from_numpy(tok.encode_batch(val.text))
    uc, uq = variant.get("chars", False), variant.get("unique", False)
    ch_t = pad([chars(t, uq) for t in trn.text]) if uc else None
    ch_v = pad([chars(t, uq) for t in val.text]) if uc else None
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    net = Net(len(tok), 16, uc, variant.get("concat", True), 0.3)
    opt = torch.optim.Adam(net.parameters(), lr=3e-3, weight_decay=1e-6)
    y = torch.from_numpy(trn.deceptive)
    for _ in range(variant.get("steps", 250)):
        p = torch.randint(len(y), (64,), generator=g)
        loss = F.cross_entropy(net(ids_t[p], ch_t[p] if uc else None), y[p])
        opt.zero_grad()
        loss.backward()
        opt.step()
    net.eval()
    with torch.no_grad():
        lg = net(ids_v, ch_v)
    return float((((lg[:, 1] - lg[:, 0]).numpy() > 0) == val.deceptive).mean())


def main() -> None:
    torch.set_num_threads(1)
    outer = (data := load(None)).subset(data.fold != 0)
    for name in ["svm", *(sys.argv[1:] or VARIANTS)]:
        t, accs = time.time(), []
        for f in (1, 2, 3, 4):
            trn, val = outer.subset(outer.fold != f), outer.subset(outer.fold == f)
            if name == "svm":
                pred = svm_logits(trn.text, trn.deceptive, val.text) > 0
                accs.append(float((pred == val.deceptive).mean()))
            else:
                accs.append(run(VARIANTS[name], trn, val))
        print(f"{name:40s} {np.mean(accs):.3f} +- {np.std(accs):.3f}  "
              f"{[round(a, 3) for a in accs]}  {time.time() - t:.0f}s", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
