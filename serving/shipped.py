"""Register the models that ship in the repo (`models/<family>/`) when the store lacks them."""

from __future__ import annotations

import logging

from ecomgan.families import FAMILIES
from serving.settings import Settings

logger = logging.getLogger("ecomgan.shipped")


def ensure_shipped_models() -> dict[str, str]:
    """Make a fresh clone servable: register each family's shipped ONNX files once.

    Skipped inside a built bento (the models travel in the bento's own store, and the repo's
    `models/` folder does not) and when `ECOMGAN_SKIP_SHIPPED=on`.

    Returns:
        Model name -> tag of the models registered or found.
    """
    if Settings.from_env().skip_shipped:
        return {}
    from export.pipeline import ensure_registered

    tags: dict[str, str] = {}
    for family in FAMILIES.values():
        if not (family.shipped_dir / "manifest.json").is_file():
            continue
        for role, tag in ensure_registered(family.name, family.shipped_dir).items():
            tags[family.model_name(role)] = tag
    return tags
