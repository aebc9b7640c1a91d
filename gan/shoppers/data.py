"""Online Shoppers Purchasing Intention (Sakar et al. 2018, UCI dataset 468), torch-free.

``online_shoppers_intention.csv`` is found by ``gan.datasets.find``: ``--data-dir`` (the CSV
or its folder), ``$ECOMGAN_DATA_DIR/shoppers`` or ``$ECOMGAN_DATA_DIR``,
``/usr/share/datasets/shoppers``, ``${XDG_CACHE_HOME:-~/.cache}/ecomgan/shoppers``; missing
everywhere, it is extracted from the UCI zip into the cache (``ECOMGAN_OFFLINE=1`` or
``download=False`` forbid the download).

Cleaning on load, as the source needs it: the 14 rows whose page counts, durations and
rates are empty are dropped, and durations of -1 (the source's "not measured") become 0.
"""

from __future__ import annotations

import hashlib
import io
import os
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd

from ecomgan.files import atomic_write
from gan.datasets import SHOPPERS, fetch, find

FILENAME = "online_shoppers_intention.csv"
URL = SHOPPERS.source
TARGET = "Revenue"
KINDS = ("count", "duration", "rate", "amount", "categorical", "boolean")
# Table order of the source CSV; name -> kind.
COLUMNS: dict[str, str] = {
    "Administrative": "count",
    "Administrative_Duration": "duration",
    "Informational": "count",
    "Informational_Duration": "duration",
    "ProductRelated": "count",
    "ProductRelated_Duration": "duration",
    "BounceRates": "rate",
    "ExitRates": "rate",
    "PageValues": "amount",
    "SpecialDay": "rate",
    "Month": "categorical",
    "OperatingSystems": "categorical",
    "Browser": "categorical",
    "Region": "categorical",
    "TrafficType": "categorical",
    "VisitorType": "categorical",
    "Weekend": "boolean",
    "Revenue": "boolean",
}
STRING_COLUMNS = ("Month", "VisitorType")  # the other categoricals are integer codes
# The source spells June in full and the other months with three letters.
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "June", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
VISITOR_TYPES = ("New_Visitor", "Other", "Returning_Visitor")
_BOOL_STRINGS = {"true": True, "false": False, "1": True, "0": False}


def find_csv(data_dir: str | os.PathLike[str] | None = None, download: bool = True) -> Path:
    """Path of the CSV, downloading it into the user cache if allowed and needed.

    Raises:
        DatasetNotFoundError: If the file is nowhere and cannot be downloaded.
    """
    (path,) = find(SHOPPERS, (FILENAME,), data_dir, download=_download, allow_download=download)
    return path


def _download(folder: Path) -> None:
    # UCI publishes no checksum and the shared copy is a subset, so none is checked here;
    # the file's SHA-256 is recorded in every checkpoint instead.
    with zipfile.ZipFile(io.BytesIO(fetch(URL))) as z:
        member = next((n for n in z.namelist() if n.endswith(FILENAME)), None)
        if member is None:
            raise ValueError(f"{URL} holds no {FILENAME} (members: {z.namelist()})")
        with atomic_write(folder / FILENAME) as out:
            out.write(z.read(member))


def load_shoppers(
    data_dir: str | os.PathLike[str] | None = None, download: bool = True
) -> pd.DataFrame:
    """Load, clean and validate the whole table.

    Args:
        data_dir: The CSV or its folder, searched first (see the module docstring).
        download: Whether the UCI zip may be downloaded into the user cache.

    Returns:
        The table in ``COLUMNS`` order with normalised dtypes; ``df.attrs["sha256"]`` is the
        CSV's SHA-256 and ``df.attrs["path"]`` its path.

    Raises:
        DatasetNotFoundError: If the CSV cannot be found or downloaded.
        ValueError: If the CSV does not have the expected columns and values.
    """
    path = find_csv(data_dir, download)
    raw = path.read_bytes()
    df = pd.read_csv(io.BytesIO(raw))
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"{path}: missing columns {missing}; expected {list(COLUMNS)}")
    df = df.dropna().reset_index(drop=True)
    durations = [c for c, k in COLUMNS.items() if k == "duration"]
    df[durations] = df[durations].where(df[durations] != -1, 0.0)
    df = validate_table(df)
    df.attrs.update(sha256=hashlib.sha256(raw).hexdigest(), path=str(path))
    return df


def _to_bool(col: pd.Series, name: str) -> pd.Series:
    if col.dtype == bool:
        return col
    values = col.astype(str).str.strip().str.lower()
    bad = sorted(set(values) - set(_BOOL_STRINGS))
    if bad:
        raise ValueError(f"{name}: values {bad[:5]} are not booleans; use true/false")
    return values.map(_BOOL_STRINGS).astype(bool)


