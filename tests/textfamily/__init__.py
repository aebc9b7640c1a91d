"""A serving-only test family whose models take and return text (OIP ``BYTES``), to check the
BYTES path end to end: tritonclient over OIP HTTP (JSON and binary data) and gRPC, through a
real `bentoml serve`. Its two models are a string Identity built with `onnx.helper`
(`tests/textfamily/models.py`), so it has no training module: nothing here trains or exports.
Registered like any outside family: ``ECOMGAN_FAMILIES=tests.textfamily:FAMILY``.
"""

from __future__ import annotations

from pathlib import Path

from ecomgan.contract import Family

FAMILY = Family(
    name="echo",
    description="string Identity models (a test family for BYTES tensors)",
    trainer="tests.textfamily.no_training",  # never loaded: the models are built, not trained
    api="tests.textfamily.api:EchoAPI",
    shipped_dir=Path(__file__).resolve().parent / "shipped",  # none: built by the test
    max_batch_size={"generator": 64, "discriminator": 64},
    max_latency_ms={"generator": 5, "discriminator": 5},
)
