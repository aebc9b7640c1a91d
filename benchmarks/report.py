"""Markdown tables, the issue-7 targets and PNG plots of one `benchmarks.run` result."""

from __future__ import annotations

from pathlib import Path

OURS, OURS_OFF = "ecomgan", "ecomgan, batching off"
OURS_2W = "ecomgan, 2 entry workers"
FAST_LANE_OFF = "ecomgan, fast lane off"
PEER, KSERVE = "Starlette + ORT", "KServe ModelServer"
PATH_NAMES = {
    "json": "JSON API",
    "json-b64": "JSON API, base64 pixels",
    "oip-http": "OIP HTTP binary",
    "oip-json": "OIP HTTP JSON",
    "grpc": "OIP gRPC",
}


def _f(x, digits: int = 0) -> str:
    return "-" if x is None or x != x else f"{x:,.{digits}f}"


def ceiling_best(ceiling: list[dict], provider_device: str) -> dict[str, dict]:
    """The generator's ORT rows with the most images/s and the most images per CPU-second."""
    rows = [
        r
        for r in ceiling
        if r["model"] == "generator"
        and r["runtime"] == "onnxruntime"
        and r["device"] == provider_device
    ]
    return {
        "rate": max(rows, key=lambda r: r["images_per_s"]),
        "cpu": max(rows, key=lambda r: r["images_per_cpu_s"]),
    }


def _row(served: list[dict], server: str, path: str, clients: int, batch: int = 1):
    for r in served:
        if (r["server"], r["path"], r["clients"], r["batch"]) == (server, path, clients, batch):
            return r
    return None


def targets(result: dict) -> list[tuple[str, str, str, str]]:
    """(target, measured, ratio, verdict) for each target of issue 7 item 4."""
    served, ceiling = result["served"], result["ceiling"]
    best = ceiling_best(ceiling, result["ort_device"])
    grpc64 = _row(served, OURS, "grpc", 64)
    out = []

    def add(name: str, measured: str, ratio: float | None, ok: bool | None) -> None:
        verdict = "not measured" if ok is None else ("pass" if ok else "miss")
        out.append((name, measured, "-" if ratio is None else f"{ratio:.2f}", verdict))

    peers64 = [r for r in served if not r["server"].startswith(OURS) and r["clients"] == 64]
    if grpc64 and peers64:
        peer = max(peers64, key=lambda r: r["rps"])
        ratio = grpc64["rps"] / peer["rps"]
        ok = ratio >= 2 and grpc64["p99_ms"] <= peer["p99_ms"]
        add(
            "OIP gRPC @64 clients >= 2x the better peer, p99 <= its p99",
            f"{grpc64['rps']:,.0f} req/s, p99 {grpc64['p99_ms']:.0f} ms vs {peer['server']} "
            f"{PATH_NAMES[peer['path']]} {peer['rps']:,.0f} req/s, p99 {peer['p99_ms']:.0f} ms",
            ratio,
            ok,
        )
    else:
        add("OIP gRPC @64 clients >= 2x the better peer, p99 <= its p99", "-", None, None)
    ipc = grpc64 and grpc64["images_per_cpu_s"]
    ceil_ipc = best["cpu"]["images_per_cpu_s"]
    add(
        "served images per server CPU-s (gRPC @64) >= 0.5x in-process ceiling",
        f"{_f(ipc)} vs {ceil_ipc:,.0f} (ORT batch {best['cpu']['batch']})" if ipc else "-",
        ipc / ceil_ipc if ipc else None,
        ipc / ceil_ipc >= 0.5 if ipc else None,
    )
    big = next((r for r in served if r["server"] == OURS and r["batch"] > 1), None)
    ceil_rate = best["rate"]["images_per_s"]
    add(
        f"{big['batch'] if big else 64}-image requests @{big['clients'] if big else 4} clients "
        "(gRPC) >= 0.8x in-process images/s",
        f"{big['images_per_s']:,.0f} vs {ceil_rate:,.0f} images/s (ORT batch "
        f"{best['rate']['batch']})"
        if big
        else "-",
        big["images_per_s"] / ceil_rate if big else None,
        big["images_per_s"] / ceil_rate >= 0.8 if big else None,
    )
    off = next((r for r in served if r["server"] == OURS_OFF), None)
    on = off and _row(served, OURS, "grpc", off["clients"])
    errors = sum(r["errors"] for r in served if r["server"] in (OURS, OURS_OFF))
    add(
        f"batching on >= 5x off (gRPC @{off['clients'] if off else 64}), 0 errors everywhere",
        f"{on['rps']:,.0f} vs {off['rps']:,.0f} req/s; {errors} errors" if on else "-",
        on["rps"] / off["rps"] if on and off["rps"] else None,
        (on["rps"] >= 5 * off["rps"] and errors == 0) if on else None,
    )
    for path in ("grpc", "oip-http", "json"):
        r = _row(served, OURS, path, 16)
        add(
            f"p99 @16 clients <= 50 ms ({PATH_NAMES[path]})",
            f"{r['p99_ms']:.1f} ms" if r else "-",
            r["p99_ms"] / 50 if r else None,
            r["p99_ms"] <= 50 if r else None,
        )
    for model in ("generator", "discriminator"):
        at64 = [r for r in ceiling if r["model"] == model and r["batch"] == 64]
        ort_row = next(
            (
                r
                for r in at64
                if r["runtime"] == "onnxruntime" and r["device"] == result["ort_device"]
            ),
            None,
        )
        pt = next((r for r in at64 if r["runtime"] == "pytorch eager"), None)
        ratio = ort_row["images_per_s"] / pt["images_per_s"] if ort_row and pt else None
        add(
            f"ONNX Runtime >= 1.5x PyTorch eager @batch 64 ({model})",
            f"{ort_row['images_per_s']:,.0f} vs {pt['images_per_s']:,.0f} images/s"
            if ratio
            else "-",
            ratio,
            ratio >= 1.5 if ratio else None,
        )
    return out


