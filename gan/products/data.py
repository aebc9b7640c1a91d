"""Fashion-MNIST (Xiao et al. 2017) read from its IDX ``.gz`` files with numpy alone.

The folder holding the four files is looked up in this order:

1. the ``data_dir`` argument (the CLI's ``--data-dir``);
2. ``$ECOMGAN_DATA_DIR/fashion-mnist``;
3. ``/usr/share/datasets/fashion-mnist`` (Debian/Ubuntu package ``dataset-fashion-mnist``);
4. ``${XDG_CACHE_HOME:-~/.cache}/ecomgan/fashion-mnist``, where missing files are
   downloaded from the official mirror and kept only if their SHA-256 matches.

Set ``ECOMGAN_OFFLINE=1`` (or pass ``download=False``) to never download.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import os
import struct
import urllib.request
import zlib
from pathlib import Path

import numpy as np

from ecomgan.families import get_family
from gan.common import atomic_write

CATEGORIES = get_family("products").classes  # declared once, in the family registry
SPLITS = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
URL = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
SHA256 = {  # of the official files; the Debian package ships the same bytes
    "train-images-idx3-ubyte.gz": "b0564c3eedabfbf835052cff8503ea422014ce006caf5b757f851416ee8300c7",  # noqa: E501
    "train-labels-idx1-ubyte.gz": "0ae29f65d86684f32d1b9c85147786c547b9c6aebcaf235f0400a0cce308b056",  # noqa: E501
    "t10k-images-idx3-ubyte.gz": "cc1d090a38ace84dfa1aa66e3ada7c336ef481a96936906477e6dd344da56eaa",  # noqa: E501
    "t10k-labels-idx1-ubyte.gz": "8d3605d196f4be44669e46906da9733c8131fef761fdbfec72c424d5222f1a05",  # noqa: E501
}
SYSTEM_DIR = Path("/usr/share/datasets/fashion-mnist")
# IDX type codes (http://yann.lecun.com/exdb/mnist/); all multi-byte values are big-endian.
_IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


class DatasetNotFoundError(FileNotFoundError):
    """Fashion-MNIST is in none of the searched folders and could not be downloaded."""


class IDXError(ValueError):
    """A file is not a valid (gzipped) IDX file, or not the Fashion-MNIST layout."""


def to_model_range(images: np.ndarray) -> np.ndarray:
    """uint8 pixels in [0, 255] -> float32 in [-1, 1], the networks' input range."""
    return images.astype(np.float32) / 127.5 - 1.0


def parse_idx(raw: bytes, name: str = "<bytes>") -> np.ndarray:
    """Decode an (uncompressed) IDX file into a read-only native-endian array.

    Raises:
        IDXError: On a bad magic number, an unknown type code, or a size that does
            not match the header's dimensions.
    """
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise IDXError(f"{name}: not an IDX file (bad magic number)")
    code, ndim = raw[2], raw[3]
    if code not in _IDX_DTYPES:
        raise IDXError(f"{name}: unknown IDX type code 0x{code:02x}")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise IDXError(f"{name}: truncated header")
    dims = struct.unpack(f">{ndim}I", raw[4:header])
    dtype = np.dtype(_IDX_DTYPES[code])
    expected = int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    if len(raw) - header != expected:
        raise IDXError(
            f"{name}: header says {dims} ({expected} bytes of data) but the file has "
            f"{len(raw) - header} bytes; it is truncated or corrupt"
        )
    data = np.frombuffer(raw, dtype=dtype, offset=header).reshape(dims)
    return data.astype(dtype.newbyteorder("="), copy=False)  # no copy for uint8


def read_idx_gz(path: Path) -> np.ndarray:
    """Read a gzipped IDX file (see ``parse_idx``)."""
    try:
        with gzip.open(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError, zlib.error) as e:  # BadGzipFile is an OSError
        raise IDXError(f"{path}: not a readable gzip file ({e})") from e
    return parse_idx(raw, str(path))


def search_dirs(data_dir: str | os.PathLike[str] | None = None) -> list[Path]:
    """The folders searched for the files, in lookup order."""
    dirs = [Path(data_dir).expanduser()] if data_dir is not None else []
    if os.environ.get("ECOMGAN_DATA_DIR"):
        dirs.append(Path(os.environ["ECOMGAN_DATA_DIR"]).expanduser() / "fashion-mnist")
    dirs.append(SYSTEM_DIR)
    dirs.append(cache_dir())
    return dirs


