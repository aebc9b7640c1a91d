"""Call the reviews models with tritonclient and print what came back, as JSON.

Run as a script (each protocol's client in its own process, as users run them):
``python reviews_oip_client.py http|grpc URL``. Prints the discriminator's scores and the
generator's texts for each data mode (HTTP: JSON and binary; gRPC: one), and the status and
message of each refused request.
"""

from __future__ import annotations

import json
import sys

import numpy as np

TEXTS = ["The staff were lovely and the room was spotless.", "Dirty room, rude staff. Never again!"]


def main(protocol: str, url: str) -> None:
    if protocol == "http":
        import tritonclient.http as client
    else:
        import tritonclient.grpc as client
    from tritonclient.utils import InferenceServerException

    c = client.InferenceServerClient(url)
    modes = ("json", "binary") if protocol == "http" else ("grpc",)

    def infer(model, tensors, outputs, mode):
        inputs = []
        for name, (datatype, arr) in tensors.items():
            inp = client.InferInput(name, list(arr.shape), datatype)
            if protocol == "http":
                inp.set_data_from_numpy(arr, binary_data=mode == "binary")
            else:
                inp.set_data_from_numpy(arr)
            inputs.append(inp)
        if protocol == "http":
            req = [client.InferRequestedOutput(o, binary_data=mode == "binary") for o in outputs]
        else:
            req = [client.InferRequestedOutput(o) for o in outputs]
        res = c.infer(model, inputs, outputs=req)
        return {o: [v.decode() if isinstance(v, bytes) else (v.item() if hasattr(v, "item") else v)
                    for v in res.as_numpy(o).tolist()] for o in outputs}  # fmt: skip

    texts = np.array([t.encode() for t in TEXTS], dtype=object)
    gen_in = {"polarity": ("BYTES", np.array([b"positive", b"negative"], dtype=object)),
              "seed": ("INT64", np.array([3, 4], dtype=np.int64)),
              "max_tokens": ("INT64", np.array([40, 40], dtype=np.int64))}  # fmt: skip
    meta = c.get_model_metadata("reviews-generator")
    result: dict = {"meta": meta["inputs"][0]["datatype"] if protocol == "http"
                    else meta.inputs[0].datatype}  # fmt: skip
    for mode in modes:
        result[mode] = {
            "score": infer("reviews-discriminator", {"text": ("BYTES", texts)},
                           ["p_deceptive", "deceptive", "logit"], mode),
            "generate": infer("reviews-generator", gen_in, ["text", "synthetic"], mode),
        }  # fmt: skip

    def text(*values: bytes) -> dict:
        return {"text": ("BYTES", np.array(values, dtype=object))}

    bad_cases = {
        "not_utf8": ("reviews-discriminator", text(b"\xff\xfe")),
        "empty": ("reviews-discriminator", text(b"  ")),
        "too_long": ("reviews-discriminator", text(b"a " * 3000)),
        "polarity": ("reviews-generator", {**gen_in, "polarity": (
            "BYTES", np.array([b"neutral", b"positive"], dtype=object))}),
        "max_tokens": ("reviews-generator", {**gen_in, "max_tokens": (
            "INT64", np.array([0, 999], dtype=np.int64))}),
    }  # fmt: skip
    result["errors"] = {}
    for name, (model, tensors) in bad_cases.items():
        try:
            c.infer(model, [_input(client, n, d, a) for n, (d, a) in tensors.items()])
            result["errors"][name] = None
        except InferenceServerException as exc:
            result["errors"][name] = [str(exc.status()), exc.message()]
    print(json.dumps(result))


def _input(client, name, datatype, arr):
    inp = client.InferInput(name, list(arr.shape), datatype)
    inp.set_data_from_numpy(arr)
    return inp


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
