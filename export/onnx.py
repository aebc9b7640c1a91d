"""Export a PyTorch network to ONNX, then prove the file computes what the network computes.

The validation follows Hugging Face optimum's exporter: output names, then shapes,
then values within a tolerance, per output, reporting the max absolute difference;
any failure raises.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch

from gan.exportable import Exportable

# The torch.export-based exporter emits opset 18 natively; asking it for 17 runs a
# down-conversion that fails on Reduce* ops (axes became an input in 18) and silently
# keeps 18. Exporting at 18 avoids that; onnxruntime has supported it since 1.14.
DEFAULT_OPSET = 18
BATCH_AXIS = "batch"

_ONNX_TO_OIP = {
    onnx.TensorProto.BOOL: "BOOL",
    onnx.TensorProto.UINT8: "UINT8",
    onnx.TensorProto.UINT16: "UINT16",
    onnx.TensorProto.UINT32: "UINT32",
    onnx.TensorProto.UINT64: "UINT64",
    onnx.TensorProto.INT8: "INT8",
    onnx.TensorProto.INT16: "INT16",
    onnx.TensorProto.INT32: "INT32",
    onnx.TensorProto.INT64: "INT64",
    onnx.TensorProto.FLOAT16: "FP16",
    onnx.TensorProto.BFLOAT16: "BF16",
    onnx.TensorProto.FLOAT: "FP32",
    onnx.TensorProto.DOUBLE: "FP64",
    onnx.TensorProto.STRING: "BYTES",
}

MakeInputs = Callable[[int], Sequence[torch.Tensor]]


class OnnxExportError(RuntimeError):
    """The exported file is not what was asked for (opset, dynamic batch axis)."""


class OnnxValidationError(ValueError):
    """ONNX Runtime and PyTorch disagree; ``failures`` lists each failed check."""

    def __init__(self, message: str, failures: list[str], report: ValidationReport) -> None:
        super().__init__(message)
        self.failures = failures
        self.report = report


@dataclass
class ValidationReport:
    """Max absolute difference between ONNX Runtime and PyTorch, per output and batch size."""

    atol: float
    rtol: float
    batch_sizes: tuple[int, ...]
    max_abs_diffs: dict[str, dict[int, float]] = field(default_factory=dict)

    @property
    def max_abs_diff(self) -> float:
        """The largest difference over every output and batch size (0.0 if none was compared)."""
        return max((d for per in self.max_abs_diffs.values() for d in per.values()), default=0.0)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form; batch sizes become string keys."""
        return {
            "atol": self.atol,
            "rtol": self.rtol,
            "batch_sizes": list(self.batch_sizes),
            "max_abs_diff": self.max_abs_diff,
            "max_abs_diffs": {
                name: {str(b): d for b, d in per.items()}
                for name, per in self.max_abs_diffs.items()
            },
        }


def export_onnx(ex: Exportable, path: Path, *, opset: int = DEFAULT_OPSET) -> Path:
    """Export one network to a single self-contained ONNX file with a dynamic batch axis.

    The file is written next to ``path`` under a temporary name, checked, then moved
    into place, so ``path`` never holds a half-written or unchecked model.

    Args:
        ex: The network, its example inputs and its input/output names.
        path: Destination ``.onnx`` file; its folder is created if needed.
        opset: ONNX opset of the default domain; the file must come out at exactly this.

    Returns:
        ``path``.

    Raises:
        OnnxExportError: The file's opset differs from ``opset`` or an input/output lacks
            a dynamic batch axis.
        onnx.checker.ValidationError: The exported graph is not valid ONNX.
    """
    if len(ex.example_inputs) != len(ex.input_names):
        raise ValueError(
            f"{len(ex.example_inputs)} example inputs but {len(ex.input_names)} input names"
        )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    batch = torch.export.Dim(BATCH_AXIS, min=1)
    tmp = path.with_name(f".{path.stem}.{uuid.uuid4().hex[:12]}.tmp.onnx")
    try:
        # The TorchScript exporter (dynamo=False) still runs in torch 2.13 but is
        # deprecated and slated for removal, so use the torch.export-based one.
        torch.onnx.export(
            ex.module.eval(),
            tuple(ex.example_inputs),
            str(tmp),
            input_names=list(ex.input_names),
            output_names=list(ex.output_names),
            opset_version=opset,
            dynamo=True,
            dynamic_shapes=tuple({0: batch} for _ in ex.example_inputs),
            external_data=False,
            verbose=False,
        )
        onnx.checker.check_model(str(tmp), full_check=True)
        _check_exported(tmp, opset)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def _check_exported(path: Path, opset: int) -> None:
    got = onnx_opset(path)
    if got != opset:
        raise OnnxExportError(
            f"asked for opset {opset} but the exporter produced opset {got} (its down-conversion "
            f"failed); export with opset >= {got}"
        )
    sig = onnx_io_signature(path)
    static = [
        t["name"] for t in sig["inputs"] + sig["outputs"] if not t["shape"] or t["shape"][0] != -1
    ]
    if static:
        raise OnnxExportError(
            f"{', '.join(static)}: dimension 0 is not a dynamic batch axis; the network must "
            "treat dimension 0 of every input and output as the batch (no hard-coded batch size)"
        )


def onnx_opset(path: Path) -> int:
    """The opset of the default ONNX domain that a model file imports."""
    model = onnx.load(str(path), load_external_data=False)
    return next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))


