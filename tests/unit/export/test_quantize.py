"""export.quantize: INT8 files keep the signature, stay close to FP32, and are gated on quality."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from export.onnx import onnx_io_signature
from export.quantize import (
    DISCRIMINATOR_RULE,
    GENERATOR_RULE,
    QuantizationError,
    QuantizeConfig,
    Tolerance,
    check_quality,
    quantize_onnx,
)
from gan.products.data import load_fashion_mnist, to_model_range

REPO = Path(__file__).resolve().parents[3]


def toy_model(path: Path) -> Path:
    """(image (B, 1, 8, 8), label (B,)) -> score (B, 2): Conv, Relu, mean pool, Gemm + Gather."""
    rng = np.random.default_rng(0)
    inits = [
        numpy_helper.from_array(rng.normal(0, 0.5, (8, 1, 3, 3)).astype(np.float32), "w1"),
        numpy_helper.from_array(rng.normal(0, 0.1, 8).astype(np.float32), "b1"),
        numpy_helper.from_array(rng.normal(0, 0.5, (8, 2)).astype(np.float32), "w2"),
        numpy_helper.from_array(rng.normal(0, 0.5, (3, 2)).astype(np.float32), "emb"),
        numpy_helper.from_array(np.array([2, 3], dtype=np.int64), "axes"),
    ]
    nodes = [
        helper.make_node("Conv", ["image", "w1", "b1"], ["c"], pads=[1, 1, 1, 1]),  # (B, 8, 8, 8)
        helper.make_node("Relu", ["c"], ["r"]),
        helper.make_node("ReduceMean", ["r", "axes"], ["p"], keepdims=0),  # (B, 8)
        helper.make_node("Gemm", ["p", "w2"], ["g"]),  # (B, 2)
        helper.make_node("Gather", ["emb", "label"], ["e"], axis=0),  # (B, 2)
        helper.make_node("Add", ["g", "e"], ["score"]),
    ]
    graph = helper.make_graph(
        nodes,
        "toy",
        [
            helper.make_tensor_value_info("image", TensorProto.FLOAT, ["batch", 1, 8, 8]),
            helper.make_tensor_value_info("label", TensorProto.INT64, ["batch"]),
        ],
        [helper.make_tensor_value_info("score", TensorProto.FLOAT, ["batch", 2])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 9
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, path)
    return path


def toy_inputs(n: int, seed: int = 1, scale: float = 1.0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    image = (rng.uniform(-1, 1, (n, 1, 8, 8)) * scale).astype(np.float32)
    return {"image": image, "label": rng.integers(0, 3, n).astype(np.int64)}


def run(path: Path, feeds: dict[str, np.ndarray]) -> np.ndarray:
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, feeds)[0]


@pytest.fixture
def src(tmp_path: Path) -> Path:
    return toy_model(tmp_path / "toy.onnx")


@pytest.mark.parametrize(
    ("method", "config"),
    [
        ("static", QuantizeConfig()),
        ("static", QuantizeConfig(quant_format="qoperator", activation_type="uint8")),
        ("dynamic", QuantizeConfig()),
    ],
)
def test_int8_keeps_signature_and_stays_close(src: Path, tmp_path: Path, method, config) -> None:
    cal = toy_inputs(200)
    dst = tmp_path / "out" / "toy.int8.onnx"
    report = quantize_onnx(src, dst, cal, method=method, config=config)

    assert onnx_io_signature(dst) == onnx_io_signature(src)
    assert onnx_io_signature(dst)["inputs"][0]["shape"] == [-1, 1, 8, 8]
    ops = {n.op_type for n in onnx.load(str(dst)).graph.node}
    assert ops & {"QuantizeLinear", "DynamicQuantizeLinear", "QLinearConv", "ConvInteger"}
    ref, got = run(src, cal), run(dst, cal)
    assert np.abs(got - ref).max() <= 0.05 * np.ptp(ref)
    assert run(dst, {k: v[:1] for k, v in cal.items()}).shape == (1, 2)
    assert report["holdout_rows"] == 40 and report["calibration_rows"] == 160
    assert report["validation"]["score"]["rel_rmse"] <= config.max_rel_rmse
    assert report["size_bytes"] == dst.stat().st_size


def test_same_inputs_same_file(src: Path, tmp_path: Path) -> None:
    a = quantize_onnx(src, tmp_path / "a.onnx", toy_inputs(100))
    b = quantize_onnx(src, tmp_path / "b.onnx", toy_inputs(100))
    assert a["sha256"] == b["sha256"]


def test_bad_calibration_is_rejected(src: Path, tmp_path: Path) -> None:
    # Ranges calibrated on inputs 100x smaller than the held-out ones clip every activation.
    dst = tmp_path / "toy.int8.onnx"
    with pytest.raises(QuantizationError, match="RMSE / std") as err:
        quantize_onnx(src, dst, toy_inputs(100, scale=0.01), holdout=toy_inputs(50, seed=2))
    assert err.value.report["validation"]["score"]["rel_rmse"] > 0.25
    assert not dst.exists()


def test_quality_rule_violation_raises_and_leaves_dst_untouched(src: Path, tmp_path: Path) -> None:
    dst = tmp_path / "toy.int8.onnx"
    dst.write_bytes(b"previous model")
    feeds = toy_inputs(64, seed=3)
    calls = []

    def quality(path: Path) -> dict[str, float]:
        calls.append(path)
        return {"mean_score": float(run(path, feeds).mean())}

    # INT8 must come out 1.0 *better* than FP32: impossible.
    impossible = (Tolerance("mean_score", higher_is_better=True, max_worsening=-1.0),)
    with pytest.raises(QuantizationError, match="mean_score") as err:
        quantize_onnx(src, dst, toy_inputs(100), quality=quality, rule=impossible)
    assert calls[0] == src and calls[1] != src and len(calls) == 2
    assert err.value.report["quality"]["passed"] is False
    assert dst.read_bytes() == b"previous model"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["toy.int8.onnx", "toy.onnx"]

    ok = (Tolerance("mean_score", higher_is_better=True, max_worsening=1.0),)
    report = quantize_onnx(src, dst, toy_inputs(100), quality=quality, rule=ok)
    assert report["quality"]["passed"] and dst.read_bytes() != b"previous model"


def test_failure_mid_way_leaves_no_partial_file(src: Path, tmp_path: Path) -> None:
    def broken(path: Path) -> dict[str, float]:
        raise RuntimeError("evaluation crashed")

    with pytest.raises(RuntimeError, match="crashed"):
        quantize_onnx(src, tmp_path / "toy.int8.onnx", toy_inputs(100), quality=broken,
                      rule=GENERATOR_RULE)  # fmt: skip
    assert sorted(p.name for p in tmp_path.iterdir()) == ["toy.onnx"]


def test_check_quality_directions() -> None:
    fp32 = {"fid": 10.0, "class_consistency": 0.90}
    assert check_quality(fp32, {"fid": 10.4, "class_consistency": 0.895}, GENERATOR_RULE)["passed"]
    verdict = check_quality(fp32, {"fid": 10.6, "class_consistency": 0.88}, GENERATOR_RULE)
    assert [r["ok"] for r in verdict["results"]] == [False, False] and len(verdict["failures"]) == 2
    assert check_quality({"auroc": 0.96}, {"auroc": 0.956}, DISCRIMINATOR_RULE)["passed"]
    assert not check_quality({"auroc": 0.96}, {"auroc": 0.954}, DISCRIMINATOR_RULE)["passed"]
    assert not check_quality({"auroc": 0.96}, {"auroc": float("nan")}, DISCRIMINATOR_RULE)["passed"]
    with pytest.raises(ValueError, match="needs 'auroc'"):
        check_quality({"fid": 1.0}, {"fid": 1.0}, DISCRIMINATOR_RULE)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"method": "fp16"}, "method must be one of"),
        ({"config": QuantizeConfig(quant_format="qint")}, "quant_format"),
        ({"config": QuantizeConfig(activation_type="int4")}, "activation_type"),
        ({"calibration": None}, "needs calibration inputs"),
        ({"calibration": {"image": np.zeros((20, 1, 8, 8), np.float32)}}, "the model takes"),
        ({"quality": lambda p: {}}, "pass both quality and rule"),
    ],
)
def test_bad_arguments(src: Path, tmp_path: Path, kwargs, message) -> None:
    args = {"calibration": toy_inputs(20), **kwargs}
    with pytest.raises(ValueError, match=message):
        quantize_onnx(src, tmp_path / "x.onnx", args.pop("calibration"), **args)
    assert not (tmp_path / "x.onnx").exists()


def test_shipped_discriminator_on_real_images(tmp_path: Path, data_dir: Path) -> None:
    x, y, _ = load_fashion_mnist("train", data_dir / "fashion-mnist")
    cal = {"image": to_model_range(x[:500])[:, None], "label": y[:500].astype(np.int64)}
    src = REPO / "models" / "products" / "discriminator.onnx"
    report = quantize_onnx(src, tmp_path / "d.onnx", cal)
    # Healthy int8 measured 0.10-0.21 (saturated kernels: ~1.0); quantize_onnx raises above 0.25.
    assert report["validation"]["logit"]["rel_rmse"] <= 0.25
    assert report["size_bytes"] < 0.4 * report["source"]["size_bytes"]
