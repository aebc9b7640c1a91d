"""export.onnx: export with a dynamic batch axis, and validation that raises on any mismatch."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from torch import nn

from export.onnx import (
    OnnxExportError,
    OnnxValidationError,
    default_inputs,
    export_onnx,
    onnx_io_signature,
    onnx_opset,
    validate_onnx,
)
from gan.exportable import Exportable

NZ, CLASSES = 8, 4


class ToyGenerator(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(CLASSES, NZ)
        self.fc = nn.Linear(NZ, 16 * 4 * 4)
        self.up = nn.Sequential(
            nn.BatchNorm2d(16), nn.ReLU(), nn.ConvTranspose2d(16, 1, 4, 2, 1), nn.Tanh()
        )

    def forward(self, z: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
        return self.up(self.fc(z * self.embed(label)).view(-1, 16, 4, 4))


class ToyDiscriminator(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(CLASSES, 64)
        self.conv = nn.Sequential(nn.Conv2d(2, 8, 4, 2, 1), nn.LeakyReLU(0.2))
        self.head = nn.Linear(8, 1)

    def forward(self, image: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
        cond = self.embed(label).view(-1, 1, 8, 8)
        return self.head(self.conv(torch.cat([image, cond], 1)).mean(dim=(2, 3))).squeeze(1)


def generator_ex(module: nn.Module | None = None) -> Exportable:
    torch.manual_seed(0)
    return Exportable(
        module=(module or ToyGenerator()).eval(),
        example_inputs=(torch.randn(2, NZ), torch.tensor([0, CLASSES - 1])),
        input_names=("z", "label"),
        output_names=("image",),
    )


def discriminator_ex(module: nn.Module | None = None, outputs=("logit",)) -> Exportable:
    torch.manual_seed(1)
    return Exportable(
        module=(module or ToyDiscriminator()).eval(),
        example_inputs=(torch.rand(2, 1, 8, 8) * 2 - 1, torch.tensor([0, CLASSES - 1])),
        input_names=("image", "label"),
        output_names=outputs,
    )


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> dict[str, tuple[Exportable, Path]]:
    folder = tmp_path_factory.mktemp("onnx")
    out = {}
    for role, ex in (("generator", generator_ex()), ("discriminator", discriminator_ex())):
        out[role] = (ex, export_onnx(ex, folder / f"{role}.onnx"))
    return out


@pytest.mark.parametrize("role", ["generator", "discriminator"])
def test_export_validates_and_reports_max_diffs(exported, role):
    ex, path = exported[role]
    report = validate_onnx(ex, path)
    name = ex.output_names[0]
    assert set(report.max_abs_diffs) == {name}
    assert set(report.max_abs_diffs[name]) == {1, 64}
    assert 0.0 <= report.max_abs_diff < 1e-4
    as_dict = json.loads(json.dumps(report.to_dict()))
    assert as_dict["max_abs_diffs"][name].keys() == {"1", "64"}
    assert as_dict["max_abs_diff"] == report.max_abs_diff


def test_export_is_one_small_checked_file(exported):
    _, path = exported["generator"]
    assert sorted(p.name for p in path.parent.iterdir()) == ["discriminator.onnx", "generator.onnx"]
    assert path.stat().st_size < 200_000
    onnx.checker.check_model(str(path), full_check=True)
    assert onnx_opset(path) == 18
    graph = onnx.load(str(path)).graph
    assert {v.type.tensor_type.shape.dim[0].dim_param for v in [*graph.input, *graph.output]} == {
        "batch"
    }


def test_io_signature_has_dynamic_batch(exported):
    assert onnx_io_signature(exported["generator"][1]) == {
        "inputs": [
            {"name": "z", "datatype": "FP32", "shape": [-1, NZ]},
            {"name": "label", "datatype": "INT64", "shape": [-1]},
        ],
        "outputs": [{"name": "image", "datatype": "FP32", "shape": [-1, 1, 8, 8]}],
    }
    assert onnx_io_signature(exported["discriminator"][1])["outputs"] == [
        {"name": "logit", "datatype": "FP32", "shape": [-1]}
    ]


def test_tampered_onnx_file_raises_with_max_diff(exported, tmp_path):
    ex, path = exported["discriminator"]
    model = onnx.load(str(path))
    bias = next(i for i in model.graph.initializer if i.name.endswith("head.bias"))
    bias.CopyFrom(onnx.numpy_helper.from_array(onnx.numpy_helper.to_array(bias) + 0.5, bias.name))
    broken = tmp_path / "broken.onnx"
    onnx.save(model, str(broken))

    with pytest.raises(OnnxValidationError) as err:
        validate_onnx(ex, broken)
    message = str(err.value)
    assert "batch 1, output 'logit'" in message and "batch 64, output 'logit'" in message
    assert "max abs diff 0.5" in message
    assert err.value.report.max_abs_diff == pytest.approx(0.5, abs=1e-4)
    assert len(err.value.failures) == 2


def test_different_module_raises(exported):
    _, path = exported["generator"]
    torch.manual_seed(123)
    other = generator_ex(ToyGenerator())
    with torch.no_grad():
        other.module.fc.bias.add_(1.0)
    with pytest.raises(OnnxValidationError, match="values differ beyond atol=0.0001"):
        validate_onnx(other, path)


def test_wrong_output_names_raise(exported):
    _, path = exported["discriminator"]
    with pytest.raises(
        OnnxValidationError, match=r"output names: ONNX has \['logit'\], expected \['score'\]"
    ):
        validate_onnx(discriminator_ex(outputs=("score",)), path)


def test_shape_mismatch_raises(exported):
    ex, path = exported["generator"]

    class Cropped(nn.Module):
        def forward(self, z, label):
            return ex.module(z, label)[..., :4]

    cropped = Exportable(Cropped(), ex.example_inputs, ex.input_names, ex.output_names)
    with pytest.raises(OnnxValidationError, match=r"shape/dtype \(1, 1, 8, 8\) float32 in ONNX"):
        validate_onnx(cropped, path, batch_sizes=(1,))


def test_make_inputs_overrides_defaults(exported):
    ex, path = exported["generator"]
    calls = []

    def make_inputs(batch_size):
        calls.append(batch_size)
        return torch.zeros(batch_size, NZ), torch.full((batch_size,), 2)

    report = validate_onnx(ex, path, batch_sizes=(3, 5), make_inputs=make_inputs)
    assert calls == [3, 5]
    assert set(report.max_abs_diffs["image"]) == {3, 5}


def test_default_inputs_follow_examples():
    ex = discriminator_ex()
    image, label = default_inputs(ex.example_inputs, 500, seed=7)
    assert image.shape == (500, 1, 8, 8) and image.dtype == torch.float32
    assert image.min() >= -1.0 and image.max() <= 1.0
    assert label.dtype == torch.int64 and set(label.tolist()) == set(range(CLASSES))
    again = default_inputs(ex.example_inputs, 500, seed=7)
    assert torch.equal(image, again[0]) and torch.equal(label, again[1])
    (z, _) = default_inputs(generator_ex().example_inputs, 4000, seed=0)
    assert abs(float(z.mean())) < 0.05 and abs(float(z.std()) - 1) < 0.05


def test_static_batch_raises_and_keeps_previous_file(tmp_path):
    class FixedBatch(nn.Module):
        def forward(self, x):
            return x.reshape(2, -1) * 2

    ex = Exportable(FixedBatch(), (torch.randn(2, 3),), ("x",), ("y",))
    target = tmp_path / "fixed.onnx"
    target.write_bytes(b"previous")
    with pytest.raises(OnnxExportError, match="y: dimension 0 is not a dynamic batch axis"):
        export_onnx(ex, target)
    assert target.read_bytes() == b"previous"
    assert [p.name for p in tmp_path.iterdir()] == ["fixed.onnx"]


def test_ort_matches_numpy_dtype_for_integer_input(exported):
    ex, path = exported["discriminator"]
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    out = session.run(None, {"image": np.zeros((3, 1, 8, 8), np.float32), "label": np.arange(3)})
    assert out[0].shape == (3,)
