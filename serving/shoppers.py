"""User-facing API of the shoppers family: generate browsing sessions, score submitted ones.

Rows are rebuilt from the networks' encoded vectors by the data transformer stored beside the
models (`transformer.json`, read with numpy only; see `ecomgan.tabular`).
"""

from __future__ import annotations

import contextlib
import csv
import gzip
import io
import json
import math
import secrets
from collections.abc import AsyncIterator, Iterator
from functools import cached_property
from pathlib import Path
from typing import IO, Annotated, Any, Literal

import bentoml
import numpy as np
from pydantic import Field
from starlette.responses import StreamingResponse

from ecomgan.contract import FamilyAPI
from ecomgan.families import get_family
from ecomgan.files import atomic_write
from ecomgan.seeding import latent, latent_chunks
from ecomgan.tabular import TabularTransformer
from serving.errors import InvalidInput, answer

FAMILY = get_family("shoppers")
TRANSFORMER_FILE = "transformer.json"
CSV_CHUNK = 10_000
# The OpenAPI examples and the tests' fixtures; never defaults.
EXAMPLE_GENERATE: dict[str, Any] = {
    "count": 3,
    "seed": 42,
    "conditions": {"Revenue": True, "VisitorType": "New_Visitor"},
}
EXAMPLE_SESSION: dict[str, Any] = {
    "Administrative": 2,
    "Administrative_Duration": 64.0,
    "Informational": 0,
    "Informational_Duration": 0.0,
    "ProductRelated": 18,
    "ProductRelated_Duration": 612.5,
    "BounceRates": 0.0,
    "ExitRates": 0.0213,
    "PageValues": 12.3,
    "SpecialDay": 0.0,
    "Month": "Nov",
    "OperatingSystems": 2,
    "Browser": 2,
    "Region": 1,
    "TrafficType": 2,
    "VisitorType": "Returning_Visitor",
    "Weekend": False,
    "Revenue": True,
}


def _json_value(v: Any) -> Any:
    return v.item() if isinstance(v, np.generic) else v


