"""Send texts to ``echo-generator`` with tritonclient and print what came back, as JSON.

Run as a script (each protocol's client in its own process, as users run them):
``python oip_client.py http|grpc URL``. Prints ``{"json": [...], "binary": [...], "error": ...}``.
"""

from __future__ import annotations

import json
import sys

import numpy as np

TEXTS = ["héllo wörld", "", "a\\u0000b"]


def main(protocol: str, url: str) -> None:
    if protocol == "http":
        import tritonclient.http as client
    else:
        import tritonclient.grpc as client
    from tritonclient.utils import InferenceServerException

    c = client.InferenceServerClient(url)
    texts = np.array([t.encode() for t in TEXTS], dtype=object)
    result: dict = {"meta": None}
    meta = c.get_model_metadata("echo-generator")
    result["meta"] = (
        meta["inputs"][0]["datatype"] if protocol == "http" else meta.inputs[0].datatype
    )
    for mode in ("json", "binary"):
        inp = client.InferInput("text", [len(texts)], "BYTES")
        if protocol == "http":
            inp.set_data_from_numpy(texts, binary_data=mode == "binary")
            out = [client.InferRequestedOutput("echo", binary_data=mode == "binary")]
        else:
            inp.set_data_from_numpy(texts)
            out = [client.InferRequestedOutput("echo")]
        echoed = c.infer("echo-generator", [inp], outputs=out).as_numpy("echo")
        result[mode] = [v.decode() if isinstance(v, bytes) else v for v in echoed.tolist()]
    bad = client.InferInput("text", [1], "BYTES")
    bad.set_data_from_numpy(np.array([b"\xff\xfe"], dtype=object))
    try:
        c.infer("echo-generator", [bad])
        result["error"] = None
    except InferenceServerException as exc:
        result["error"] = [str(exc.status()), exc.message()]
    print(json.dumps(result))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