def targets_16(result: dict) -> list[tuple[str, str, str, str]]:
    """(target, measured, ratio, verdict) for each target of issue 16 (serving speed, round 2).

    Ratios are ours over the peer's throughput; a pass also needs our p99 at or below theirs.
    """
    served, ceiling = result["served"], result["ceiling"]
    out = []

    def versus(name: str, ours: dict | None, peer: dict | None, factor: float = 1.0) -> None:
        if not ours or not peer:
            out.append((name, "-", "-", "not measured"))
            return
        ratio = ours["rps"] / peer["rps"]
        ok = ratio >= factor and ours["p99_ms"] <= peer["p99_ms"]
        measured = (
            f"{ours['rps']:,.0f} req/s, p99 {ours['p99_ms']:.0f} ms vs {peer['rps']:,.0f}, "
            f"p99 {peer['p99_ms']:.0f} ms"
        )
        out.append((name, measured, f"{ratio:.2f}", "pass" if ok else "miss"))

    for server in (OURS, OURS_2W):
        tag = "" if server == OURS else " (2 entry workers)"
        for clients in (16, 64):
            for path, peer in (("json", PEER), ("json-b64", PEER), ("oip-http", PEER),
                               ("oip-http", KSERVE)):  # fmt: skip
                versus(
                    f"{PATH_NAMES[path]} @{clients} >= {peer}{tag}",
                    _row(served, server, path, clients),
                    _row(served, peer, path, clients),
                )
        versus(
            f"OIP gRPC @64 >= 2x {KSERVE}{tag}",
            _row(served, server, "grpc", 64),
            _row(served, KSERVE, "grpc", 64),
            factor=2.0,
        )
    best = ceiling_best(ceiling, result["ort_device"])
    ceil_ipc = best["cpu"]["images_per_cpu_s"]
    for path in SERVED_ORDER:
        r = _row(served, OURS, path, 64)
        ipc = r and r["images_per_cpu_s"]
        out.append((
            f"images per server CPU-s @64 >= 0.6x ceiling ({PATH_NAMES[path]})",
            f"{_f(ipc)} vs {ceil_ipc:,.0f}" if ipc else "-",
            f"{ipc / ceil_ipc:.2f}" if ipc else "-",
            ("pass" if ipc / ceil_ipc >= 0.6 else "miss") if ipc else "not measured",
        ))  # fmt: skip
    big = next((r for r in served if r["server"] == OURS and r["batch"] > 1), None)
    ceil_rate = best["rate"]["images_per_s"]
    out.append((
        f"{big['batch'] if big else 64}-image requests (gRPC) >= 0.85x ceiling images/s",
        f"{big['images_per_s']:,.0f} vs {ceil_rate:,.0f}" if big else "-",
        f"{big['images_per_s'] / ceil_rate:.2f}" if big else "-",
        ("pass" if big["images_per_s"] / ceil_rate >= 0.85 else "miss") if big else "not measured",
    ))  # fmt: skip
    for server in sorted({r["server"] for r in served if r["server"].startswith(OURS)}):
        rows = [r for r in served if r["server"] == server]
        errors = sum(r["errors"] for r in rows)
        where = "; ".join(
            f"{PATH_NAMES[r['path']]} @{r['clients']}: {r['errors']} "
            f"({', '.join(f'{k}: {v}' for k, v in r['error_kinds'].items())})"
            for r in rows if r["errors"]
        )  # fmt: skip
        out.append((f"zero errors at every level ({server})",
                    f"{errors} errors in {len(rows)} rows" + (f": {where}" if where else ""),
                    "-", "pass" if errors == 0 else "miss"))  # fmt: skip
    return out


