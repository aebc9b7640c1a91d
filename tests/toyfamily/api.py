"""The toy family's serving API: one route, ``/toy/generate``."""

from __future__ import annotations

from pathlib import Path

import bentoml
import numpy as np

from ecomgan.contract import FamilyAPI
from ecomgan.seeding import latent
from serving.errors import InvalidInput, answer

GENERATOR = "toy-generator"


class ToyAPI(FamilyAPI):
    """Generate values of the toy mixture; needs `self.gateway` and `self.limits`."""

    examples = {"toy_generate": {"count": 5, "seed": 7}}

    @staticmethod
    def write_samples(
        run, nz: int, artifacts: dict[str, Path], out: Path, *, count: int, seed: int,
        category: str | None, conditions: dict[str, str],
    ) -> str:  # fmt: skip
        """One value per line, as `/toy/generate` returns them for the same seed."""
        x = run({"z": latent(count, nz, seed)})["x"]
        out = out if out.suffix else out.with_suffix(".txt")
        np.savetxt(out, x, fmt="%.6f")
        return f"wrote {count} values to {out}"

    async def __generate(self, count: int, seed: int) -> dict:
        if not 1 <= count <= self.limits.max_items:
            raise InvalidInput(f"count must be 1..{self.limits.max_items}, got {count}")
        if not 0 <= seed < 2**63:
            raise InvalidInput(f"seed must be 0..2**63-1, got {seed}")
        served = self.gateway.model(GENERATOR)
        nz = served.signature.inputs[0].item_shape[0]
        out = await self.gateway.infer(GENERATOR, {"z": latent(count, nz, seed)})
        return {"seed": seed, "values": out["x"][:, 0].tolist()}

    @bentoml.api(route="/toy/generate")
    async def toy_generate(self, count: int = 1, seed: int = 0) -> dict:
        """Generate `count` values; same seed -> same values."""
        return await answer(self.__generate(count, seed))
