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


# Parameters this server understands (Triton's binary tensor data extension); any other key is
# refused, so that a misspelled one is not silently ignored.
REQUEST_PARAMETERS = {"http": ("binary_data_output",), "grpc": ()}
INPUT_PARAMETERS = {"http": ("binary_data_size",), "grpc": ()}
OUTPUT_PARAMETERS = {"http": ("binary_data",), "grpc": ()}


def check_parameters(where: str, parameters: Any, allowed: tuple[str, ...]) -> None:
    """Raise InvalidInput for a parameter key outside ``allowed``."""
    unknown = [k for k in parameters if k not in allowed]
    if unknown:
        accepted = ", ".join(allowed) if allowed else "none"
        raise InvalidInput(
            f"{where}: unsupported parameter{'s' if len(unknown) > 1 else ''} "
            f"{', '.join(repr(k) for k in unknown)}; accepted here: {accepted}"
        )


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
    # A BYTES element takes at least its 4-byte length prefix on the wire.
    nbytes = count * (4 if datatype == "BYTES" else dtype.itemsize)
    if nbytes > max_bytes:
        raise PayloadTooLarge(
            f"input {name!r}: shape {dims} is {nbytes} bytes; the limit is {max_bytes} bytes"
        )
    if datatype == "BYTES":
        return _decode_bytes(name, dims, count, raw, data)
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


def _decode_bytes(name: str, dims: list[int], count: int, raw, data: Any) -> np.ndarray:
    """BYTES elements from the binary form (each a 4-byte little-endian length, then the
    bytes; Triton's binary data extension and gRPC raw contents) or from a list of strings
    (JSON ``data``, UTF-8) or of bytes (gRPC ``bytes_contents``)."""
    out = np.empty(count, dtype=object)
    if raw is not None:
        view, offset = memoryview(raw), 0
        for i in range(count):
            if offset + 4 > len(view):
                raise InvalidInput(
                    f"input {name!r}: BYTES element {i} of {count} has no 4-byte length "
                    f"prefix ({len(view) - offset} bytes left)"
                )
            n = int.from_bytes(view[offset : offset + 4], "little")
            offset += 4
            if offset + n > len(view):
                raise InvalidInput(
                    f"input {name!r}: BYTES element {i} declares {n} bytes, "
                    f"{len(view) - offset} are left"
                )
            out[i] = bytes(view[offset : offset + n])
            offset += n
        if offset != len(view):
            raise InvalidInput(
                f"input {name!r}: {len(view) - offset} bytes follow the {count} BYTES elements "
                f"of shape {dims}"
            )
        return out.reshape(dims)
    if data is None:
        raise InvalidInput(f"input {name!r} has no data (give 'data' or binary_data_size)")
    try:
        flat = np.asarray(data, dtype=object).reshape(-1)
    except ValueError:
        raise InvalidInput(f"input {name!r}: data must be a flat or nested list") from None
    if flat.size != count:
        raise InvalidInput(f"input {name!r}: shape {dims} needs {count} elements, got {flat.size}")
    for i, v in enumerate(flat):
        if isinstance(v, str):
            out[i] = v.encode("utf-8")
        elif isinstance(v, bytes):
            out[i] = v
        else:
            raise InvalidInput(
                f"input {name!r}: BYTES data must be strings, got {type(v).__name__} at {i}"
            )
    return out.reshape(dims)


def raw_bytes(arr: np.ndarray) -> bytes:
    """A tensor in the binary form: little-endian values, or length-prefixed BYTES elements."""
    if arr.dtype == object:
        return b"".join(
            len(b).to_bytes(4, "little") + b for b in (_as_bytes(v) for v in arr.reshape(-1))
        )
    return np.ascontiguousarray(arr, dtype=arr.dtype.newbyteorder("<")).tobytes()


def json_data(name: str, arr: np.ndarray) -> list:
    """A tensor as JSON ``data``: flat values, BYTES elements as UTF-8 strings.

    Raises:
        InvalidInput: A BYTES element that is not UTF-8 (ask for the output as binary data).
    """
    if arr.dtype != object:
        return arr.reshape(-1).tolist()
    try:
        return [_as_bytes(v).decode("utf-8") for v in arr.reshape(-1)]
    except UnicodeDecodeError:
        raise InvalidInput(
            f"output {name!r} holds bytes that are not UTF-8 text; request it with "
            '"parameters": {"binary_data": true}'
        ) from None


def _as_bytes(value: Any) -> bytes:
    return value.encode("utf-8") if isinstance(value, str) else bytes(value)


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
