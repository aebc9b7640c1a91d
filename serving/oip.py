"""Open Inference Protocol v2 pieces shared by the HTTP and gRPC front ends.

Spec: KServe "Open Inference Protocol" (V2 inference protocol), REST and gRPC
(github.com/kserve/open-inference-protocol), and Triton's binary tensor data extension.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

import ecomgan
from serving.catalog import ServedModel
from serving.errors import InvalidInput, PayloadTooLarge
from serving.runtime import OIP_TO_NUMPY, oip_datatype

SERVER_NAME = "ecomgan"
EXTENSIONS = ["binary_tensor_data"]


def server_metadata() -> dict[str, Any]:
    return {"name": SERVER_NAME, "version": ecomgan.__version__, "extensions": EXTENSIONS}


def model_parameters(served: ServedModel) -> dict[str, str]:
    """Model facts clients may want (string-valued, as OIP parameters allow everywhere)."""
    params = {
        "family": served.family.name,
        "role": served.role,
        "precision": served.metadata.get("precision", "fp32"),
    }
    calibration = served.metadata.get("calibration")
    if served.role == "discriminator" and calibration:
        params.update(
            {
                "calibration_method": str(calibration.get("method")),
                "calibration_a": repr(float(calibration["a"])),
                "calibration_b": repr(float(calibration["b"])),
                "threshold": repr(float(calibration["threshold"])),
                "target_fpr": repr(float(calibration["target_fpr"])),
            }
        )
    return params


def model_metadata(served: ServedModel) -> dict[str, Any]:
    return {
        "name": served.name,
        "versions": [served.version],
        "platform": served.platform,
        "inputs": [s.to_dict() for s in served.signature.inputs],
        "outputs": [s.to_dict() for s in served.signature.outputs],
        "parameters": model_parameters(served),
    }


def decode_tensor(
    name: str,
    datatype: str,
    shape: list[int] | tuple[int, ...],
    *,
    raw: bytes | memoryview | None = None,
    data: Any = None,
    max_bytes: int,
) -> np.ndarray:
    """Turn one OIP input tensor (raw little-endian bytes or a JSON/typed list) into an array.

    Raises:
        InvalidInput: unsupported datatype, bad shape, byte count or element count mismatch.
        PayloadTooLarge: the declared tensor exceeds `max_bytes`.
    """
    dtype = OIP_TO_NUMPY.get(datatype)
    if dtype is None:
        raise InvalidInput(
            f"input {name!r}: datatype {datatype!r} is not supported; "
            f"use one of {', '.join(OIP_TO_NUMPY)}"
        )
    try:
        dims = [int(d) for d in shape]
    except (TypeError, ValueError):
        raise InvalidInput(
            f"input {name!r}: shape must be a list of integers, got {shape!r}"
        ) from None
    if not dims or any(d < 0 for d in dims):
        raise InvalidInput(f"input {name!r}: shape must be non-negative integers, got {dims}")
    count = math.prod(dims)
    nbytes = count * dtype.itemsize
    if nbytes > max_bytes:
        raise PayloadTooLarge(
            f"input {name!r}: shape {dims} is {nbytes} bytes; the limit is {max_bytes} bytes"
        )
    if raw is not None:
        if len(raw) != nbytes:
            raise InvalidInput(
                f"input {name!r}: {datatype} shape {dims} needs {nbytes} bytes, got {len(raw)}"
            )
        return (
            np.frombuffer(raw, dtype=dtype.newbyteorder("<"))
            .astype(dtype, copy=False)
            .reshape(dims)
        )
    if data is None:
        raise InvalidInput(f"input {name!r} has no data (give 'data' or binary_data_size)")
    try:
        arr = np.asarray(data)
        if arr.dtype.kind not in "biuf" or (arr.dtype.kind == "f" and dtype.kind in "iub"):
            raise ValueError(f"values of kind {arr.dtype.kind!r}")
        arr = arr.astype(dtype, casting="unsafe")
    except (ValueError, TypeError, OverflowError) as exc:
        raise InvalidInput(
            f"input {name!r}: data is not a list of {datatype} numbers ({exc})"
        ) from None
    if arr.size != count:
        raise InvalidInput(f"input {name!r}: shape {dims} needs {count} elements, got {arr.size}")
    return arr.reshape(dims)


def output_arrays(
    served: ServedModel, outputs: dict[str, np.ndarray], requested: list[str] | None
) -> list[tuple[str, np.ndarray]]:
    """Pick and order the requested outputs (all, if none were named)."""
    names = [s.name for s in served.signature.outputs]
    if not requested:
        return [(n, outputs[n]) for n in names]
    unknown = [n for n in requested if n not in names]
    if unknown:
        raise InvalidInput(f"unknown output(s) {unknown} of {served.name!r}; outputs are {names}")
    return [(n, outputs[n]) for n in requested]


def datatype_of(arr: np.ndarray) -> str:
    return oip_datatype(arr.dtype)