def cache_dir() -> Path:
    """``${XDG_CACHE_HOME:-~/.cache}/ecomgan/fashion-mnist``."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "ecomgan" / "fashion-mnist"


def find_split(
    split: str, data_dir: str | os.PathLike[str] | None = None, download: bool = True
) -> tuple[Path, Path]:
    """Paths of a split's (images, labels) files, downloading them if allowed and needed.

    Raises:
        DatasetNotFoundError: If the files are nowhere and cannot be downloaded.
    """
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {sorted(SPLITS)}")
    names = SPLITS[split]
    dirs = search_dirs(data_dir)
    for d in dirs:
        if all((d / n).is_file() for n in names):
            return d / names[0], d / names[1]
    offline = os.environ.get("ECOMGAN_OFFLINE", "").strip().lower() not in ("", "0", "false")
    reason = "downloading is disabled (download=False or ECOMGAN_OFFLINE=1)"
    if download and not offline:
        try:
            for n in names:
                _download(n, cache_dir())
            return cache_dir() / names[0], cache_dir() / names[1]
        except OSError as e:  # URLError, timeouts and disk errors are all OSErrors
            reason = f"the download from {URL} failed: {e}"
    searched = "\n".join(f"  - {d}" for d in dirs)
    raise DatasetNotFoundError(
        f"Fashion-MNIST {split} files {names} not found, and {reason}.\nSearched:\n{searched}\n"
        "Provide them in one of three ways:\n"
        "  1. pass --data-dir DIR (a folder with the .gz files), or set ECOMGAN_DATA_DIR "
        "(files in $ECOMGAN_DATA_DIR/fashion-mnist);\n"
        f"  2. apt install dataset-fashion-mnist (installs them in {SYSTEM_DIR});\n"
        "  3. allow the download (download=True, ECOMGAN_OFFLINE unset), "
        f"or place the files in {cache_dir()}."
    )


def _download(name: str, folder: Path) -> None:
    """Fetch one official file into ``folder``, renaming it into place only if its hash matches."""
    if (folder / name).is_file():
        return
    h = hashlib.sha256()
    with atomic_write(folder / name) as out, urllib.request.urlopen(URL + name, timeout=60) as r:
        for chunk in iter(lambda: r.read(1 << 20), b""):
            h.update(chunk)
            out.write(chunk)
        if h.hexdigest() != SHA256[name]:
            # Raising inside atomic_write deletes the temp file; the target is never created.
            raise ValueError(
                f"checksum mismatch for {URL + name}: expected {SHA256[name]}, got {h.hexdigest()}"
            )


def load_fashion_mnist(
    split: str = "train", data_dir: str | os.PathLike[str] | None = None, download: bool = True
) -> tuple[np.ndarray, np.ndarray, str]:
    """Load one split of Fashion-MNIST.

    Args:
        split: ``"train"`` (60,000 images) or ``"test"`` (10,000 images).
        data_dir: Folder with the ``.gz`` files, searched first (see the module docstring).
        download: Whether the official files may be downloaded into the user cache.

    Returns:
        ``(images, labels, checksum)``: read-only uint8 (N, 28, 28), read-only int64 (N,)
        in [0, 10), and the hex SHA-256 of the images file's bytes followed by the labels
        file's bytes, which identifies the data a model was trained on.

    Raises:
        DatasetNotFoundError: If the files cannot be found or downloaded.
        IDXError: If a file is corrupt or does not have the Fashion-MNIST layout.
    """
    images_path, labels_path = find_split(split, data_dir, download)
    return _load_files(images_path.resolve(), labels_path.resolve())


@functools.lru_cache(maxsize=4)
def _load_files(images_path: Path, labels_path: Path) -> tuple[np.ndarray, np.ndarray, str]:
    images, labels = read_idx_gz(images_path), read_idx_gz(labels_path)
    if images.dtype != np.uint8 or images.ndim != 3 or images.shape[1:] != (28, 28):
        raise IDXError(f"{images_path}: expected uint8 (N, 28, 28), got {images.shape}")
    if labels.dtype != np.uint8 or labels.ndim != 1:
        raise IDXError(f"{labels_path}: expected uint8 (N,), got {labels.shape}")
    if len(images) != len(labels):
        raise IDXError(
            f"{images_path} has {len(images)} images but {labels_path} has {len(labels)} labels"
        )
    if labels.size and labels.max() >= len(CATEGORIES):
        raise IDXError(f"{labels_path}: label {labels.max()} out of range [0, {len(CATEGORIES)})")
    h = hashlib.sha256()
    for p in (images_path, labels_path):
        h.update(p.read_bytes())
    labels = labels.astype(np.int64)
    images.flags.writeable = labels.flags.writeable = False  # shared through the cache
    return images, labels, h.hexdigest()
