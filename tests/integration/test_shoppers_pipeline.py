"""The shoppers family through the CLI: train (dry run), export, sample, evaluate (tiny budget)."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from tests.conftest import base_env, run_cli

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple:
    root = tmp_path_factory.mktemp("shoppers")
    env = base_env(root / "bentoml")
    run_cli("train", "--family", "shoppers", "--dry-run", "--out", str(root / "run"), env=env)
    return root, env, root / "run" / "checkpoint.pt"


def test_export_ships_networks_and_transformer(trained):
    root, env, checkpoint = trained
    out = root / "export"
    run_cli("export", "--family", "shoppers", "--checkpoint", str(checkpoint), "--out", str(out),
            env=env)  # fmt: skip
    manifest = json.loads((out / "manifest.json").read_text())
    assert set(manifest["artifacts"]) == {"transformer.json"}
    assert json.loads((out / "transformer.json").read_text())["format"] == "ecomgan.tabular/1"
    for role in ("generator", "discriminator"):
        assert manifest["roles"][role]["validation"]["max_abs_diff"] < 1e-4
    assert "quality" not in manifest  # shoppers has no export gates
    run_cli("register", "--family", "shoppers", "--folder", str(out), env=env)


def test_sample_writes_conditioned_csv(trained):
    root, env, checkpoint = trained
    out = root / "rows.csv"
    run_cli("sample", "--family", "shoppers", "--checkpoint", str(checkpoint), "--count", "50",
            "--condition", "Revenue=true", "--condition", "Month=Nov", "--out", str(out),
            env=env)  # fmt: skip
    rows = pd.read_csv(out)
    assert len(rows) == 50 and rows["Revenue"].all() and (rows["Month"] == "Nov").all()


def test_evaluate_quick(trained):
    root, env, checkpoint = trained
    out = root / "report"
    run_cli("evaluate", "--family", "shoppers", "--checkpoint", str(checkpoint), "--quick",
            "--samples", "500", "--out", str(out), env=env)  # fmt: skip
    report = json.loads((out / "report.json").read_text())
    assert (out / "report.md").is_file() and (out / "marginals.png").is_file()
    assert (out / "correlation_difference.png").is_file()
    assert 0.0 <= report["fidelity"]["quality"]["score"] <= 1.0, report.keys()
