"""ONNX Runtime sessions sized to the container, and the OIP view of their signatures."""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

logger = logging.getLogger("ecomgan.runtime")

# OIP v2 datatype names (kserve/open-inference-protocol, "Tensor Data Types") <-> numpy.
# BYTES elements are variable-length byte strings: numpy object arrays of `bytes`, as
# tritonclient represents them.
OIP_TO_NUMPY: dict[str, np.dtype] = {
    "BOOL": np.dtype(np.bool_),
    "UINT8": np.dtype(np.uint8),
    "UINT16": np.dtype(np.uint16),
    "UINT32": np.dtype(np.uint32),
    "UINT64": np.dtype(np.uint64),
    "INT8": np.dtype(np.int8),
    "INT16": np.dtype(np.int16),
    "INT32": np.dtype(np.int32),
    "INT64": np.dtype(np.int64),
    "FP16": np.dtype(np.float16),
    "FP32": np.dtype(np.float32),
    "FP64": np.dtype(np.float64),
    "BYTES": np.dtype(object),
}


def oip_datatype(dtype: np.dtype) -> str:
    """OIP datatype name of a numpy dtype (its numpy name if OIP has none)."""
    for name, dt in OIP_TO_NUMPY.items():
        if dt == dtype:
            return name
    return np.dtype(dtype).name


_ORT_TO_OIP = {
    "tensor(bool)": "BOOL",
    "tensor(uint8)": "UINT8",
    "tensor(uint16)": "UINT16",
    "tensor(uint32)": "UINT32",
    "tensor(uint64)": "UINT64",
    "tensor(int8)": "INT8",
    "tensor(int16)": "INT16",
    "tensor(int32)": "INT32",
    "tensor(int64)": "INT64",
    "tensor(float16)": "FP16",
    "tensor(float)": "FP32",
    "tensor(double)": "FP64",
    "tensor(string)": "BYTES",
}


@dataclass(frozen=True)
class TensorSpec:
    """One input or output of a model: OIP name, datatype and shape (-1 = dynamic)."""

    name: str
    datatype: str
    shape: tuple[int, ...]

    @property
    def dtype(self) -> np.dtype:
        return OIP_TO_NUMPY[self.datatype]

    @property
    def item_shape(self) -> tuple[int, ...]:
        """Shape of one batch item (the shape without its leading batch axis)."""
        return self.shape[1:]

    def to_dict(self) -> dict:
        return {"name": self.name, "datatype": self.datatype, "shape": list(self.shape)}

    @classmethod
    def from_dict(cls, d: dict) -> TensorSpec:
        return cls(d["name"], d["datatype"], tuple(int(s) for s in d["shape"]))


def records_dtype(specs: tuple[TensorSpec, ...]) -> np.dtype:
    """Numpy record dtype with one field per tensor (fixed item shapes only)."""
    return np.dtype([(s.name, s.dtype, s.item_shape) for s in specs])


@dataclass(frozen=True)
class Signature:
    """Inputs and outputs of one model; batch is always axis 0."""

    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]

    def record_dtype(self, which: str) -> np.dtype:
        """Numpy record dtype with one field per tensor: a batch travels as one array.

        BentoML's batchable APIs take exactly one argument; a structured array keeps
        every input's exact dtype and concatenates/splits along the batch axis.
        """
        return records_dtype(self.inputs if which == "inputs" else self.outputs)

    def to_dict(self) -> dict:
        return {
            "inputs": [s.to_dict() for s in self.inputs],
            "outputs": [s.to_dict() for s in self.outputs],
        }

    @classmethod
    def from_dict(cls, d: dict) -> Signature:
        return cls(
            tuple(TensorSpec.from_dict(s) for s in d["inputs"]),
            tuple(TensorSpec.from_dict(s) for s in d["outputs"]),
        )


