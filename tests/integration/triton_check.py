"""Drive the bento with the real `tritonclient`, one protocol per process.

Usage: python triton_check.py {http|grpc} URL OUT_DIR

Writes OUT_DIR/report.json (calls and the errors the server gave) and .npy outputs that the
pytest side compares with an in-process ONNX Runtime run. tritonclient's HTTP and gRPC
modules are kept in separate processes, as users run them.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import numpy as np

GEN, DIS = "products-generator", "products-discriminator"


def inputs_fixture(nz: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(7)
    z = rng.standard_normal((5, nz), dtype=np.float32)
    label = np.array([0, 3, 7, 9, 2], dtype=np.int64)
    image = rng.uniform(-1, 1, (5, 1, 28, 28)).astype(np.float32)
    return {"z": z, "label": label, "image": image}


def main(protocol: str, url: str, out: Path) -> None:
    if protocol == "http":
        import tritonclient.http as tc
        from tritonclient.utils import InferenceServerException
    else:
        import tritonclient.grpc as tc
        from tritonclient.utils import InferenceServerException

    client = tc.InferenceServerClient(url=url)
    report: dict = {"errors": {}}

    def meta(name: str) -> dict:
        m = client.get_model_metadata(name)
        if protocol == "grpc":
            from google.protobuf.json_format import MessageToDict

            m = MessageToDict(m)
            for t in m["inputs"] + m["outputs"]:
                t["shape"] = [int(s) for s in t["shape"]]
        return m

    report["live"] = client.is_server_live()
    report["ready"] = client.is_server_ready()
    report["model_ready"] = client.is_model_ready(GEN)
    sm = client.get_server_metadata()
    report["server_name"] = sm["name"] if protocol == "http" else sm.name
    report["meta"] = {GEN: meta(GEN), DIS: meta(DIS)}
    nz = report["meta"][GEN]["inputs"][0]["shape"][1]
    x = inputs_fixture(nz)
    np.save(out / "z.npy", x["z"])
    np.save(out / "label.npy", x["label"])
    np.save(out / "image.npy", x["image"])

    def make(name: str, arr: np.ndarray, datatype: str, binary: bool = True, shape=None):
        t = tc.InferInput(name, list(shape or arr.shape), datatype)
        if protocol == "http":
            t.set_data_from_numpy(arr, binary_data=binary)
        else:
            t.set_data_from_numpy(arr)
        return t

    def outputs(names, binary=True):
        if protocol == "http":
            return [tc.InferRequestedOutput(n, binary_data=binary) for n in names]
        return [tc.InferRequestedOutput(n) for n in names]

    for binary in (True, False):
        res = client.infer(
            GEN,
            [make("z", x["z"], "FP32", binary), make("label", x["label"], "INT64", binary)],
            outputs=outputs(["image"], binary),
        )
        np.save(out / f"image_out_{'bin' if binary else 'json'}.npy", res.as_numpy("image"))
    res = client.infer(
        DIS,
        [make("image", x["image"], "FP32"), make("label", x["label"], "INT64")],
        outputs=outputs(["logit"]),
    )
    np.save(out / "logit_out.npy", res.as_numpy("logit"))

    def expect_error(key: str, fn) -> None:
        try:
            fn()
        except InferenceServerException as exc:
            report["errors"][key] = {"status": str(exc.status()), "message": exc.message()}
        else:
            report["errors"][key] = {"status": "OK", "message": "no error raised"}

    z, lab = x["z"], x["label"]
    good = lambda: [make("z", z, "FP32"), make("label", lab, "INT64")]  # noqa: E731
    expect_error("unknown_model", lambda: client.infer("nope", good()))
    expect_error("unknown_version", lambda: client.infer(GEN, good(), model_version="999"))
    expect_error("unknown_model_metadata", lambda: client.get_model_metadata("nope"))
    expect_error(
        "wrong_input_name",
        lambda: client.infer(GEN, [make("zz", z, "FP32"), make("label", lab, "INT64")]),
    )
    expect_error(
        "wrong_datatype",
        lambda: client.infer(
            GEN, [make("z", z.astype(np.float64), "FP64"), make("label", lab, "INT64")]
        ),
    )
    expect_error(
        "wrong_shape",
        lambda: client.infer(
            GEN, [make("z", z[:, :-1].copy(), "FP32"), make("label", lab, "INT64")]
        ),
    )
    expect_error(
        "label_out_of_range",
        lambda: client.infer(GEN, [make("z", z, "FP32"), make("label", lab + 100, "INT64")]),
    )
    big = np.zeros((300, nz), np.float32)
    expect_error(
        "batch_above_cap",
        lambda: client.infer(
            GEN, [make("z", big, "FP32"), make("label", np.zeros(300, np.int64), "INT64")]
        ),
    )
    huge = np.zeros((70_000, nz), np.float32)  # 17.9 MB > the 16 MiB default limit
    expect_error(
        "oversize",
        lambda: client.infer(
            GEN, [make("z", huge, "FP32"), make("label", np.zeros(70_000, np.int64), "INT64")]
        ),
    )
    report["ready_after_errors"] = client.is_server_ready()

    # Concurrency: 64 clients at once, several rounds, for the adaptive batcher.
    async def burst() -> int:
        import tritonclient.grpc.aio as aio_mod

        aio = aio_mod if protocol == "grpc" else None
        if aio is None:
            return 0
        failed = 0
        async with aio.InferenceServerClient(url=url) as ac:

            async def one(i: int):
                zi = np.random.default_rng(i).standard_normal((1, nz), dtype=np.float32)
                inp = [tc.InferInput("z", [1, nz], "FP32"), tc.InferInput("label", [1], "INT64")]
                inp[0].set_data_from_numpy(zi)
                inp[1].set_data_from_numpy(np.array([i % 10], np.int64))
                r = await ac.infer(GEN, inp)
                return r.as_numpy("image").shape

            for _ in range(5):
                res = await asyncio.gather(*(one(i) for i in range(64)), return_exceptions=True)
                failed += sum(isinstance(r, Exception) for r in res)
        return failed

    report["burst_failed"] = asyncio.run(burst()) if protocol == "grpc" else None
    (out / "report.json").write_text(json.dumps(report, indent=1, default=str))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], Path(sys.argv[3]))
