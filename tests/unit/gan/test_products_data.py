"""Tests of gan.products.data: IDX parsing, folder lookup, download, the real files."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import struct
from pathlib import Path

import numpy as np
import pytest

from gan.common import sha256_file
from gan.products import data
from gan.products.data import (
    CATEGORIES,
    SPLITS,
    DatasetNotFoundError,
    IDXError,
    load_fashion_mnist,
    parse_idx,
    to_model_range,
)

REPO = Path(__file__).resolve().parents[3]
# The real files: $ECOMGAN_DATA_DIR/fashion-mnist, else shared/ beside the checkout.
DATA_ROOT = os.environ.get("ECOMGAN_DATA_DIR") or REPO.parent / "shared" / "data"
SHARED = Path(DATA_ROOT) / "fashion-mnist"
needs_data = pytest.mark.skipif(
    not (SHARED / SPLITS["test"][0]).is_file(), reason=f"Fashion-MNIST not in {SHARED}"
)


def idx_bytes(array: np.ndarray, code: int = 0x08) -> bytes:
    header = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


def write_split(folder: Path, split: str = "train", n: int = 5, seed: int = 0) -> None:
    """A tiny split in the real file layout."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    images_name, labels_name = SPLITS[split]
    images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, n, dtype=np.uint8)
    (folder / images_name).write_bytes(gzip.compress(idx_bytes(images)))
    (folder / labels_name).write_bytes(gzip.compress(idx_bytes(labels)))


