"""User-facing API of the demand family: scenario paths, stock-out risk, fan charts, plausibility.

Pre- and post-processing are numpy only (``ecomgan.demand``): the condition is built from the
submitted history and the calendar of the forecast weeks, the ONNX generator returns H
log-ratios per path, and a path is ``level * exp(log-ratio)``. The layout and calendar
encoding come from ``demand.json`` beside the models.
"""

from __future__ import annotations

import json
import secrets
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any

import bentoml
import numpy as np
from PIL import Image
from pydantic import Field
from starlette.responses import Response

from ecomgan import demand
from ecomgan.contract import FamilyAPI
from ecomgan.demand_chart import fan_chart
from ecomgan.families import get_family
from serving.demand_requests import (
    EXAMPLE_HISTORY,
    EXAMPLE_SCENARIOS,
    EXAMPLE_STOCKOUT,
    MAX_PATHS,
    MAX_WEEKS,
    check_history,
    forecast_request,
    generator_inputs,
    to_paths,
)
from serving.errors import InvalidInput, answer

FAMILY = get_family("demand")
ARTIFACT = "demand.json"
SEED_HEADER = "X-Ecomgan-Seed"

Dates = Annotated[
    list[str],
    Field(
        description="week-ending dates, ISO YYYY-MM-DD, oldest first, 7 days apart, no gaps",
        max_length=MAX_WEEKS,
    ),
]
Sales = Annotated[
    list[float], Field(description="sales of each week (>= 0, finite)", max_length=MAX_WEEKS)
]
Horizon = Annotated[int | None, Field(description="weeks to forecast, 1..H (default H)")]
Paths = Annotated[int, Field(description=f"scenario paths, 1..{MAX_PATHS}")]
Seed = Annotated[int | None, Field(description="omitted or null: a random seed (returned)")]
Holidays = Annotated[
    list[bool] | None,
    Field(
        description="holiday flag of each forecast week "
        "(length = horizon); omitted: derived from the "
        "dates (Super Bowl, Labor Day, Thanksgiving, "
        "Christmas)"
    ),
]


