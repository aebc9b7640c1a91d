"""Torch-free lookup of every family's data files, in the standard places, else a download.

``find(dataset, files, data_dir)`` returns the paths of ``files`` from the first of these
folders that holds all of them:

1. ``data_dir`` (the CLI's ``--data-dir``): their folder, or the file itself when one file
   is wanted;
2. ``$ECOMGAN_DATA_DIR/<dataset>``, then ``$ECOMGAN_DATA_DIR`` itself (the flat layout of the
   shared data folder, e.g. ``$ECOMGAN_DATA_DIR/walmart_weekly_sales.csv``);
3. ``/usr/share/datasets/<dataset>`` (where Debian/Ubuntu dataset packages install);
4. ``${XDG_CACHE_HOME:-~/.cache}/ecomgan/<dataset>``, where a dataset with a download fetches
   its files unless ``ECOMGAN_OFFLINE=1`` (or the caller's ``download=False``) forbids it.

Otherwise ``DatasetNotFoundError`` lists the folders searched and the ways to provide the files.
"""

from __future__ import annotations

import hashlib
import os
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

SYSTEM_ROOT = Path("/usr/share/datasets")


class DatasetNotFoundError(FileNotFoundError):
    """A data file is in none of the searched folders and could not be downloaded."""


@dataclass(frozen=True)
class Dataset:
    """Where a dataset lives and where to get it.

    Attributes:
        name: Its sub-folder in every searched root, e.g. ``fashion-mnist``.
        title: Its name in messages.
        source: Where to get it (the download's URL, or the page to fetch it from by hand).
        package: A Debian/Ubuntu package that installs it in ``/usr/share/datasets/<name>``.
    """

    name: str
    title: str
    source: str
    package: str = ""


FASHION_MNIST = Dataset(
    "fashion-mnist", "Fashion-MNIST",
    "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/", "dataset-fashion-mnist",
)  # fmt: skip
SHOPPERS = Dataset(
    "shoppers", "Online Shoppers Purchasing Intention (UCI 468)",
    "https://archive.ics.uci.edu/static/public/468/online+shoppers+purchasing+intention+dataset.zip",
)  # fmt: skip
# The planned demand and reviews families' data (walmart_weekly_sales.csv, deceptive_opinion.csv).
WALMART = Dataset("walmart", "Walmart weekly sales", "https://www.kaggle.com/ (Walmart Dataset)")
DECEPTIVE_OPINION = Dataset(
    "deceptive-opinion", "Deceptive Opinion Spam corpus v1.4 (Ott et al.)",
    "https://myleott.com/op-spam.html",
)  # fmt: skip


def offline() -> bool:
    """Whether ``ECOMGAN_OFFLINE`` forbids downloads."""
    return os.environ.get("ECOMGAN_OFFLINE", "").strip().lower() not in ("", "0", "false")


def cache_dir(subdir: str = "") -> Path:
    """``${XDG_CACHE_HOME:-~/.cache}/ecomgan/<subdir>``."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "ecomgan" / subdir


def search_dirs(subdir: str = "", data_dir: str | os.PathLike[str] | None = None) -> list[Path]:
    """The folders searched for a dataset's files, in lookup order (see the module docstring).

    Args:
        subdir: The dataset's sub-folder of the roots.
        data_dir: An explicit folder, searched first as it is.
    """
    dirs = [Path(data_dir).expanduser()] if data_dir is not None else []
    if os.environ.get("ECOMGAN_DATA_DIR"):
        env = Path(os.environ["ECOMGAN_DATA_DIR"]).expanduser()
        dirs += [env / subdir, env]
    return [*dirs, SYSTEM_ROOT / subdir, cache_dir(subdir)]


def find(
    dataset: Dataset,
    files: Sequence[str],
    data_dir: str | os.PathLike[str] | None = None,
    *,
    download: Callable[[Path], object] | None = None,
    allow_download: bool = True,
) -> list[Path]:
    """Paths of ``files``, all from one folder, downloading them into the cache if allowed.

    Args:
        dataset: Which dataset (its sub-folder, and where to get it for the error message).
        files: File names that must sit together.
        data_dir: Searched first: their folder, or the file itself if one file is wanted.
        download: Writes the files into the folder it is given (the cache); ``None`` when
            the dataset has no download. An ``OSError`` from it becomes the reason in the
            ``DatasetNotFoundError``; other errors (e.g. a checksum mismatch) propagate.
        allow_download: ``False`` forbids the download, as ``ECOMGAN_OFFLINE=1`` does.

    Raises:
        DatasetNotFoundError: If the files are nowhere and cannot be downloaded.
    """
    if data_dir is not None and len(files) == 1 and Path(data_dir).expanduser().is_file():
        return [Path(data_dir).expanduser()]
    dirs = search_dirs(dataset.name, data_dir)
    for d in dirs:
        if all((d / n).is_file() for n in files):
            return [d / n for n in files]
    cache = cache_dir(dataset.name)
    if download is None:
        reason = "it has no automatic download"
    elif not allow_download or offline():
        reason = "downloading is disabled (download=False or ECOMGAN_OFFLINE=1)"
    else:
        try:
            download(cache)
            return [cache / n for n in files]
        except OSError as e:  # URLError, timeouts and disk errors are all OSErrors
            reason = f"the download from {dataset.source} failed: {e}"
    raise DatasetNotFoundError(_not_found(dataset, files, dirs, reason, download is not None))


def _not_found(dataset: Dataset, files: Sequence[str], dirs: list[Path], reason: str,
               downloadable: bool) -> str:  # fmt: skip
    ways = [
        "pass --data-dir PATH (their folder, or the file itself), or set ECOMGAN_DATA_DIR to "
        f"a folder holding them directly or in {dataset.name}/"
    ]
    if dataset.package:
        ways.append(
            f"apt install {dataset.package} (installs them in {SYSTEM_ROOT / dataset.name})"
        )
    if downloadable:
        ways.append(f"allow the download from {dataset.source} (download=True, ECOMGAN_OFFLINE "
                    f"unset), or place the files in {cache_dir(dataset.name)}")  # fmt: skip
    else:
        ways.append(f"get them from {dataset.source} and place them in {cache_dir(dataset.name)}")
    searched = "".join(f"\n  - {d}" for d in dirs)
    numbered = "".join(f"\n  {i}. {w};" for i, w in enumerate(ways, 1))
    return (
        f"{dataset.title} files {list(files)} not found, and {reason}.\nSearched:{searched}\n"
        f"Provide them in one of these ways:{numbered}"
    )


def fetch(url: str, sha256: str | None = None, timeout: float = 60) -> bytes:
    """Download ``url`` into memory, checking its SHA-256 when one is given.

    Raises:
        OSError: On network errors (``URLError`` is an ``OSError``).
        ValueError: On a checksum mismatch.
    """
    with urllib.request.urlopen(url, timeout=timeout) as r:
        data = r.read()
    if sha256 is not None and hashlib.sha256(data).hexdigest() != sha256:
        raise ValueError(
            f"checksum mismatch for {url}: expected {sha256}, "
            f"got {hashlib.sha256(data).hexdigest()}"
        )
    return data
