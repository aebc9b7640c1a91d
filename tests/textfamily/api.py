"""The text test family's serving API: ``/echo/echo`` sends texts through the generator."""

from __future__ import annotations

from pathlib import Path

import bentoml
import numpy as np

from ecomgan.contract import FamilyAPI
from serving.errors import InvalidInput, answer


class EchoAPI(FamilyAPI):
    """Echo texts through ``echo-generator`` (needs `self.gateway`)."""

    examples = {"echo_echo": {"texts": ["héllo", ""]}}

    @staticmethod
    def write_samples(
        run, nz: int, artifacts: dict[str, Path], out: Path, *, count: int, seed: int,
        category: str | None, conditions: dict[str, str],
    ) -> str:  # fmt: skip
        """The echo of ``count`` numbered texts, one per line."""
        texts = np.array([f"text {i}" for i in range(count)], dtype=object)
        out.write_text("\n".join(run({"text": texts})["echo"].tolist()) + "\n")
        return f"wrote {count} texts to {out}"

    async def __echo(self, texts: list[str]) -> dict:
        if not texts or not all(isinstance(t, str) for t in texts):
            raise InvalidInput("texts must be a non-empty list of strings")
        out = await self.gateway.infer("echo-generator", {"text": np.array(texts, dtype=object)})
        return {"texts": [str(t) for t in out["echo"].tolist()]}

    @bentoml.api(route="/echo/echo")
    async def echo_echo(self, texts: list[str]) -> dict:
        """Return the texts as the model gives them back."""
        return await answer(self.__echo(texts))
