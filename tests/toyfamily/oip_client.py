"""Call the toy family's models with the real `tritonclient`, one protocol per process.

Usage: python oip_client.py {http|grpc} URL NZ OUT_DIR

Writes OUT_DIR/z.npy, x.npy (generator output), logit.npy (discriminator on x) and meta.json.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np


def main(protocol: str, url: str, nz: int, out: Path) -> None:
    if protocol == "http":
        import tritonclient.http as tc
    else:
        import tritonclient.grpc as tc

    client = tc.InferenceServerClient(url=url)
    z = np.random.default_rng(3).standard_normal((6, nz), dtype=np.float32)
    zin = tc.InferInput("z", list(z.shape), "FP32")
    zin.set_data_from_numpy(z)
    x = client.infer("toy-generator", [zin], outputs=[tc.InferRequestedOutput("x")]).as_numpy("x")
    xin = tc.InferInput("x", list(x.shape), "FP32")
    xin.set_data_from_numpy(x)
    result = client.infer("toy-discriminator", [xin])
    meta = client.get_model_metadata("toy-generator")
    if protocol == "grpc":
        from google.protobuf.json_format import MessageToDict

        meta = MessageToDict(meta)
    np.save(out / "z.npy", z)
    np.save(out / "x.npy", x)
    np.save(out / "logit.npy", result.as_numpy("logit"))
    ready = client.is_model_ready("toy-generator")
    (out / "meta.json").write_text(json.dumps({"ready": ready, "meta": meta}))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]), Path(sys.argv[4]))