class ShoppersAPI(FamilyAPI):
    """Mixed into the entry service; needs `self.gateway` and `self.limits` (see `EntryBase`).

    Helpers are `__private` (name-mangled per class), so family APIs mixed into one entry
    class cannot shadow each other's. Both networks take float vectors: no `input_ranges`.
    """

    examples = {
        "shoppers_generate": EXAMPLE_GENERATE,
        "shoppers_score": {"sessions": [EXAMPLE_SESSION]},
    }

    @staticmethod
    def write_samples(
        run, nz: int, artifacts: dict[str, Path], out: Path, *, count: int, seed: int,
        category: str | None, conditions: dict[str, str],
    ) -> str:  # fmt: skip
        """`ecomgan sample` from an exported or registered generator: CSV rows (the same rows
        `/shoppers/generate` returns for the same seed and conditions)."""
        if category is not None:
            raise InvalidInput("--category applies to image families; use --condition COL=VALUE")
        with open(artifacts[TRANSFORMER_FILE]) as f:
            tf = TabularTransformer.from_dict(json.load(f))
        chosen = parse_conditions(tf, conditions)
        names = [c.name for c in tf.columns]
        out = out if out.suffix else out.with_suffix(".csv")
        from tqdm import tqdm  # the CLI's dependency; the serving image does not install it

        with atomic_write(out) as raw, _text_sink(raw, gzipped=out.suffix == ".gz") as f, tqdm(
            total=count, unit="rows", unit_scale=True, disable=None, desc=out.name
        ) as bar:
            for i, inputs in enumerate(input_chunks(tf, chosen, count, seed, nz, CSV_CHUNK)):
                f.write(csv_text(names, finish_rows(tf, run(inputs)["x"], chosen), header=i == 0))
                bar.update(len(inputs["z"]))
        return f"wrote {count} sessions to {out}"

    @cached_property
    def shoppers_transformer(self) -> TabularTransformer:
        served = self.gateway.model(FAMILY.model_name("generator"))
        with open(served.artifacts[TRANSFORMER_FILE]) as f:
            return TabularTransformer.from_dict(json.load(f))

    def __plan(
        self, count: int, seed: int | None, conditions: dict[str, Any] | None
    ) -> tuple[int, dict[str, int], str, int]:
        """Validate a generate request: (seed, conditions, generator name, latent size)."""
        if isinstance(count, bool) or not 1 <= count <= self.limits.max_rows:
            raise InvalidInput(f"count must be 1..{self.limits.max_rows}, got {count}")
        if seed is None:
            seed = secrets.randbelow(2**31)
        elif not 0 <= seed < 2**63:
            raise InvalidInput(f"seed must be 0..2**63-1, got {seed}")
        chosen = parse_conditions(self.shoppers_transformer, conditions)
        served = self.gateway.model(FAMILY.model_name("generator"))
        return seed, chosen, served.name, served.signature.inputs[0].item_shape[0]

    async def __rows(
        self, name: str, inputs: dict[str, np.ndarray], chosen: dict[str, int]
    ) -> dict[str, np.ndarray]:
        out = await self.gateway.infer_chunked(name, inputs)
        return finish_rows(self.shoppers_transformer, out["x"], chosen)

    async def __csv_response(
        self, name: str, chosen: dict[str, int], count: int, seed: int, nz: int
    ) -> StreamingResponse:
        """Rows as text/csv, streamed `CSV_CHUNK` rows at a time (memory stays flat however
        large `ECOMGAN_MAX_ROWS` is set)."""
        tf = self.shoppers_transformer
        names = [c.name for c in tf.columns]
        chunks = input_chunks(tf, chosen, count, seed, nz, CSV_CHUNK)
        # The first chunk runs before the response starts, so that its faults (overload,
        # timeout) still get their status code; once streaming, a fault can only cut the body.
        first = csv_text(names, await self.__rows(name, next(chunks), chosen), header=True)

        async def body() -> AsyncIterator[str]:
            yield first
            for inputs in chunks:
                yield csv_text(names, await self.__rows(name, inputs, chosen), header=False)

        return StreamingResponse(
            body(), media_type="text/csv", headers={"X-Ecomgan-Seed": str(seed)}
        )

    async def __generate_response(
        self, count: int, seed: int | None, conditions: dict | None, fmt: str
    ) -> Any:
        if fmt not in ("json", "csv"):
            raise InvalidInput(f"format must be 'json' or 'csv', got {fmt!r}")
        seed, chosen, name, nz = self.__plan(count, seed, conditions)
        if fmt == "csv":
            return await self.__csv_response(name, chosen, count, seed, nz)
        tf = self.shoppers_transformer
        rows = await self.__rows(name, generator_inputs(tf, chosen, count, seed, nz), chosen)
        names = [c.name for c in tf.columns]
        columns = [rows[name].tolist() for name in names]
        return {
            "seed": seed,
            "conditions": {col: _json_value(self.__category(col, i)) for col, i in chosen.items()},
            "columns": names,
            "rows": [
                dict(zip(names, values, strict=True)) for values in zip(*columns, strict=True)
            ],
        }

    def __category(self, column: str, index: int) -> Any:
        spec = next(c for c in self.shoppers_transformer.columns if c.name == column)
        return spec.categories[index]

    def __session_columns(self, sessions: list) -> dict[str, np.ndarray]:
        """Validate submitted sessions and turn them into typed column arrays."""
        tf = self.shoppers_transformer
        if not isinstance(sessions, list) or not 1 <= len(sessions) <= self.limits.max_rows:
            raise InvalidInput(f"sessions must be a list of 1..{self.limits.max_rows} objects")
        specs = tf.columns
        names = {c.name for c in specs}
        values: dict[str, list] = {c.name: [] for c in specs}
        for i, session in enumerate(sessions):
            if not isinstance(session, dict):
                raise InvalidInput(f"session {i} must be an object {{column: value}}")
            missing, extra = sorted(names - set(session)), sorted(set(session) - names)
            if missing or extra:
                raise InvalidInput(
                    f"session {i}: "
                    + (f"missing columns {missing}" if missing else "")
                    + ("; " if missing and extra else "")
                    + (f"unknown columns {extra}" if extra else "")
                    + f"; a session has exactly these columns: {[c.name for c in specs]}"
                )
            for spec in specs:
                values[spec.name].append(_check_value(tf, spec, session[spec.name], i))
        return {
            spec.name: np.asarray(values[spec.name], dtype=None if spec.discrete else float)
            for spec in specs
        }

    async def __score(self, sessions: list) -> dict:
        tf = self.shoppers_transformer
        x = tf.encode(self.__session_columns(sessions)).astype(np.float32)
        s = await self.gateway.score(FAMILY.model_name("discriminator"), {"x": x})
        return {
            "threshold": s.threshold,
            "target_fpr": s.target_fpr,
            "results": [
                {"p_implausible": float(p), "implausible": bool(f), "logit": float(lg)}
                for p, f, lg in zip(s.p, s.flagged, s.logit, strict=True)
            ],
        }

    @bentoml.api(route="/shoppers/generate")
    async def shoppers_generate(
        self,
        count: Annotated[
            int, Field(description="sessions to generate", examples=[EXAMPLE_GENERATE["count"]])
        ] = 1,
        seed: Annotated[
            int | None,
            Field(
                description="omitted or null: a random seed (returned)",
                examples=[EXAMPLE_GENERATE["seed"]],
            ),
        ] = None,
        conditions: Annotated[
            dict[str, str | int | bool] | None,
            Field(
                description="categorical columns to fix; omitted: none (the data's mix)",
                examples=[EXAMPLE_GENERATE["conditions"]],
            ),
        ] = None,
        format: Literal["json", "csv"] = "json",
    ) -> dict:
        """Generate `count` synthetic browsing sessions; same seed and conditions -> same rows.

        `conditions` fixes categorical columns (e.g. `{"Revenue": true, "Month": "Nov"}`); every
        returned row meets them; without conditions the rows follow the training data's mix.
        `format: "csv"` answers text/csv with a header row (the seed in `X-Ecomgan-Seed`).
        """
        return await answer(self.__generate_response(count, seed, conditions, format))

    @bentoml.api(route="/shoppers/score")
    async def shoppers_score(
        self,
        sessions: Annotated[
            list[dict[str, Any]],
            Field(description="sessions with all 18 columns", examples=[[EXAMPLE_SESSION]]),
        ],
    ) -> dict:
        """Score sessions: probability each is synthetic/implausible, and a flag at the
        calibrated threshold (1% of real sessions flagged)."""
        return await answer(self.__score(sessions))


