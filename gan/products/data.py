"""Fashion-MNIST (Xiao et al. 2017) read from its IDX ``.gz`` files with numpy alone.

A split's two files are found by ``gan.datasets.find`` (``--data-dir``,
``$ECOMGAN_DATA_DIR/fashion-mnist`` or ``$ECOMGAN_DATA_DIR``,
``/usr/share/datasets/fashion-mnist`` from the Debian/Ubuntu package ``dataset-fashion-mnist``,
``${XDG_CACHE_HOME:-~/.cache}/ecomgan/fashion-mnist``); missing everywhere, they are
downloaded from the official mirror into the cache and kept only if their SHA-256 matches.
Set ``ECOMGAN_OFFLINE=1`` (or pass ``download=False``) to never download.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import os
import struct
import zlib
from pathlib import Path

import numpy as np

from ecomgan.families import get_family
from ecomgan.files import atomic_write
from gan.datasets import FASHION_MNIST, fetch, find
from gan.datasets import DatasetNotFoundError as DatasetNotFoundError  # its error, re-exported

CATEGORIES = get_family("products").classes  # declared once, in the family registry
SPLITS = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
URL = FASHION_MNIST.source
SHA256 = {  # of the official files; the Debian package ships the same bytes
    "train-images-idx3-ubyte.gz": "b0564c3eedabfbf835052cff8503ea422014ce006caf5b757f851416ee8300c7",  # noqa: E501
    "train-labels-idx1-ubyte.gz": "0ae29f65d86684f32d1b9c85147786c547b9c6aebcaf235f0400a0cce308b056",  # noqa: E501
    "t10k-images-idx3-ubyte.gz": "cc1d090a38ace84dfa1aa66e3ada7c336ef481a96936906477e6dd344da56eaa",  # noqa: E501
    "t10k-labels-idx1-ubyte.gz": "8d3605d196f4be44669e46906da9733c8131fef761fdbfec72c424d5222f1a05",  # noqa: E501
}
# IDX type codes (http://yann.lecun.com/exdb/mnist/); all multi-byte values are big-endian.
_IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


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


def find_split(
    split: str, data_dir: str | os.PathLike[str] | None = None, download: bool = True
) -> tuple[Path, Path]:
    """Paths of a split's (images, labels) files, downloading them if allowed and needed.

    Raises:
        DatasetNotFoundError: If the files are nowhere and cannot be downloaded.
    """
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {sorted(SPLITS)}")

    def fetch_split(folder: Path) -> None:
        for name in SPLITS[split]:
            if not (folder / name).is_file():
                raw = fetch(URL + name, SHA256[name])  # a mismatch raises before writing
                with atomic_write(folder / name) as out:
                    out.write(raw)

    images, labels = find(FASHION_MNIST, SPLITS[split], data_dir, download=fetch_split,
                          allow_download=download)  # fmt: skip
    return images, labels


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
        DatasetNotFoundError: If the files cannot be found or downloaded (a
            ``FileNotFoundError``; re-exported here from ``gan.datasets``).
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
