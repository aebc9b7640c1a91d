"""Where an entry worker's CPU goes per request, by path and component (issue 16, item 1).

Usage:
    python -m benchmarks.profile_paths [--seconds 8] [--clients 64] [--out benchmarks/results]

For each served path (JSON API, OIP HTTP binary, OIP gRPC), with the fast lane on and off, this
starts our bento, drives the path with closed-loop clients and samples the entry worker's stacks
with py-spy (`pip install py-spy`; it needs ptrace rights over the worker). Each sample goes to
the component of its innermost recognised frame: BentoML's per-request middleware, Starlette,
uvicorn, pydantic, JSON, our own request code, the model run, or the event loop's native code
(uvloop and gRPC's C core, which py-spy cannot see into). The server's CPU-seconds per request
turn the shares into microseconds. Writes `serving_profile.md` and `serving_profile.json`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import subprocess
import tempfile
from collections import Counter
from pathlib import Path

from benchmarks.loadgen import GEN, run_level
from benchmarks.machine import REPO, TreeCPU, describe
from benchmarks.server import bento, process_tree, registered_home

PATHS = ("json", "oip-http", "grpc")
# (component, substrings of a py-spy frame "function (file:line)"), innermost match wins; the
# order settles frames that match several (a BentoML frame inside starlette/ is BentoML's).
COMPONENTS = (
    ("model run (ONNX Runtime)", ("Session.run", "run_session")),
    ("BentoML per-request middleware", ("bentoml/_internal/server", "_bentoml_impl/server",
                                        "_bentoml_sdk/", "opentelemetry", "prometheus_client",
                                        "bentoml/_internal/context")),
    ("pydantic validation", ("pydantic",)),
    ("JSON encode/decode", ("json/", "orjson")),
    ("Starlette routing and responses", ("starlette/",)),
    ("uvicorn HTTP protocol", ("uvicorn/",)),
    ("our request code (serving/, ecomgan/)", ("serving/", "ecomgan/")),
    ("gRPC (Python side)", ("grpc/",)),
    ("asyncio (Python side)", ("asyncio/",)),
)  # fmt: skip
# A sample whose innermost Python frame is the loop's entry ran native code under it.
NATIVE = "event loop native code (uvloop, gRPC core)"


def classify(stack: list[str]) -> str:
    """The component of the innermost frame of `stack` (outermost first) that matches one."""
    if stack and stack[-1].startswith("Runner.run (asyncio/runners.py"):
        return NATIVE
    for frame in reversed(stack):
        for name, needles in COMPONENTS:
            if any(n in frame for n in needles):
                return name
    return "other"


def fold(raw: str) -> Counter:
    """Samples per component from py-spy's raw (collapsed stack) output."""
    shares: Counter = Counter()
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if stack and count.isdigit():
            shares[classify(stack.split(";"))] += int(count)
    return shares


def profile(path: str, env: dict[str, str], home: Path, seconds: float, clients: int) -> dict:
    """Drive `path` on a fresh bento while py-spy samples its entry worker."""
    with bento(home=home, env={"ECOMGAN_ACCESS_LOG": "off", **env}) as (url, grpc, server):
        workers = [pid for pid, args in process_tree(server.proc.pid) if "--worker-id" in args]
        kw = {"url": url, "grpc_target": grpc, "nz": _nz(url)}
        asyncio.run(run_level(path, clients, seconds=1.5, **kw))
        out = Path(tempfile.mkdtemp(prefix="ecomgan-pyspy-")) / "raw.txt"
        spy = subprocess.Popen(
            ["py-spy", "record", "-p", str(workers[0]), "-d", str(int(seconds)), "-r", "200",
             "-f", "raw", "-o", str(out), "--nonblocking"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        level = asyncio.run(
            run_level(path, clients, seconds=seconds, cpu=TreeCPU(server.proc.pid), **kw)
        )
        _, err = spy.communicate(timeout=60)
        if spy.returncode != 0 or not out.exists():
            raise RuntimeError(f"py-spy failed ({spy.returncode}): {err.strip()[-500:]}")
        shares = fold(out.read_text())
        shutil.rmtree(out.parent, ignore_errors=True)
    summary = level.summary()
    total = sum(shares.values()) or 1
    cpu_us = 1e6 * summary["server_cpu_s"] / max(1, summary["requests"])
    return {
        "path": path,
        "fast_lane": env.get("ECOMGAN_FAST_LANE", "on"),
        "rps": summary["rps"],
        "server_cpu_us_per_request": cpu_us,
        "shares": {k: v / total for k, v in shares.most_common()},
    }


def _nz(url: str) -> int:
    import httpx

    return int(httpx.get(f"{url}/v2/models/{GEN}", timeout=10).json()["inputs"][0]["shape"][1])


def markdown(machine: dict, rows: list[dict], seconds: float, clients: int) -> str:
    lines = ["# Where the entry worker's CPU goes, per path", ""]
    lines += [f"- **{k}**: {v}" for k, v in machine.items()]
    lines += [f"- **run**: {clients} closed-loop clients, py-spy at 200 Hz for {seconds:g} s "
              "per row, products generator, one image per request", ""]  # fmt: skip
    names = [name for name, _ in COMPONENTS] + [NATIVE, "other"]
    head = [f"{r['path']}, fast lane {r['fast_lane']}" for r in rows]
    lines += ["| component | " + " | ".join(head) + " |", "|---|" + "---:|" * len(rows)]
    for name in names:
        cells = []
        for r in rows:
            share = r["shares"].get(name, 0.0)
            cells.append(f"{100 * share:.0f}% ({share * r['server_cpu_us_per_request']:.0f} µs)")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines.append("| **server CPU per request** | " + " | ".join(
        f"**{r['server_cpu_us_per_request']:.0f} µs**" for r in rows) + " |")  # fmt: skip
    lines.append("| req/s during the profile | " + " | ".join(f"{r['rps']:,.0f}" for r in rows)
                 + " |")  # fmt: skip
    lines += ["", "Shares are of the worker's sampled (non-idle) thread time; the µs split the "
              "server's measured CPU per request (the whole process tree) by those shares. The "
              "model run's share is the batcher thread's wait on ONNX Runtime, whose intra-op "
              "threads py-spy does not sample."]  # fmt: skip
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=8.0)
    ap.add_argument("--clients", type=int, default=64)
    ap.add_argument("--paths", default=",".join(PATHS))
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    args = ap.parse_args()
    if shutil.which("py-spy") is None:
        raise SystemExit("py-spy is not installed: pip install py-spy")
    machine = describe()
    home = registered_home()
    rows = []
    try:
        for fast_lane in ("on", "off"):
            for path in args.paths.split(","):
                if fast_lane == "off" and path == "grpc":
                    continue  # gRPC never passes BentoML's HTTP stack
                env = {"ECOMGAN_FAST_LANE": fast_lane}
                rows.append(profile(path, env, home, args.seconds, args.clients))
                print(json.dumps(rows[-1]), flush=True)
    finally:
        shutil.rmtree(home, ignore_errors=True)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "serving_profile.json").write_text(json.dumps(rows, indent=1) + "\n")
    text = markdown(machine, rows, args.seconds, args.clients)
    (args.out / "serving_profile.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
