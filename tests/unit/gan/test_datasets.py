"""Tests of gan.datasets: the one lookup every family's data goes through."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from gan import datasets
from gan.datasets import DECEPTIVE_OPINION, WALMART, Dataset, DatasetNotFoundError, find

TOY = Dataset("toy", "Toy data", "https://example.org/toy.zip")
SHARED = Path(__file__).resolve().parents[4] / "shared" / "data"


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch) -> Path:
    monkeypatch.delenv("ECOMGAN_DATA_DIR", raising=False)
    monkeypatch.delenv("ECOMGAN_OFFLINE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(datasets, "SYSTEM_ROOT", tmp_path / "system")
    return tmp_path


def put(folder: Path, *names: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        (folder / name).write_text(name)
    return folder


def test_lookup_order_and_both_env_layouts(isolated, monkeypatch):
    names = ("a.csv", "b.csv")
    put(isolated / "cache" / "ecomgan" / "toy", *names)
    assert find(TOY, names)[0].parent == isolated / "cache" / "ecomgan" / "toy"
    put(isolated / "system" / "toy", *names)
    assert find(TOY, names)[0].parent == isolated / "system" / "toy"
    env = put(isolated / "env", *names)  # flat, as the shared data folder
    monkeypatch.setenv("ECOMGAN_DATA_DIR", str(env))
    assert find(TOY, names) == [env / "a.csv", env / "b.csv"]
    put(env / "toy", *names)  # a sub-folder wins over the flat layout
    assert find(TOY, names)[0].parent == env / "toy"
    explicit = put(isolated / "explicit", *names)
    assert find(TOY, names, explicit)[0].parent == explicit
    # a folder with only some of the files is passed over
    put(isolated / "partial", "a.csv")
    assert find(TOY, names, isolated / "partial")[0].parent == env / "toy"


def test_a_file_path_serves_when_one_file_is_wanted(isolated):
    path = put(isolated / "x", "mine.csv") / "mine.csv"
    assert find(TOY, ("toy.csv",), path) == [path]


def test_download_into_the_cache_once(isolated):
    calls = []

    def download(folder: Path) -> None:
        calls.append(folder)
        put(folder, "a.csv")

    assert find(TOY, ("a.csv",), download=download) == [isolated / "cache/ecomgan/toy/a.csv"]
    assert find(TOY, ("a.csv",), download=download) and len(calls) == 1


@pytest.mark.parametrize("why", ["offline", "refused", "network", "no_download"])
def test_not_found_says_where_it_looked_and_how_to_provide_it(isolated, monkeypatch, why):
    monkeypatch.setenv("ECOMGAN_DATA_DIR", str(isolated / "env"))
    if why == "offline":
        monkeypatch.setenv("ECOMGAN_OFFLINE", "1")

    def download(folder: Path) -> None:
        raise OSError("Temporary failure in name resolution")

    with pytest.raises(DatasetNotFoundError) as err:
        find(TOY, ("a.csv",), isolated / "explicit", allow_download=why != "refused",
             download=None if why == "no_download" else download)  # fmt: skip
    message = str(err.value)
    for expected in ("Toy data", "a.csv", "--data-dir", "ECOMGAN_DATA_DIR", TOY.source,
                     str(isolated / "explicit"), str(isolated / "env" / "toy"),
                     str(isolated / "system" / "toy"), str(isolated / "cache" / "ecomgan" / "toy"),
                     ):  # fmt: skip
        assert expected in message
    reason = {"offline": "ECOMGAN_OFFLINE=1", "refused": "download=False",
              "network": "Temporary failure", "no_download": "no automatic download"}  # fmt: skip
    assert reason[why] in message


def test_other_download_errors_propagate(isolated):
    def download(folder: Path) -> None:
        raise ValueError("checksum mismatch")

    with pytest.raises(ValueError, match="checksum mismatch"):
        find(TOY, ("a.csv",), download=download)


@pytest.mark.skipif(not (SHARED / "walmart_weekly_sales.csv").is_file(), reason="no shared data")
def test_the_planned_families_data_is_found_in_the_flat_shared_folder(monkeypatch):
    monkeypatch.setenv("ECOMGAN_DATA_DIR", str(SHARED))
    assert find(WALMART, ("walmart_weekly_sales.csv",)) == [SHARED / "walmart_weekly_sales.csv"]
    assert find(DECEPTIVE_OPINION, ("deceptive_opinion.csv",))[0].stat().st_size > 0


def test_datasets_module_is_torch_free():
    code = "import sys, gan.datasets\nassert 'torch' not in sys.modules, 'torch'\n"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parents[3])
