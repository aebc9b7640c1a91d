"""The Deceptive Opinion Spam corpus (Ott et al. 2011, 2013): 1,280 reviews of 16 Chicago
hotels, truthful/deceptive x positive/negative. Licence CC BY-NC-SA 3.0.

Pitfalls handled here: every text is normalised (``ecomgan.text.normalise``: the trailing
space-and-newline of truthful reviews is a label leak), exact duplicates (after normalisation)
are dropped, ``source`` is never read (it is the label in disguise), and every split is by
hotel: the 16 hotels fall into 5 folds of whole hotels, so a hotel's name never helps.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ecomgan.text import normalise
from gan.datasets import DECEPTIVE_OPINION, find

FILE = "deceptive_opinion.csv"
N_FOLDS = 5
POLARITIES = ("negative", "positive")  # index = the generator's polarity input
LABELS = ("truthful", "deceptive")  # index = the detector's class; 2 = generated


@dataclass(frozen=True)
class Reviews:
    """The corpus as arrays (one row per distinct review).

    Attributes:
        text: Normalised texts.
        deceptive: int64 1 deceptive, 0 truthful.
        polarity: int64 1 positive, 0 negative.
        hotel: Hotel names.
        fold: int64 fold 0..4 of the row's hotel.
    """

    text: np.ndarray
    deceptive: np.ndarray
    polarity: np.ndarray
    hotel: np.ndarray
    fold: np.ndarray

    def __len__(self) -> int:
        return len(self.text)

    def subset(self, mask: np.ndarray) -> Reviews:
        """The rows where ``mask`` is true."""
        return Reviews(*(getattr(self, f)[mask] for f in
                         ("text", "deceptive", "polarity", "hotel", "fold")))  # fmt: skip


def csv_path(data_dir: Path | None = None) -> Path:
    """The corpus CSV (``gan.datasets.find``: ``data_dir``, ``ECOMGAN_DATA_DIR``, the cache)."""
    return find(DECEPTIVE_OPINION, [FILE], data_dir)[0]


def hotel_folds(hotels: list[str], n_folds: int = N_FOLDS, seed: int = 0) -> dict[str, int]:
    """Hotel -> fold: the sorted hotels in a seeded order, dealt round-robin (16 -> 4,3,3,3,3)."""
    names = sorted(set(hotels))
    order = np.random.Generator(np.random.PCG64(seed)).permutation(len(names))
    return {names[j]: k % n_folds for k, j in enumerate(order)}


def load(data_dir: Path | None = None, seed: int = 0) -> Reviews:
    """Read, normalise and de-duplicate the corpus, and assign hotel folds.

    Raises:
        ValueError: If a needed column is missing or a label is unknown.
    """
    frame = pd.read_csv(csv_path(data_dir), usecols=["deceptive", "hotel", "polarity", "text"])
    frame["text"] = frame["text"].astype(str).map(normalise)
    frame = frame[frame["text"] != ""].drop_duplicates("text", keep="first")
    for col, values in (("deceptive", LABELS), ("polarity", POLARITIES)):
        unknown = set(frame[col]) - set(values)
        if unknown:
            raise ValueError(f"{FILE}: unknown {col} values {sorted(unknown)}")
    folds = hotel_folds(frame["hotel"].tolist(), seed=seed)
    return Reviews(
        text=frame["text"].to_numpy(dtype=object),
        deceptive=(frame["deceptive"] == "deceptive").to_numpy(dtype=np.int64),
        polarity=(frame["polarity"] == "positive").to_numpy(dtype=np.int64),
        hotel=frame["hotel"].to_numpy(dtype=object),
        fold=frame["hotel"].map(folds).to_numpy(dtype=np.int64),
    )


def synthetic(n: int = 64, seed: int = 0) -> Reviews:
    """A tiny made-up corpus for dry runs and tests (no dataset needed)."""
    rng = np.random.Generator(np.random.PCG64(seed))
    good = ["great", "clean", "friendly", "lovely", "perfect"]
    bad = ["dirty", "rude", "noisy", "awful", "broken"]
    rows = []
    for i in range(n):
        pol, dec = i % 2, (i // 2) % 2
        adj = rng.choice(good if pol else bad, 3)
        opener = "my husband and i" if dec else "we"
        rows.append(f"{opener} stayed at the hotel . the room was {adj[0]} and {adj[1]} . "
                    f"staff {adj[2]} !")  # fmt: skip
    hotels = np.array([f"hotel{i % 10}" for i in range(n)], dtype=object)
    folds = hotel_folds(list(hotels))
    return Reviews(np.array(rows, dtype=object), np.array([(i // 2) % 2 for i in range(n)]),
                   np.array([i % 2 for i in range(n)]), hotels,
                   np.array([folds[h] for h in hotels]))  # fmt: skip