SERVED_ORDER = ("json", "json-b64", "oip-http", "grpc")


def markdown(result: dict) -> str:
    """The whole report: header, ceiling, served paths, peers, targets."""
    lines = ["# ecomgan performance benchmark", ""]
    lines += [f"- **{k}**: {v}" for k, v in result["machine"].items()]
    lines += [f"- **run**: {result['plan']}", f"- **PyTorch weights**: {result['weights']}", ""]
    lines += [
        "## In-process ceiling (products models, one process, no server)",
        "",
        "| model | runtime | device | batch | images/s | images per CPU-s | ORT / PyTorch |",
        "|---|---|---|---:|---:|---:|---:|",
    ]
    ceiling = result["ceiling"]
    for r in ceiling:
        pt = next(
            (
                p
                for p in ceiling
                if p["runtime"] == "pytorch eager"
                and (p["model"], p["batch"], p["device"]) == (r["model"], r["batch"], r["device"])
            ),
            None,
        )
        ratio = (
            r["images_per_s"] / pt["images_per_s"] if pt and r["runtime"] != pt["runtime"] else None
        )
        lines.append(
            f"| {r['model']} | {r['runtime']} | {r['device']} | {r['batch']} | "
            f"{_f(r['images_per_s'])} | {_f(r['images_per_cpu_s'])} | {_f(ratio, 2)} |"
        )
    lines += [
        "",
        "## Served paths and peers (closed-loop clients on the same machine)",
        "",
        "| server | path | clients | images/req | req/s | images/s | p50 ms | p90 ms | p99 ms "
        "| errors | server CPU-s | images per server CPU-s | client CPU-s |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in result["served"]:
        kinds = ", ".join(f"{k}: {v}" for k, v in r["error_kinds"].items())
        lines.append(
            f"| {r['server']} | {PATH_NAMES[r['path']]} | {r['clients']} | {r['batch']} | "
            f"{_f(r['rps'])} | {_f(r['images_per_s'])} | {_f(r['p50_ms'], 1)} | "
            f"{_f(r['p90_ms'], 1)} | {_f(r['p99_ms'], 1)} | {r['errors']}"
            f"{f' ({kinds})' if kinds else ''} | {_f(r['server_cpu_s'], 1)} | "
            f"{_f(r['images_per_cpu_s'])} | {_f(r['client_cpu_s'], 1)} |"
        )
    lines += ["", *result.get("notes", []), "", "## Targets (issue 7, item 4)", ""]
    lines += ["| target | measured | ratio | result |", "|---|---|---:|---|"]
    lines += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in targets(result)]
    lines += ["", "## Targets (issue 16: serving speed, round 2)", ""]
    lines += ["| target | measured | ratio | result |", "|---|---|---:|---|"]
    lines += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in targets_16(result)]
    lines += ["", "Plots: `performance_throughput.png`, `performance_latency.png`, "]
    lines[-1] += "`performance_ceiling.png`."
    return "\n".join(lines) + "\n"


