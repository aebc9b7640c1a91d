"""Torch-free helpers to find a data file in the standard places or download it.

A family's file is looked up, in order, in the ``data_dir`` argument (the CLI's
``--data-dir``; a file path is also accepted), ``$ECOMGAN_DATA_DIR``,
``/usr/share/datasets`` and ``${XDG_CACHE_HOME:-~/.cache}/ecomgan``, each with the family's
sub-folder. ``ECOMGAN_OFFLINE=1`` forbids downloads.
"""

from __future__ import annotations

import hashlib
import os
import urllib.request
from pathlib import Path

SYSTEM_ROOT = Path("/usr/share/datasets")


class DatasetNotFoundError(FileNotFoundError):
    """A data file is in none of the searched folders and could not be downloaded."""


def offline() -> bool:
    """Whether ``ECOMGAN_OFFLINE`` forbids downloads."""
    return os.environ.get("ECOMGAN_OFFLINE", "").strip().lower() not in ("", "0", "false")


def cache_dir(subdir: str = "") -> Path:
    """``${XDG_CACHE_HOME:-~/.cache}/ecomgan/<subdir>``."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "ecomgan" / subdir


def search_dirs(
    subdir: str = "", data_dir: str | os.PathLike[str] | None = None, *, env_subdir: bool = True
) -> list[Path]:
    """The folders searched for a family's files, in lookup order.

    Args:
        subdir: The family's sub-folder of the system and cache roots.
        data_dir: An explicit folder, searched first as it is.
        env_subdir: Whether to look in ``$ECOMGAN_DATA_DIR/<subdir>`` (else in the folder itself).
    """
    dirs = [Path(data_dir).expanduser()] if data_dir is not None else []
    if os.environ.get("ECOMGAN_DATA_DIR"):
        env = Path(os.environ["ECOMGAN_DATA_DIR"]).expanduser()
        dirs.append(env / subdir if env_subdir else env)
    dirs.append(SYSTEM_ROOT / subdir)
    dirs.append(cache_dir(subdir))
    return dirs


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