def parse_conditions(tf: TabularTransformer, conditions: dict[str, Any] | None) -> dict[str, int]:
    """``{column: value}`` (names and values case-insensitive) -> ``{column: category index}``.

    Raises:
        InvalidInput: Unknown column or value, a continuous or twice-named column, or a
            combination no training session has.
    """
    if conditions is None:
        return {}
    if not isinstance(conditions, dict):
        raise InvalidInput("conditions must be an object {column: value}")
    canonical = {c.name.lower(): c.name for c in tf.columns}
    named = [canonical.get(col.lower(), col) for col in conditions]
    if len(set(named)) != len(named):
        raise InvalidInput(f"each column may be conditioned once; got {list(conditions)}")
    try:
        chosen = {
            name: tf.category_index(name, value)
            for name, value in zip(named, conditions.values(), strict=True)
        }
    except ValueError as exc:
        raise InvalidInput(str(exc)) from None
    if not tf.cooccurs(chosen):
        raise InvalidInput(
            f"no training session has {_describe(tf, chosen)} together, so the generator "
            "cannot produce it; drop or change a condition"
        )
    return chosen


def generator_inputs(
    tf: TabularTransformer, chosen: dict[str, int], count: int, seed: int, nz: int
) -> dict[str, np.ndarray]:
    """The generator's inputs for `count` rows: seeded latents and the conditional vector."""
    return {"z": latent(count, nz, seed), "cond": tf.cond_vector(chosen, count)}


def input_chunks(
    tf: TabularTransformer, chosen: dict[str, int], count: int, seed: int, nz: int, chunk: int
) -> Iterator[dict[str, np.ndarray]]:
    """`generator_inputs` in pieces of at most `chunk` rows, drawn as they are consumed
    (memory stays flat however many rows; the rows equal one `generator_inputs` call's)."""
    cond = tf.cond_vector(chosen, min(count, chunk))
    for z in latent_chunks(count, nz, seed, chunk):
        yield {"z": z, "cond": cond[: len(z)]}


@contextlib.contextmanager
def _text_sink(raw: IO[bytes], *, gzipped: bool) -> Iterator[IO[str]]:
    """A text stream over a binary file, gzip-compressed for ``.gz`` paths (no name and no
    time stamp in the gzip header, so the same seed writes the same bytes)."""
    target = gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) if gzipped else raw
    f = io.TextIOWrapper(target, encoding="utf-8", newline="")
    try:
        yield f
        f.flush()
    finally:
        f.detach()  # closing the wrapper would close `raw` before atomic_write's fsync
    if gzipped:
        target.close()  # the gzip trailer; a GzipFile leaves the file it was given open



def finish_rows(
    tf: TabularTransformer, x: np.ndarray, chosen: dict[str, int]
) -> dict[str, np.ndarray]:
    """Decode generator output to rows with the conditions and cross-column rules applied."""
    rows = tf.decode(x)
    tf.apply_conditions(rows, chosen)
    return rows


def csv_text(names: list[str], rows: dict[str, np.ndarray], *, header: bool) -> str:
    """Decoded rows as CSV text (what `write_csv` writes)."""
    buf = io.StringIO()
    write_csv(buf, names, [rows[n].tolist() for n in names], header=header)
    return buf.getvalue()


def write_csv(f, names: list[str], columns: list[list], *, header: bool) -> None:
    """Rows as CSV (the API's `format: csv` and `ecomgan sample` write the same text)."""
    writer = csv.writer(f, lineterminator="\n")
    if header:
        writer.writerow(names)
    writer.writerows(zip(*columns, strict=True))


def _describe(tf: TabularTransformer, chosen: dict[str, int]) -> str:
    by_name = {c.name: c for c in tf.columns}
    return ", ".join(f"{col}={by_name[col].categories[i]}" for col, i in chosen.items())


def _check_value(tf: TabularTransformer, spec, value: Any, row: int) -> Any:
    """One submitted value, checked against its column's kind: the typed category or a float."""
    where = f"session {row}: {spec.name}"
    if spec.discrete:
        try:
            return spec.categories[tf.category_index(spec.name, value)]
        except ValueError as exc:
            raise InvalidInput(f"session {row}: {exc}") from None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidInput(f"{where} must be a finite number, got {value!r}")
    if spec.kind == "count" and (value < 0 or value != int(value)):
        raise InvalidInput(f"{where} counts pages: a non-negative integer, got {value!r}")
    if spec.kind in ("duration", "amount") and value < 0:
        raise InvalidInput(f"{where} must be >= 0, got {value!r}")
    if spec.kind == "rate" and not 0 <= value <= 1:
        raise InvalidInput(f"{where} is a rate in [0, 1], got {value!r}")
    return float(value)