def plots(result: dict, out: Path) -> list[Path]:
    """Throughput and latency vs clients per (server, path); ceiling images/s vs batch."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series: dict[str, list[dict]] = {}
    for r in result["served"]:
        if r["batch"] == 1:
            series.setdefault(f"{r['server']} / {PATH_NAMES[r['path']]}", []).append(r)
    paths = []

    def line(ax, key: str, ylabel: str, log: bool) -> None:
        for label, rows in series.items():
            rows = sorted(rows, key=lambda r: r["clients"])
            style = "-o" if label.startswith(OURS + " /") else "--s"
            ax.plot([r["clients"] for r in rows], [r[key] for r in rows], style, label=label)
        ax.set_xscale("log", base=2)
        levels = sorted({r["clients"] for rows in series.values() for r in rows})
        ax.set_xticks(levels, [str(c) for c in levels])
        ax.set_xlabel("concurrent clients (1 image per request)")
        ax.set_ylabel(ylabel)
        if log:
            ax.set_yscale("log")
        ax.grid(True, alpha=0.3)

    fig, ax = plt.subplots(figsize=(9, 5.5))
    line(ax, "rps", "requests/s", False)
    ax.legend(fontsize=7)
    ax.set_title("Throughput vs clients")
    paths.append(out / "performance_throughput.png")
    fig.savefig(paths[-1], dpi=110, bbox_inches="tight")
    plt.close(fig)

    fig, axes = plt.subplots(1, 2, figsize=(13, 5.5))
    for ax, key in zip(axes, ("p50_ms", "p99_ms"), strict=True):
        line(ax, key, f"{key[:3]} latency (ms)", True)
        ax.set_title(f"{key[:3]} latency vs clients")
    axes[1].legend(fontsize=7)
    paths.append(out / "performance_latency.png")
    fig.savefig(paths[-1], dpi=110, bbox_inches="tight")
    plt.close(fig)

    fig, axes = plt.subplots(1, 2, figsize=(12, 5))
    for ax, model in zip(axes, ("generator", "discriminator"), strict=True):
        runs: dict[str, list[dict]] = {}
        for r in result["ceiling"]:
            if r["model"] == model:
                runs.setdefault(f"{r['runtime']} ({r['device']})", []).append(r)
        for label, rows in runs.items():
            ax.plot(
                [r["batch"] for r in rows], [r["images_per_s"] for r in rows], "-o", label=label
            )
        ax.set_xscale("log", base=2)
        sizes = sorted({r["batch"] for r in result["ceiling"]})
        ax.set_xticks(sizes, [str(b) for b in sizes])
        ax.set_xlabel("batch size")
        ax.set_ylabel("images/s")
        ax.set_title(f"In-process {model}")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    paths.append(out / "performance_ceiling.png")
    fig.savefig(paths[-1], dpi=110, bbox_inches="tight")
    plt.close(fig)
    return paths