class DemandAPI(FamilyAPI):
    """Mixed into the entry service; needs `self.gateway` and `self.limits` (see `EntryBase`)."""

    examples = {
        "demand_scenarios": EXAMPLE_SCENARIOS,
        "demand_stockout": EXAMPLE_STOCKOUT,
        "demand_fan_chart": EXAMPLE_STOCKOUT,
        "demand_score": EXAMPLE_HISTORY,
    }

    @staticmethod
    def write_samples(
        run,
        nz: int,
        artifacts: dict[str, Path],
        out: Path,
        *,
        count: int,
        seed: int,
        category: str | None,
        conditions: dict[str, str],
    ) -> str:
        """`ecomgan sample --from/--model demand`: a fan chart PNG of `count` paths after the
        last week of one store of the sales CSV (`--condition store=N`, default 1;
        `--condition data=PATH`, default: under `$ECOMGAN_DATA_DIR`, see `demand.sales_file`)."""
        if category is not None:
            raise InvalidInput("--category applies to image families; use --condition store=N")
        unknown = set(conditions) - {"store", "data"}
        if unknown:
            raise InvalidInput(
                f"unknown conditions {sorted(unknown)}; demand takes store=N and data=PATH"
            )
        if not 1 <= count <= MAX_PATHS:
            raise InvalidInput(f"--count is the number of paths, 1..{MAX_PATHS}")
        layout = demand.read_encoding(json.loads(Path(artifacts[ARTIFACT]).read_text()))
        try:
            data = demand.sales_file(conditions.get("data"))
        except FileNotFoundError as exc:
            raise InvalidInput(str(exc)) from None
        stores = demand.read_sales(data)
        store = int(conditions.get("store", 1))
        if store not in stores:
            raise InvalidInput(f"store {store} is not in {data} ({min(stores)}..{max(stores)})")
        series = stores[store]
        future = demand.future_dates(series["dates"][-1], layout.horizon)
        cond, level = demand.condition(series["sales"], demand.week_calendar(future), layout)
        paths = to_paths(run(generator_inputs(cond, count, seed, nz))["y"], level, layout.horizon)
        out = out if out.suffix else out.with_suffix(".png")
        out.write_bytes(
            fan_chart(
                series["dates"][-26:],
                series["sales"][-26:],
                future,
                paths,
                title=f"store {store}: {count} paths",
            )
        )
        return f"wrote a fan chart of {count} paths for store {store} to {out}"

    @cached_property
    def demand_layout(self) -> demand.Layout:
        served = self.gateway.model(FAMILY.model_name("generator"))
        with open(served.artifacts[ARTIFACT]) as f:
            return demand.read_encoding(json.load(f))

    async def __paths(self, req: dict[str, Any], paths: int, seed: int | None) -> tuple[int, Any]:
        if seed is None:
            seed = secrets.randbelow(2**31)
        elif isinstance(seed, bool) or not 0 <= seed < 2**63:
            raise InvalidInput(f"seed must be 0..2**63-1, got {seed}")
        served = self.gateway.model(FAMILY.model_name("generator"))
        nz = served.signature.inputs[0].item_shape[0]
        inputs = generator_inputs(req["cond"], paths, seed, nz)
        out = await self.gateway.infer_chunked(served.name, inputs)
        return seed, to_paths(out["y"], req["level"], req["horizon"])

    async def __stockout(self, body: dict[str, Any]) -> tuple[dict, dict, np.ndarray, int]:
        level = body.pop("service_level")
        stock = body.pop("stock")
        if not 0 < level < 1:
            raise InvalidInput(f"service_level must be in (0, 1), e.g. 0.95; got {level}")
        if not (np.isfinite(stock) and stock >= 0):
            raise InvalidInput(f"stock must be a finite number >= 0, got {stock}")
        paths, seed = body.pop("paths"), body.pop("seed")
        req = forecast_request(self.demand_layout, **body, paths=paths)
        seed, p = await self.__paths(req, paths, seed)
        receipts = None if body["receipts"] is None else np.asarray(body["receipts"], float)
        risk = demand.stockout(p, float(stock), receipts, level)
        weeks = {
            "dates": [str(x) for x in req["future"]],
            **{k: v.tolist() for k, v in risk.items()},
        }
        return req, weeks, p, seed

    async def __scenarios(self, body: dict[str, Any]) -> dict:
        paths, seed = body.pop("paths"), body.pop("seed")
        req = forecast_request(self.demand_layout, **body, paths=paths)
        seed, p = await self.__paths(req, paths, seed)
        q = demand.quantiles(p)
        return {
            "seed": seed,
            "horizon": req["horizon"],
            "level": req["level"],
            "dates": [str(x) for x in req["future"]],
            "quantiles": {
                f"{lv:.2f}": row.tolist() for lv, row in zip(demand.QUANTILES, q, strict=True)
            },
            "paths": p.tolist(),
        }

    async def __risk(self, body: dict[str, Any]) -> dict:
        req, weeks, p, seed = await self.__stockout(body)
        return {"seed": seed, "paths": len(p), "horizon": req["horizon"], "weeks": weeks}

    async def __chart(self, body: dict[str, Any]) -> Response:
        if body["stock"] is None:
            body["stock"], body["service_level"], stock = 0.0, 0.5, False
        else:
            stock = True
        req, weeks, p, seed = await self.__stockout(body)
        png = fan_chart(
            req["dates"][-26:],
            req["sales"][-26:],
            req["future"],
            p,
            np.asarray(weeks["supply"]) if stock else None,
        )
        return Response(png, media_type="image/png", headers={SEED_HEADER: str(seed)})

    async def __score(self, dates: list[str], sales: list[float]) -> dict:
        layout = self.demand_layout
        d, s = check_history(layout, dates, sales, min_weeks=layout.window)
        ends = range(layout.window, len(s) + 1)
        try:
            x = np.stack([demand.window(s[:e], d[:e], layout) for e in ends])
        except ValueError as exc:
            raise InvalidInput(str(exc)) from None
        s = await self.gateway.score(FAMILY.model_name("discriminator"), {"x": x})
        return {
            "threshold": s.threshold,
            "target_fpr": s.target_fpr,
            "window_weeks": layout.window,
            "implausible": bool(s.flagged.any()),
            "p_implausible": float(s.p.max()),
            "windows": [
                {"end": str(d[e - 1]), "p_implausible": float(p), "implausible": bool(f)}
                for e, p, f in zip(ends, s.p, s.flagged, strict=True)
            ],
        }

    @bentoml.api(route="/demand/scenarios")
    async def demand_scenarios(
        self,
        dates: Dates,
        sales: Sales,
        horizon: Horizon = None,
        paths: Paths = 1000,
        seed: Seed = None,
        holidays: Holidays = None,
    ) -> dict:
        """Demand scenario paths for the weeks after a store's history, and their 5..95%
        quantiles per week; same history, seed and paths -> same answer.

        The history needs at least 60 consecutive weeks (the same weeks one year earlier are
        part of the condition)."""
        body = {
            "dates": dates,
            "sales": sales,
            "horizon": horizon,
            "paths": paths,
            "seed": seed,
            "holidays": holidays,
        }
        return await answer(self.__scenarios(body))

    @bentoml.api(route="/demand/stockout")
    async def demand_stockout(
        self,
        dates: Dates,
        sales: Sales,
        stock: Annotated[float, Field(description="stock on hand now")],
        horizon: Horizon = None,
        paths: Paths = 1000,
        seed: Seed = None,
        holidays: Holidays = None,
        receipts: Annotated[
            list[float] | None,
            Field(description="scheduled receipts arriving in each forecast week"),
        ] = None,
        service_level: Annotated[float, Field(description="target in (0, 1)")] = 0.95,
    ) -> dict:
        """Per forecast week t: P(cumulative demand > stock + receipts up to t), the expected
        shortfall, and the stock on hand needed now to meet `service_level` up to week t."""
        body = {
            "dates": dates,
            "sales": sales,
            "stock": stock,
            "horizon": horizon,
            "paths": paths,
            "seed": seed,
            "holidays": holidays,
            "receipts": receipts,
            "service_level": service_level,
        }
        return await answer(self.__risk(body))

    @bentoml.api(route="/demand/fan_chart")
    async def demand_fan_chart(
        self,
        dates: Dates,
        sales: Sales,
        stock: Annotated[float | None, Field(description="omitted: no stock panel")] = None,
        horizon: Horizon = None,
        paths: Paths = 1000,
        seed: Seed = None,
        holidays: Holidays = None,
        receipts: list[float] | None = None,
        service_level: float = 0.95,
    ) -> Image.Image:
        """A fan chart PNG of the scenarios after the last 26 weeks of history; with `stock`,
        a second panel of cumulative demand against stock plus receipts."""
        body = {
            "dates": dates,
            "sales": sales,
            "stock": stock,
            "horizon": horizon,
            "paths": paths,
            "seed": seed,
            "holidays": holidays,
            "receipts": receipts,
            "service_level": service_level,
        }
        return await answer(self.__chart(body))

    @bentoml.api(route="/demand/score")
    async def demand_score(self, dates: Dates, sales: Sales) -> dict:
        """Plausibility of a sales history: every 20-week window scored by the discriminator,
        flagged at the calibrated threshold (1% of real windows flagged)."""
        return await answer(self.__score(dates, sales))