def onnx_io_signature(path: Path) -> dict[str, list[dict[str, Any]]]:
    """Inputs and outputs of an ONNX file as the Open Inference Protocol describes them.

    Args:
        path: The ``.onnx`` file.

    Returns:
        ``{"inputs": [...], "outputs": [...]}``, each item ``{"name", "datatype", "shape"}``
        with OIP datatype strings ("FP32", "INT64", ...) and -1 for dynamic dimensions.
    """
    model = onnx.load(str(path), load_external_data=False)
    initializers = {i.name for i in model.graph.initializer}
    return {
        "inputs": [_spec(v) for v in model.graph.input if v.name not in initializers],
        "outputs": [_spec(v) for v in model.graph.output],
    }


def _spec(value: onnx.ValueInfoProto) -> dict[str, Any]:
    tensor = value.type.tensor_type
    return {
        "name": value.name,
        "datatype": _ONNX_TO_OIP.get(
            tensor.elem_type, onnx.TensorProto.DataType.Name(tensor.elem_type)
        ),
        "shape": [d.dim_value if d.HasField("dim_value") else -1 for d in tensor.shape.dim],
    }


def default_inputs(
    example_inputs: Sequence[torch.Tensor], batch_size: int, seed: int
) -> tuple[torch.Tensor, ...]:
    """Random inputs shaped and typed like the examples, with ``batch_size`` rows.

    Float images (4-D) are uniform in [-1, 1], other floats standard normal, integer
    inputs uniform over the range the examples span; anything else is tiled.
    """
    gen = torch.Generator().manual_seed(seed)
    out = []
    for x in example_inputs:
        shape = (batch_size, *x.shape[1:])
        if x.is_floating_point():
            if x.dim() == 4:
                out.append(torch.rand(shape, generator=gen, dtype=x.dtype) * 2 - 1)
            else:
                out.append(torch.randn(shape, generator=gen, dtype=x.dtype))
        elif x.dtype != torch.bool and not x.is_complex():
            low, high = int(x.min()), int(x.max())
            out.append(torch.randint(low, high + 1, shape, generator=gen, dtype=x.dtype))
        else:
            out.append(x[torch.arange(batch_size) % x.shape[0]])
    return tuple(out)


def validate_onnx(
    ex: Exportable,
    path: Path,
    *,
    batch_sizes: Sequence[int] = (1, 64),
    atol: float = 1e-4,
    rtol: float = 1e-3,
    seed: int = 0,
    make_inputs: MakeInputs | None = None,
) -> ValidationReport:
    """Run the ONNX file in ONNX Runtime (CPU) and the network in PyTorch, and compare.

    Checks, in order: input and output names equal ``ex``'s; then for each batch size,
    every output's shape and dtype, then its values (``|onnx - torch| <= atol + rtol * |torch|``).

    Args:
        ex: The network the file was exported from.
        path: The ``.onnx`` file.
        batch_sizes: Batch sizes to run; include 1 and a larger one to exercise the batch axis.
        atol: Absolute tolerance.
        rtol: Relative tolerance.
        seed: Seed of the default random inputs (see `default_inputs`).
        make_inputs: ``make_inputs(batch_size)`` returning one tensor per input, to replace
            the default random inputs.

    Returns:
        The max absolute difference per output and batch size.

    Raises:
        OnnxValidationError: Any check failed; the message lists each failure.
    """
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    report = ValidationReport(atol=atol, rtol=rtol, batch_sizes=tuple(batch_sizes))
    failures = _name_failures(session, ex)
    if failures:
        _raise(path, failures, report)

    module = ex.module.eval()
    for i, batch_size in enumerate(batch_sizes):
        inputs = (
            tuple(make_inputs(batch_size))
            if make_inputs is not None
            else default_inputs(ex.example_inputs, batch_size, seed + i)
        )
        with torch.no_grad():
            expected = _as_tuple(module(*inputs))
        got = session.run(None, {n: x.numpy() for n, x in zip(ex.input_names, inputs, strict=True)})
        if len(got) != len(expected):
            failures.append(
                f"batch {batch_size}: ONNX returns {len(got)} outputs, PyTorch {len(expected)}"
            )
            continue
        for name, ref_tensor, value in zip(ex.output_names, expected, got, strict=True):
            ref = ref_tensor.detach().cpu().numpy()
            where = f"batch {batch_size}, output {name!r}"
            if value.shape != ref.shape or value.dtype != ref.dtype:
                failures.append(
                    f"{where}: shape/dtype {value.shape} {value.dtype} in ONNX, "
                    f"{ref.shape} {ref.dtype} in PyTorch"
                )
                continue
            diff = float(np.max(np.abs(value.astype(np.float64) - ref), initial=0.0))
            report.max_abs_diffs.setdefault(name, {})[batch_size] = diff
            close = np.isclose(value, ref, atol=atol, rtol=rtol)
            if not close.all():
                failures.append(
                    f"{where}: values differ beyond atol={atol}, rtol={rtol}: max abs diff "
                    f"{diff:.3g} ({int((~close).sum())} of {close.size} elements)"
                )
    if failures:
        _raise(path, failures, report)
    return report


def _name_failures(session: Any, ex: Exportable) -> list[str]:
    failures = []
    for kind, got, want in (
        ("input", [i.name for i in session.get_inputs()], list(ex.input_names)),
        ("output", [o.name for o in session.get_outputs()], list(ex.output_names)),
    ):
        if got != want:
            failures.append(f"{kind} names: ONNX has {got}, expected {want}")
    return failures


def _as_tuple(out: Any) -> tuple[torch.Tensor, ...]:
    if isinstance(out, torch.Tensor):
        return (out,)
    return tuple(out)


def _raise(path: Path, failures: list[str], report: ValidationReport) -> None:
    lines = "\n".join(f"  - {f}" for f in failures)
    raise OnnxValidationError(
        f"ONNX validation of {path} failed ({len(failures)} check(s)):\n{lines}",
        failures,
        report,
    )