@pytest.fixture(autouse=True)
def isolated_lookup(tmp_path, monkeypatch):
    """No real system folder, cache or network unless a test asks for them."""
    monkeypatch.delenv("ECOMGAN_DATA_DIR", raising=False)
    monkeypatch.delenv("ECOMGAN_OFFLINE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr("gan.datasets.SYSTEM_ROOT", tmp_path / "system")

    def no_network(*args, **kwargs):
        raise OSError("network disabled in tests")

    monkeypatch.setattr("urllib.request.urlopen", no_network)
    data._load_files.cache_clear()


def test_parse_idx_round_trip_and_dtypes():
    a = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    np.testing.assert_array_equal(parse_idx(idx_bytes(a)), a)
    b = np.array([[1, -2], [300, 4]], dtype=np.int32)
    out = parse_idx(idx_bytes(b, code=0x0C))
    assert out.dtype == np.int32 and out.dtype.isnative
    np.testing.assert_array_equal(out, b)


@pytest.mark.parametrize(
    "raw, match",
    [
        (b"\x08\x03\x00\x00", "magic"),
        (b"\x00\x00\x07\x01" + struct.pack(">I", 1) + b"\x00", "type code"),
        (b"\x00\x00\x08\x03\x00\x00", "truncated header"),
        (idx_bytes(np.zeros((3, 4), np.uint8))[:-1], "truncated or corrupt"),
        (idx_bytes(np.zeros((3, 4), np.uint8)) + b"\x00", "truncated or corrupt"),
    ],
)
def test_parse_idx_rejects_bad_files(raw, match):
    with pytest.raises(IDXError, match=match):
        parse_idx(raw)


def test_load_tiny_split_from_explicit_dir(tmp_path):
    write_split(tmp_path / "fm", n=7)
    images, labels, checksum = load_fashion_mnist("train", tmp_path / "fm", download=False)
    assert images.shape == (7, 28, 28) and images.dtype == np.uint8
    assert labels.shape == (7,) and labels.dtype == np.int64
    assert not images.flags.writeable and not labels.flags.writeable
    files = [(tmp_path / "fm" / name).read_bytes() for name in SPLITS["train"]]
    assert checksum == hashlib.sha256(files[0] + files[1]).hexdigest()


@pytest.mark.parametrize("damage", ["truncated_gzip", "not_gzip", "count_mismatch", "label_10"])
def test_corrupt_files_raise_idx_error(tmp_path, damage):
    write_split(tmp_path, n=4)
    images_path, labels_path = (tmp_path / name for name in SPLITS["train"])
    if damage == "truncated_gzip":
        images_path.write_bytes(images_path.read_bytes()[:100])
    elif damage == "not_gzip":
        labels_path.write_bytes(b"hello")
    elif damage == "count_mismatch":
        labels_path.write_bytes(gzip.compress(idx_bytes(np.zeros(3, np.uint8))))
    else:
        labels_path.write_bytes(gzip.compress(idx_bytes(np.full(4, 10, np.uint8))))
    with pytest.raises(IDXError, match=str(tmp_path)):
        load_fashion_mnist("train", tmp_path, download=False)


def test_lookup_order(tmp_path, monkeypatch):
    explicit, env, system, cache = (tmp_path / d for d in ("explicit", "env", "system", "cache"))
    write_split(cache / "ecomgan" / "fashion-mnist", n=1)
    assert len(load_fashion_mnist("train", download=False)[0]) == 1
    write_split(system / "fashion-mnist", n=2)
    assert len(load_fashion_mnist("train", download=False)[0]) == 2
    write_split(env, n=5)  # the flat layout of the shared data folder
    monkeypatch.setenv("ECOMGAN_DATA_DIR", str(env))
    assert len(load_fashion_mnist("train", download=False)[0]) == 5
    write_split(env / "fashion-mnist", n=3)  # the sub-folder wins over the flat layout
    assert len(load_fashion_mnist("train", download=False)[0]) == 3
    write_split(explicit, n=4)
    assert len(load_fashion_mnist("train", explicit, download=False)[0]) == 4
    # A folder missing the split's files is skipped.
    assert len(load_fashion_mnist("train", tmp_path / "empty", download=False)[0]) == 3


@pytest.mark.parametrize("offline", ["download_false", "env_offline", "network_down"])
def test_missing_everywhere_explains_the_three_ways(tmp_path, monkeypatch, offline):
    monkeypatch.setenv("ECOMGAN_DATA_DIR", str(tmp_path / "env"))
    if offline == "env_offline":
        monkeypatch.setenv("ECOMGAN_OFFLINE", "1")
    with pytest.raises(DatasetNotFoundError) as err:
        load_fashion_mnist("test", tmp_path / "explicit", download=offline != "download_false")
    message = str(err.value)
    assert isinstance(err.value, FileNotFoundError)
    for expected in ("--data-dir", "ECOMGAN_DATA_DIR", "apt install dataset-fashion-mnist",
                     str(tmp_path / "explicit"), str(tmp_path / "env" / "fashion-mnist"),
                     str(tmp_path / "system"), str(tmp_path / "cache" / "ecomgan")):  # fmt: skip
        assert expected in message
    if offline == "network_down":
        assert "network disabled in tests" in message


def test_download_verifies_checksums(tmp_path, monkeypatch):
    source = tmp_path / "mirror"
    write_split(source, split="test", n=3)
    served = {name: (source / name).read_bytes() for name in SPLITS["test"]}
    monkeypatch.setattr(
        data, "SHA256", {n: hashlib.sha256(b).hexdigest() for n, b in served.items()}
    )
    monkeypatch.setattr(
        "urllib.request.urlopen", lambda url, timeout: io.BytesIO(served[url.rsplit("/", 1)[1]])
    )
    images, _, _ = load_fashion_mnist("test")
    assert len(images) == 3
    cache = tmp_path / "cache" / "ecomgan" / "fashion-mnist"
    assert sorted(os.listdir(cache)) == sorted(SPLITS["test"])

    for name in SPLITS["test"]:
        (cache / name).unlink()
    served[SPLITS["test"][0]] += b"tampered"
    with pytest.raises(ValueError, match="checksum mismatch"):
        load_fashion_mnist("test")
    assert os.listdir(cache) == []  # nothing kept from a bad download


def test_to_model_range():
    out = to_model_range(np.array([0, 127, 255], np.uint8))
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, [-1.0, 127 / 127.5 - 1, 1.0])


def test_categories():
    assert (
        len(CATEGORIES) == 10 and CATEGORIES[0] == "T-shirt/top" and CATEGORIES[9] == "Ankle boot"
    )


@needs_data
def test_real_files_match_the_official_checksums_and_layout():
    for name, digest in data.SHA256.items():
        assert sha256_file(SHARED / name) == digest
    images, labels, _ = load_fashion_mnist("test", SHARED, download=False)
    assert images.shape == (10_000, 28, 28) and labels.shape == (10_000,)
    np.testing.assert_array_equal(np.bincount(labels), [1000] * 10)