def cpu_quota() -> int:
    """CPUs this process may use: the cgroup CPU quota if set, else its affinity mask.

    In a container `os.cpu_count()` reports the host's cores; sizing thread pools
    from it oversubscribes the quota and CFS throttling then inflates tail latency.
    """
    n = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    quota = None
    try:  # cgroup v2
        q, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()
        if q != "max":
            quota = int(q) / int(period)
    except (OSError, ValueError):
        try:  # cgroup v1
            q = int(Path("/sys/fs/cgroup/cpu/cpu.cfs_quota_us").read_text())
            period = int(Path("/sys/fs/cgroup/cpu/cpu.cfs_period_us").read_text())
            if q > 0:
                quota = q / period
        except (OSError, ValueError):
            pass
    if quota is not None:
        n = min(n, max(1, math.ceil(quota)))
    return max(1, n)


def available_providers() -> list[str]:
    """Execution providers to use, best first: CUDA when this onnxruntime has it, then CPU."""
    import onnxruntime as ort

    from serving.settings import Settings

    wanted = Settings.from_env().ort_providers
    have = ort.get_available_providers()
    if wanted:
        chosen = [p for p in wanted if p in have]
        if chosen:
            return chosen
    return [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in have]


def create_session(path: Path, *, threads: int | None = None):
    """Create an ONNX Runtime session tuned for small-batch serving.

    Args:
        path: The `.onnx` file.
        threads: Intra-op threads; default `$ECOMGAN_ORT_THREADS` or the cgroup CPU quota.

    Returns:
        An `onnxruntime.InferenceSession`.
    """
    import onnxruntime as ort

    from serving.settings import Settings

    settings = Settings.from_env()
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.intra_op_num_threads = (
        threads or settings.ort_threads or cpu_quota()
    )
    opts.inter_op_num_threads = 1
    # Idle intra-op threads spin-wait for the next run by default; in a server they would burn
    # the cores that parse the next requests. ECOMGAN_ORT_SPIN=on restores ORT's default.
    opts.add_session_config_entry(
        "session.intra_op.allow_spinning", "1" if settings.ort_spin else "0"
    )
    providers = available_providers()
    session = ort.InferenceSession(str(path), sess_options=opts, providers=providers)
    logger.info(
        "ONNX Runtime session for %s on %s (intra-op threads %d)",
        Path(path).name,
        session.get_providers()[0],
        opts.intra_op_num_threads,
    )
    return session


def session_signature(session) -> Signature:
    """Read a session's inputs and outputs as OIP tensor specs (-1 for symbolic dims)."""

    def spec(arg) -> TensorSpec:
        shape = tuple(d if isinstance(d, int) else -1 for d in arg.shape)
        return TensorSpec(arg.name, _ORT_TO_OIP[arg.type], shape)

    return Signature(
        tuple(spec(a) for a in session.get_inputs()),
        tuple(spec(a) for a in session.get_outputs()),
    )


def run_session(
    session, signature: Signature, inputs: dict[str, np.ndarray]
) -> dict[str, np.ndarray]:
    """Run a session on named inputs (axis 0 = items); return its outputs by name."""
    feeds = {s.name: np.ascontiguousarray(inputs[s.name]) for s in signature.inputs}
    results = session.run([s.name for s in signature.outputs], feeds)
    return {s.name: value for s, value in zip(signature.outputs, results, strict=True)}


def to_records(specs: tuple[TensorSpec, ...], tensors: dict[str, np.ndarray]) -> np.ndarray:
    """Pack named arrays into one record array (the split topology's one-argument hop)."""
    n = len(tensors[specs[0].name])
    records = np.empty(n, dtype=records_dtype(specs))
    for spec in specs:
        records[spec.name] = tensors[spec.name].reshape((n, *spec.item_shape))
    return records


def run_records(session, signature: Signature, batch: np.ndarray) -> np.ndarray:
    """Run a session on a record array (one field per input); return a record array of outputs."""
    inputs = {s.name: batch[s.name] for s in signature.inputs}
    return to_records(signature.outputs, run_session(session, signature, inputs))
