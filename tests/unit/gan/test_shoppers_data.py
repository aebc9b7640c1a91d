"""Tests of the shoppers table: lookup, download, cleaning, validation and the split."""

from __future__ import annotations

import io
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from gan.datasets import DatasetNotFoundError
from gan.shoppers import data
from gan.shoppers.data import (
    COLUMNS,
    FILENAME,
    find_csv,
    load_shoppers,
    load_split,
    split,
    synthetic_table,
    validate_table,
)
from tests.conftest import shared_data_dir


@pytest.fixture
def isolated(tmp_path, monkeypatch) -> Path:
    """No env var, no system copy, an empty cache, downloads forbidden."""
    monkeypatch.delenv("ECOMGAN_DATA_DIR", raising=False)
    monkeypatch.setenv("ECOMGAN_OFFLINE", "1")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr("gan.datasets.SYSTEM_ROOT", tmp_path / "system")
    return tmp_path


@pytest.fixture(scope="module")
def real() -> pd.DataFrame:
    path = shared_data_dir() / FILENAME
    if not path.is_file():
        pytest.fail(f"{path} not found; set ECOMGAN_DATA_DIR")
    return load_shoppers(path)


def test_load_real_table_cleans_and_types(real):
    assert list(real.columns) == list(COLUMNS)
    assert len(real) == 9866 - 14  # the rows with empty page fields are dropped
    assert real.attrs["sha256"].startswith("1cf47a22")
    assert not real.isna().any().any()
    for name, kind in COLUMNS.items():
        dtype = real[name].dtype
        if kind == "boolean":
            assert dtype == np.bool_, name
        elif name in ("Month", "VisitorType"):
            assert isinstance(real[name].iloc[0], str), name
        elif kind in ("count", "categorical"):
            assert dtype == np.int64, name
        else:
            assert dtype == np.float64, name
    durations = [c for c, k in COLUMNS.items() if k == "duration"]
    assert (real[durations] >= 0).all().all()  # the source's -1 became 0
    assert set(real["Month"]) <= set(data.MONTHS) and "June" in set(real["Month"])
    assert 0.15 < real["Revenue"].mean() < 0.16


def test_lookup_order(tmp_path, isolated, monkeypatch):
    table = synthetic_table(50)
    a, b = tmp_path / "a", tmp_path / "b"
    for folder in (a, b):
        folder.mkdir()
        table.to_csv(folder / FILENAME, index=False)
    monkeypatch.setenv("ECOMGAN_DATA_DIR", str(b))
    assert find_csv() == b / FILENAME
    assert find_csv(a) == a / FILENAME
    assert find_csv(a / FILENAME) == a / FILENAME
    pd.testing.assert_frame_equal(load_shoppers(a), table, check_dtype=False)


def test_offline_and_absent_names_file_env_var_and_url(isolated):
    with pytest.raises(DatasetNotFoundError) as e:
        load_shoppers(isolated / "nowhere")
    msg = str(e.value)
    assert FILENAME in msg and "ECOMGAN_DATA_DIR" in msg and data.URL in msg
    assert "ECOMGAN_OFFLINE" in msg and str(isolated / "nowhere") in msg


def test_download_extracts_the_csv_atomically(isolated, monkeypatch):
    monkeypatch.delenv("ECOMGAN_OFFLINE")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr(FILENAME, synthetic_table(40).to_csv(index=False))
    urls = []
    monkeypatch.setattr(data, "fetch", lambda url: urls.append(url) or buf.getvalue())
    path = find_csv()
    assert urls == [data.URL] and path == isolated / "cache" / "ecomgan" / "shoppers" / FILENAME
    assert len(load_shoppers()) == 40 and urls == [data.URL]  # cached: no second download
    assert [p.name for p in path.parent.iterdir()] == [FILENAME]  # no temp files left


def test_failed_download_reports_the_reason(isolated, monkeypatch):
    monkeypatch.delenv("ECOMGAN_OFFLINE")

    def offline(url):
        raise OSError("Name or service not known")

    monkeypatch.setattr(data, "fetch", offline)
    with pytest.raises(DatasetNotFoundError, match="Name or service not known"):
        find_csv()


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        (lambda df: df.drop(columns=["Month"]), r"missing \['Month'\]"),
        (lambda df: df.assign(Extra=1), r"unexpected \['Extra'\]"),
        (lambda df: df.assign(ExitRates=np.nan), r"NaN.*'ExitRates': 20"),
        (lambda df: df.assign(Month="Jnu"), r"Month: unknown values \['Jnu'\]; allowed"),
        (lambda df: df.assign(Weekend="maybe"), "Weekend.*use true/false"),
        (lambda df: df.assign(Browser=1.5), "Browser.*whole numbers"),
        (lambda df: df.assign(Administrative=-1), "Administrative.*>= 0"),
        (lambda df: df.assign(PageValues=-0.5), "PageValues is a amount.*>= 0"),
        (lambda df: df.assign(BounceRates=1.5), r"BounceRates is a rate.*\[0, 1\]"),
        (lambda df: df.assign(ProductRelated_Duration="long"), "not finite numbers"),
    ],
)
def test_validate_table_errors_say_what_to_fix(edit, match):
    with pytest.raises(ValueError, match=match):
        validate_table(edit(synthetic_table(20)))


def test_validate_table_normalises_dtypes():
    df = synthetic_table(6).astype({"Browser": float, "Administrative": str})
    df["Revenue"] = ["TRUE", "false", "True", "0", "1", "FALSE"]
    out = validate_table(df)
    assert out["Browser"].dtype == np.int64 and out["Administrative"].dtype == np.int64
    assert out["Revenue"].tolist() == [True, False, True, False, True, False]
    with pytest.raises(ValueError, match="DataFrame"):
        validate_table({"Month": ["Nov"]})


def test_split_is_seeded_stratified_and_disjoint(real):
    train, test = split(real, seed=0)
    assert len(train) + len(test) == len(real) and abs(len(test) / len(real) - 0.2) < 0.001
    assert abs(train["Revenue"].mean() - test["Revenue"].mean()) < 0.001
    key = list(COLUMNS)
    both = pd.concat([train, test]).sort_values(key).reset_index(drop=True)
    pd.testing.assert_frame_equal(both, real.sort_values(key).reset_index(drop=True))
    again_train, again_test = load_split(shared_data_dir(), seed=0)
    pd.testing.assert_frame_equal(train, again_train)
    pd.testing.assert_frame_equal(test, again_test)
    other = split(real, seed=1)[1]
    assert not test.equals(other) and len(other) == len(test)
    with pytest.raises(ValueError, match="test_fraction"):
        split(real, test_fraction=1.0)


def test_data_module_is_torch_free():
    # Loaded from its file: importing the package would run gan/shoppers/__init__ (torch).
    code = (
        "import importlib.util, sys\n"
        "spec = importlib.util.spec_from_file_location('shoppers_data', 'gan/shoppers/data.py')\n"
        "spec.loader.exec_module(importlib.util.module_from_spec(spec))\n"
        "assert 'torch' not in sys.modules and 'sklearn' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parents[3])
