"""Every family in the benchmark (issue 16, part 5): shoppers, demand and reviews JSON routes.

Usage:
    python -m benchmarks.families [--smoke] [--out benchmarks/results]

One bento (`benchmarks.server.bento`, access log off) serves every route, driven by closed-loop
aiohttp clients (`loadgen.run_prepared`) at 1, 16, 64 and 128 clients on bodies built from the
family APIs' examples (64 seeds per route); a non-200 or implausible answer is an error. First,
in-process references: ctgan's ``CTGAN.sample()`` (`shoppers_bulk.ctgan_speed`) and each
family's generator on ONNX Runtime (the route's work minus HTTP and JSON: a ceiling). Writes
``families.md`` and ``families.json`` to ``--out``; ``--smoke``: two levels of 1 s, tiny counts.
The full run takes about 10 minutes on 2 cores: a level ends when its last request is answered,
and 16-text `/reviews/generate` requests take seconds each at 16 clients and up.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from benchmarks.ceiling import _time
from benchmarks.loadgen import Prepared, run_prepared
from benchmarks.machine import REPO, TreeCPU, describe
from benchmarks.server import bento

MODELS = REPO / "models"
KEYS = {"images_per_s": "items_per_s", "images_per_cpu_s": "items_per_cpu_s"}  # loadgen's names
DROP = ("path", "clients", "batch")
LEGEND = (
    "Served rows: closed-loop aiohttp clients in one process on the same CPUs as the server, each "
    "measured level after an unmeasured warm-up; items/s = successful requests x items per "
    "request / wall time; an error is any non-200 answer, timeout or implausible body (wrong "
    "count, unmet condition, probability outside [0, 1]); server CPU-s = user + system seconds of "
    "the server's process tree during the level. In-process rows: the route's model work without "
    "HTTP or JSON, in this process with the service's ORT session options, one call at a time; "
    "their items per CPU-s are this process's. ctgan's `sample()` (when ctgan is installed): "
    "best of 1 and all torch threads, after a 1-epoch fit (its speed does not depend on training)."
)


@dataclass(frozen=True)
class Plan:
    """What one run measures.

    Attributes:
        levels: Closed-loop client counts, each route at each (the products benchmark's).
        seconds, warmup: Measured and unmeasured seconds per (route, level).
        shoppers_rows, demand_paths, review_counts, max_tokens: Sizes of one request.
        ceiling_seconds: Duration of each in-process timing.
        ctgan_rows: Rows of the timed `CTGAN.sample()` call.
    """

    levels: tuple[int, ...] = (1, 16, 64, 128)
    seconds: float = 10.0
    warmup: float = 2.0
    shoppers_rows: int = 100
    demand_paths: int = 1000
    review_counts: tuple[int, ...] = (1, 16)
    max_tokens: int = 120  # serving.reviews.EXAMPLE_GENERATE's
    ceiling_seconds: float = 3.0
    ctgan_rows: int = 20_000


SMOKE = Plan(levels=(1, 4), seconds=1.0, warmup=0.2, shoppers_rows=10, demand_paths=50,
             review_counts=(1, 2), max_tokens=20, ceiling_seconds=0.3, ctgan_rows=1000)  # fmt: skip


@dataclass(frozen=True)
class Route:
    """One measured route: bodies to send, items per request, unit, and a check of the
    parsed answer (False: an implausible body)."""

    family: str
    route: str
    label: str
    unit: str
    items: int
    bodies: list[dict]
    check: Callable[[dict], bool]


def routes(plan: Plan) -> list[Route]:
    """The hot JSON routes of the shoppers, demand and reviews families, from their examples."""
    from serving import reviews, shoppers
    from serving.demand_requests import EXAMPLE_SCENARIOS, EXAMPLE_STOCKOUT

    seeds, shop, review = range(64), shoppers.EXAMPLE_GENERATE, reviews.EXAMPLE_GENERATE
    n, paths = plan.shoppers_rows, plan.demand_paths
    h_scen, h_stock = EXAMPLE_SCENARIOS["horizon"], EXAMPLE_STOCKOUT["horizon"]

    def prob(x: Any) -> bool:
        return isinstance(x, float) and 0.0 <= x <= 1.0

    out = [
        Route("shoppers", "/shoppers/generate", f"generate, {n} rows", "rows", n,
              [{**shop, "count": n, "seed": s} for s in seeds],
              lambda b: len(b["rows"]) == n and len(b["columns"]) == 18 and all(
                  row[k] == v for row in b["rows"] for k, v in shop["conditions"].items())),
        Route("shoppers", "/shoppers/score", "score, 1 session", "rows", 1,
              [{"sessions": [shoppers.EXAMPLE_SESSION]}],
              lambda b: len(b["results"]) == 1 and prob(b["results"][0]["p_implausible"])),
        Route("demand", "/demand/scenarios", f"scenarios, {paths} paths", "paths", paths,
              [{**EXAMPLE_SCENARIOS, "paths": paths, "seed": s} for s in seeds],
              lambda b: len(b["paths"]) == paths and len(b["paths"][0]) == h_scen
              and len(b["quantiles"]["0.50"]) == h_scen),
        Route("demand", "/demand/stockout", f"stockout, {paths} paths", "paths", paths,
              [{**EXAMPLE_STOCKOUT, "paths": paths, "seed": s} for s in seeds],
              lambda b: b["paths"] == paths and len(b["weeks"]["p_stockout"]) == h_stock
              and all(map(prob, b["weeks"]["p_stockout"]))),
        Route("reviews", "/reviews/score", "score, 1 review", "scores", 1, [reviews.EXAMPLE_SCORE],
              lambda b: len(b["results"]) == 1 and prob(b["results"][0]["p_deceptive"])
              and b["results"][0]["label"] in ("deceptive", "truthful")),
    ]  # fmt: skip
    for c in plan.review_counts:
        out.append(Route(
            "reviews", "/reviews/generate", f"generate, {c} text(s) of <= {plan.max_tokens} tokens",
            "texts", c,
            [{**review, "count": c, "seed": 1000 * s, "max_tokens": plan.max_tokens}
             for s in seeds],
            lambda b, c=c: len(b["reviews"]) == c and b["synthetic"] is True
            and all(isinstance(r["text"], str) and r["synthetic"] is True for r in b["reviews"]),
        ))  # fmt: skip
    return out


def _row(family: str, route: str, label: str, unit: str, clients: str, **kw: Any) -> dict:
    return {"family": family, "route": route, "label": label, "unit": unit, "clients": clients,
            **kw}  # fmt: skip


def served(plan: Plan) -> list[dict]:
    """Every route at every level (level-major) on one bento; one row per (route, level)."""
    rows = []
    with bento(env={"ECOMGAN_ACCESS_LOG": "off"}) as (url, _, server):
        cpu, measured = TreeCPU(server.proc.pid), routes(plan)
        prepared = {
            r.label: [Prepared(url + r.route, json.dumps(b).encode()) for b in r.bodies]
            for r in measured
        }
        for clients in plan.levels:
            for r in measured:
                check = lambda body, r=r: r.check(json.loads(body))  # noqa: E731
                for seconds, measure in ((plan.warmup, None), (plan.seconds, cpu)):
                    res = asyncio.run(run_prepared(r.route, prepared[r.label], clients,
                                                   items=r.items, seconds=seconds,
                                                   check=check, cpu=measure))  # fmt: skip
                s = {KEYS.get(k, k): v for k, v in res.summary().items() if k not in DROP}
                row = _row(r.family, r.route, r.label, r.unit, str(clients), **s)
                print(json.dumps(row), flush=True)
                rows.append(row)
    return rows


def in_process(plan: Plan) -> list[dict]:
    """Each family's generator on ONNX Runtime in this process; ctgan's `sample()` beside it."""
    import numpy as np

    from ecomgan.tabular import TabularTransformer
    from serving import reviews, shoppers
    from serving.runtime import create_session  # the served sessions' options (no spinning)

    secs, rows = plan.ceiling_seconds, []

    def add(family: str, label: str, unit: str, step: Callable[[], Any], n: int) -> None:
        t = _time(step, n, secs, "cpu", family, "onnxruntime")
        rate, per_cpu = t.images_per_s, t.images_per_cpu_s
        rows.append(_row(family, "in-process", label, unit, "in-process", rps=rate / n,
                         items_per_s=rate, items_per_cpu_s=per_cpu))  # fmt: skip

    gen = create_session(MODELS / "shoppers" / "generator.onnx")
    tf = TabularTransformer.from_dict(json.loads((MODELS / "shoppers" / shoppers.TRANSFORMER_FILE)
                                                 .read_text()))  # fmt: skip
    chosen = shoppers.parse_conditions(tf, shoppers.EXAMPLE_GENERATE["conditions"])
    n, nz = plan.shoppers_rows, gen.get_inputs()[0].shape[1]
    feed = shoppers.generator_inputs(tf, chosen, n, 0, nz)
    add("shoppers", f"ORT generator + decode, {n} rows", "rows",
        lambda: shoppers.finish_rows(tf, gen.run(None, feed)[0], chosen), n)  # fmt: skip
    gen = create_session(MODELS / "demand" / "generator.onnx")
    rng, p = np.random.default_rng(0), plan.demand_paths
    feed = {i.name: rng.standard_normal((p, i.shape[1]), dtype=np.float32)
            for i in gen.get_inputs()}  # fmt: skip
    add("demand", f"ORT generator, {p} paths", "paths", lambda: gen.run(None, feed), p)
    step = create_session(MODELS / "reviews" / "generator.onnx")
    call = reviews.generator_call(
        reviews.load_tokenizer({reviews.TOKENIZER_FILE: MODELS / "reviews" / "tokenizer.json"}),
        step.get_inputs()[0].shape[1],
    )
    names = [o.name for o in step.get_outputs()]
    run = lambda feed: dict(zip(names, step.run(None, feed), strict=True))  # noqa: E731
    for c in plan.review_counts:
        inputs = reviews.generator_inputs("positive", c, 7, plan.max_tokens)
        add("reviews", f"ORT generator loop + decode, {c} text(s) of <= {plan.max_tokens} tokens",
            "texts", lambda inputs=inputs: call(inputs, run), c)  # fmt: skip
    try:
        from benchmarks.shoppers_bulk import ctgan_speed

        with tempfile.TemporaryDirectory() as tmp:
            c = ctgan_speed(plan.ctgan_rows, 5, Path(tmp))
        rows.append(_row("shoppers", "in-process",
                         f"ctgan CTGAN.sample({c['rows']:,}), torch threads {c['threads']}",
                         "rows", "in-process", items_per_s=c["rows_per_s"]))  # fmt: skip
    except ImportError as exc:
        print(f"ctgan not measured: {exc}", flush=True)
    return rows


def _f(x: Any, fmt: str = ",.0f") -> str:
    return "-" if x is None else format(x, fmt)


def _errors(row: dict) -> str:
    kinds = ", ".join(f"{k}: {n}" for k, n in row.get("error_kinds", {}).items())
    return _f(row.get("errors"), "d") + (f" ({kinds})" if kinds else "")


def markdown(result: dict) -> str:
    """The machine header, one table (served and in-process rows) and its legend."""
    lines = ["# Every family: served JSON routes and in-process references", ""]
    lines += [f"- **{k}**: {v}" for k, v in result["machine"].items()] + [
        f"- **plan**: {result['plan']}",
        "",
        "| family | route | what | clients | req/s | items/s | "
        "p50 ms | p90 ms | p99 ms | errors | server CPU-s | items per server CPU-s |",
        "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in result["rows"]:
        lines.append(
            f"| {r['family']} | `{r['route']}` | {r['label']} | {r['clients']} | "
            f"{_f(r.get('rps'), ',.1f')} | {_f(r['items_per_s'])} {r['unit']} | "
            f"{_f(r.get('p50_ms'), '.1f')} | {_f(r.get('p90_ms'), '.1f')} | "
            f"{_f(r.get('p99_ms'), '.1f')} | {_errors(r)} | "
            f"{_f(r.get('server_cpu_s'), '.1f')} | {_f(r.get('items_per_cpu_s'))} |"
        )
    lines += ["", LEGEND]
    return "\n".join(lines) + "\n"


def run(plan: Plan, out: Path) -> dict:
    """Measure in-process references, then every served route; write the report files."""
    t0, machine = time.monotonic(), describe()
    rows = in_process(plan)
    rows = served(plan) + rows
    smoke = "smoke, " if plan == SMOKE else ""
    result = {
        "machine": machine,
        "plan": f"{smoke}levels {list(plan.levels)}, {plan.seconds:g} s per level after "
        f"{plan.warmup:g} s warm-up; took {time.monotonic() - t0:.0f} s",
        "settings": asdict(plan),
        "rows": rows,
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / "families.json").write_text(json.dumps(result, indent=1) + "\n")
    (out / "families.md").write_text(markdown(result))
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--smoke", action="store_true", help="two levels, 1 s each, tiny counts")
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    args = ap.parse_args()
    print(markdown(run(SMOKE if args.smoke else Plan(), args.out)))


if __name__ == "__main__":
    main()