def _to_int(col: pd.Series, name: str) -> pd.Series:
    numeric = pd.to_numeric(col, errors="coerce")
    if numeric.isna().any() or (numeric != np.round(numeric)).any():
        bad = col[numeric.isna() | (numeric != np.round(numeric))].unique()[:5]
        raise ValueError(f"{name}: values {list(bad)} are not whole numbers")
    return numeric.astype(np.int64)


def validate_table(df: pd.DataFrame) -> pd.DataFrame:
    """Check a shoppers table and return a copy with normalised dtypes.

    Counts and integer categoricals become int64, durations, rates and amounts float64,
    ``Month``/``VisitorType`` str, ``Weekend``/``Revenue`` bool (``"TRUE"``/``"false"`` accepted).

    Raises:
        ValueError: On missing or unexpected columns, NaNs, non-numeric values, negative counts,
            durations or amounts, rates outside [0, 1], or categories outside the vocabulary.
    """
    if not isinstance(df, pd.DataFrame):
        raise ValueError(f"expected a pandas DataFrame, got {type(df).__name__}")
    missing = [c for c in COLUMNS if c not in df.columns]
    extra = [c for c in df.columns if c not in COLUMNS]
    if missing or extra:
        raise ValueError(
            f"table columns do not match: missing {missing}, unexpected {extra}; "
            f"expected exactly {list(COLUMNS)}"
        )
    nans = {c: int(n) for c, n in df[list(COLUMNS)].isna().sum().items() if n}
    if nans:
        raise ValueError(f"table has empty values (NaN) per column {nans}; drop or fill those rows")
    out = {}
    for name, kind in COLUMNS.items():
        col = df[name]
        if kind == "boolean":
            out[name] = _to_bool(col, name)
        elif name in STRING_COLUMNS:
            out[name] = col.astype(str).str.strip()
            allowed = MONTHS if name == "Month" else VISITOR_TYPES
            bad = sorted(set(out[name]) - set(allowed))
            if bad:
                raise ValueError(f"{name}: unknown values {bad[:5]}; allowed: {list(allowed)}")
        elif kind in ("count", "categorical"):
            out[name] = _to_int(col, name)
            low = 0 if kind == "count" else 1
            if (out[name] < low).any():
                raise ValueError(f"{name}: values must be integers >= {low}")
        else:
            num = pd.to_numeric(col, errors="coerce")
            bad = num.isna() | ~np.isfinite(num)
            if bad.any():
                raise ValueError(f"{name}: values {list(col[bad][:5])} are not finite numbers")
            out[name] = num.astype(np.float64)
            if (out[name] < 0).any() or (kind == "rate" and (out[name] > 1).any()):
                allowed = "in [0, 1]" if kind == "rate" else ">= 0"
                raise ValueError(f"{name} is a {kind}: values must be {allowed}")
    return pd.DataFrame(out, index=df.index)


def split(
    df: pd.DataFrame, seed: int = 0, test_fraction: float = 0.2
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A seeded train/test split, stratified on ``Revenue``.

    Returns:
        ``(train, test)``: rows in their original order, fresh indices; the same for the same
        table and seed.
    """
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    rng = np.random.Generator(np.random.PCG64(seed))
    target = df[TARGET].to_numpy()
    test = []
    for value in (False, True):  # fixed order: the draws do not depend on the table's row order
        idx = np.flatnonzero(target == value)
        test.append(rng.permutation(idx)[: round(test_fraction * len(idx))])
    mask = np.zeros(len(df), dtype=bool)
    mask[np.concatenate(test)] = True
    train_df, test_df = df[~mask].reset_index(drop=True), df[mask].reset_index(drop=True)
    train_df.attrs, test_df.attrs = dict(df.attrs), dict(df.attrs)
    return train_df, test_df


def load_split(
    data_dir: str | os.PathLike[str] | None = None, seed: int = 0, download: bool = True
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``split(load_shoppers(data_dir), seed)``: the 80/20 split every measurement uses."""
    return split(load_shoppers(data_dir, download), seed)


def synthetic_table(n: int, seed: int = 0) -> pd.DataFrame:
    """A random table that passes ``validate_table``, for dry runs and tests without the data.

    Every categorical value of the real vocabulary appears when ``n`` is large enough; the
    values have none of the real data's structure.
    """
    rng = np.random.Generator(np.random.PCG64(seed))
    cols: dict[str, np.ndarray] = {}
    for name, kind in COLUMNS.items():
        if kind == "count":
            cols[name] = rng.poisson(3.0, n).astype(np.int64)
        elif kind in ("duration", "amount"):
            cols[name] = rng.exponential(100.0, n) * (rng.random(n) < 0.6)
        elif kind == "rate":
            cols[name] = rng.beta(0.5, 5.0, n)
        elif kind == "boolean":
            cols[name] = rng.random(n) < 0.3
        elif name in STRING_COLUMNS:
            cols[name] = rng.choice(np.array(MONTHS if name == "Month" else VISITOR_TYPES), n)
        else:
            cols[name] = rng.integers(1, 9, n).astype(np.int64)
    return validate_table(pd.DataFrame(cols))
