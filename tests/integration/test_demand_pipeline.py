"""The demand family through the CLI: train (dry run), export with parity, sample, evaluate."""

from __future__ import annotations

import json

import pytest
from PIL import Image

from tests.conftest import base_env, run_cli

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple:
    root = tmp_path_factory.mktemp("demand")
    env = base_env(root / "bentoml")
    run_cli("train", "--family", "demand", "--dry-run", "--out", str(root / "run"), env=env)
    return root, env, root / "run" / "checkpoint.pt"


def test_export_ships_networks_and_encoding_and_samples_from_the_folder(trained):
    root, env, checkpoint = trained
    out = root / "export"
    run_cli(
        "export", "--family", "demand", "--checkpoint", str(checkpoint), "--out", str(out), env=env
    )
    manifest = json.loads((out / "manifest.json").read_text())
    assert set(manifest["artifacts"]) == {"demand.json"}
    assert json.loads((out / "demand.json").read_text())["format"] == "ecomgan.demand/1"
    for role in ("generator", "discriminator"):
        assert manifest["roles"][role]["validation"]["max_abs_diff"] < 1e-4
    assert manifest["calibration"]["target_fpr"] == 0.01
    png = root / "fan.png"
    run_cli(
        "sample",
        "--from",
        str(out),
        "--count",
        "200",
        "--condition",
        "store=3",
        "--out",
        str(png),
        env=env,
    )
    assert Image.open(png).format == "PNG"
    ckpt_png = root / "fan_ckpt.png"
    run_cli(
        "sample",
        "--family",
        "demand",
        "--checkpoint",
        str(checkpoint),
        "--count",
        "50",
        "--out",
        str(ckpt_png),
        env=env,
    )
    assert Image.open(ckpt_png).format == "PNG"


def test_evaluate_quick(trained):
    root, env, checkpoint = trained
    out = root / "report"
    run_cli(
        "evaluate",
        "--family",
        "demand",
        "--checkpoint",
        str(checkpoint),
        "--quick",
        "--out",
        str(out),
        env=env,
    )
    report = json.loads((out / "report.json").read_text())
    assert set(report["methods"]) == {
        "GAN (ours)",
        "seasonal naive",
        "level-adjusted s. naive",
        "AutoETS (log lag-52 ratio)",
    }
    for scores in report["methods"].values():
        assert 0 <= scores["coverage_80"] <= 1 and scores["scaled_crps"] > 0
        assert scores["brier_skill"] <= 1
    assert report["honest"] and 0 <= report["fidelity"]["discriminative_score"] <= 0.5
    for png in ("reliability.png", "fan_charts.png"):
        assert Image.open(out / png).format == "PNG"
    assert "| seasonal naive |" in (out / "report.md").read_text()
