"""Our shoppers GAN vs the ``ctgan`` package (Xu et al. 2019) on the same split, in one run.

    nice -n 5 python -m benchmarks.shoppers_ctgan [--quick] [--out DIR] [--set steps=3000]

Both train on the seeded train split of ``gan.shoppers.data.load_split`` (ours with
``gan.shoppers.train`` and its default ``TrainConfig`` unless ``--set`` overrides fields;
ctgan with its defaults, 300 epochs of batch 500, unless ``--ctgan-epochs``/``--ctgan-batch``),
one after the other in this process with the same torch thread count. Each one's training
wall time and process CPU time are recorded; each samples as many rows as the train split
has (seed ``--seed``); ``gan.shoppers.evaluate.evaluate_tables`` scores both. Writes
``shoppers.md`` (the table, issue 5 item 6's targets, the machine), ``shoppers.json``,
``shoppers_marginals.png`` and ``shoppers_correlation_difference.png`` into ``--out``
(default ``benchmarks/results``; only then is the association plot copied to
``docs/shoppers.png``).

``--quick`` is a smoke test (under about a minute): both train for a few steps on a
1,500-row subsample of the table, the evaluation runs in quick mode, and the output goes
to a temporary folder (or ``--out``); ``docs/`` is left alone.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from gan.shoppers.data import COLUMNS, load_shoppers, load_split
from gan.shoppers.evaluate import constraint_violations, efficacy, evaluate_tables, fidelity
from gan.shoppers.report import plot_correlation_difference, plot_marginals

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO / "benchmarks" / "results"
QUICK_ROWS = 1500
QUICK_OURS = {"steps": 10, "batch_size": 100, "checkpoint_every": 10, "sample_every": 10,
              "log_every": 5}  # fmt: skip


def machine() -> dict[str, Any]:
    """CPU model, core counts and load: the conditions the wall times were measured under."""
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": model,
        "cpu_count": os.cpu_count(),
        "sched_getaffinity": len(os.sched_getaffinity(0)),
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "torch": torch.__version__,
    }


def _parse_overrides(pairs: list[str]) -> dict[str, Any]:
    from gan.shoppers import TrainConfig

    types = {f.name: f.type for f in dataclasses.fields(TrainConfig)}
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or key not in types:
            raise ValueError(
                f"--set {pair!r}: expected FIELD=VALUE with FIELD one of {sorted(types)}"
            )
        out[key] = types[key](value)
    return out


def _timed(fn: Any) -> tuple[Any, float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    result = fn()
    return result, time.perf_counter() - wall, time.process_time() - cpu


def train_ours(overrides: dict[str, Any], work: Path, data_dir: Path | None) -> dict[str, Any]:
    """Train ``gan.shoppers`` with ``TrainConfig(**overrides)``; its checkpoint and timings."""
    from gan.shoppers import TrainConfig, train

    cfg = TrainConfig(**overrides)
    ckpt, wall, cpu = _timed(lambda: train(cfg, work / "ours", data_dir=data_dir, progress=False))
    budget = (f"{cfg.steps} steps of batch {cfg.batch_size} (pac {cfg.pac}), "
              f"{cfg.steps * cfg.batch_size:,} rows drawn")  # fmt: skip
    return {"checkpoint": str(ckpt), "config": cfg.to_dict(), "budget": budget,
            "train_wall_s": wall, "train_cpu_s": cpu}  # fmt: skip


def trained_ours(checkpoint: Path) -> dict[str, Any]:
    """An existing run of ours (e.g. the shipped default's): its checkpoint and recorded wall time
    (the checkpoint records no CPU time)."""
    from gan.shoppers import describe

    facts = describe(checkpoint)
    cfg = facts["config"]
    budget = (f"{facts['step']} steps of batch {cfg['batch_size']} (pac {cfg['pac']}), "
              f"{facts['step'] * cfg['batch_size']:,} rows drawn")  # fmt: skip
    return {"checkpoint": str(checkpoint), "config": cfg, "budget": budget,
            "train_wall_s": facts["elapsed_s"], "train_cpu_s": None}  # fmt: skip


def train_ctgan(train: pd.DataFrame, epochs: int, batch: int, seed: int) -> tuple[Any, dict]:
    """Fit ``ctgan.CTGAN`` (its default networks) on ``train``; the model and timings."""
    from ctgan import CTGAN

    discrete = [c for c, k in COLUMNS.items() if k in ("categorical", "boolean")]
    model = CTGAN(epochs=epochs, batch_size=batch, enable_gpu=False)
    model.set_random_state(seed)
    _, wall, cpu = _timed(lambda: model.fit(train, discrete_columns=discrete))
    steps = epochs * max(len(train) // batch, 1)  # ctgan drops an epoch's last partial batch
    budget = (f"{epochs} epochs of batch {batch} (pac 10), {steps} steps, "
              f"{steps * batch:,} rows drawn")  # fmt: skip
    return model, {"budget": budget, "train_wall_s": wall, "train_cpu_s": cpu,
                   "ctgan_version": _version("ctgan")}  # fmt: skip


def ctgan_run(
    train: pd.DataFrame, epochs: int, batch: int, seed: int, n: int, cache: Path | None
) -> tuple[pd.DataFrame, dict]:
    """ctgan's sampled table and training record; trained once per settings with ``cache``.

    ctgan's 300 default epochs take about half an hour on 2 cores and do not depend on our
    model, so ``--ctgan-cache DIR`` keeps its table (CSV) and record (JSON) between runs.
    """
    key = f"ctgan-e{epochs}-b{batch}-s{seed}-n{n}-rows{len(train)}"
    if cache is not None and (cache / f"{key}.json").is_file():
        info = json.loads((cache / f"{key}.json").read_text())
        table = pd.read_csv(cache / f"{key}.csv")
        for c, kind in COLUMNS.items():  # CSV round trip: restore the dataset's dtypes
            table[c] = table[c].astype(train[c].dtype if kind != "boolean" else bool)
        return table, {**info, "cached": str(cache / f"{key}.json")}
    model, info = train_ctgan(train, epochs, batch, seed)
    model.set_random_state(seed)
    table = model.sample(n)
    if cache is not None:
        cache.mkdir(parents=True, exist_ok=True)
        table.to_csv(cache / f"{key}.csv", index=False)
        (cache / f"{key}.json").write_text(json.dumps(info, indent=2) + "\n")
    return table, info


def _version(package: str) -> str:
    from importlib.metadata import version

    return version(package)


def _how_trained(tr: dict, m: dict) -> str:
    if tr["ours"]["train_cpu_s"] is None or "cached" in tr["ctgan"]:
        return (
            "Trained in separate runs (ours: its recorded checkpoint; ctgan: this script's cache), "
            "so the wall times are as recorded by each run, on this machine's shared cores."
        )
    return f"Both trained one after the other in one process, {m['torch_threads']} torch threads."


def _row(name: str, eff: dict, fid: dict, cons: dict, training: dict | None) -> str:
    q = fid["quality"]
    f1 = " | ".join(f"{v['f1']:.3f}" for v in eff["per_model"].values())
    cpu = training and training["train_cpu_s"]
    t = (f"{training['train_wall_s']:.0f} s ({f'{cpu:.0f} s' if cpu else 'n/a'} CPU)"
         if training else "-")  # fmt: skip
    return (
        f"| {name} | {eff['f1_mean']:.3f} | {eff['auc_mean']:.3f} | {f1} | "
        f"{q['score']:.3f} ({q['column_shapes']:.3f} / {q['column_pair_trends']:.3f}) | "
        f"{fid['detection']:.3f} | {fid['c2st']['accuracy']:.3f} | "
        f"{fid['association_difference']['mean']:.3f} | {cons['any']:.4f} | {t} |"
    )


def _target(label: str, value: float, op: str, threshold: float, detail: str) -> str:
    ok = value >= threshold if op == ">=" else value <= threshold
    return f"| {label} | {detail} | {value:.3f} {op} {threshold:g} | {'pass' if ok else 'MISS'} |"


def to_markdown(r: dict[str, Any]) -> str:
    """The comparison table, issue 5 item 6's targets and the machine, as Markdown."""
    real, sc, tr, m, s = r["real"], r["scores"], r["training"], r["machine"], r["settings"]
    models = list(real["efficacy"]["real"]["per_model"])
    lines = [
        "# Shoppers: our GAN vs the ctgan package" + (" (QUICK smoke run)" if s["quick"] else ""),
        "",
        f"Seeded stratified split (seed 0): {s['n_train']} train / {s['n_test']} test sessions; "
        f"{s['n_samples']} rows sampled from each generator (seed {s['seed']}). Efficacy: "
        "train on the row's table, test on the real test split (buyer = Revenue true). Fidelity "
        "against the real train split; for *real* it scores the real test split instead (a "
        "held-out sample of the same distribution). Budgets: ours "
        f"{tr['ours']['budget']}; ctgan {tr['ctgan']['budget']} (ctgan "
        f"{tr['ctgan']['ctgan_version']}). {_how_trained(tr, m)}",
        "",
        "| table | mean buyer F1 | mean AUC | "
        + " | ".join(f"F1 {x}" for x in models)
        + " | SDMetrics quality (shapes / trends) | detection (1 = indistinguishable) "
        "| RF C2ST acc. (0.5 = indist.) | assoc. diff. | constraint violations | train wall |",
        "| --- " * (9 + len(models)) + "|",
        _row("real train", real["efficacy"]["real"], real["fidelity"], real["constraints"], None),
    ]
    for name in ("ours", "ctgan"):
        lines.append(_row(name, sc[name]["efficacy"]["synthetic"], sc[name]["fidelity"],
                          sc[name]["constraints"], tr[name]))  # fmt: skip
    f1 = {k: sc[k]["efficacy"]["synthetic"]["f1_mean"] for k in sc}
    qual = {k: sc[k]["fidelity"]["quality"]["score"] for k in sc}
    wall = {k: tr[k]["train_wall_s"] for k in tr}
    real_f1 = real["efficacy"]["real"]["f1_mean"]
    lines += [
        "", "## Targets (issue 5 item 6)", "",
        "| target | measured | ratio vs threshold | result |", "| --- | --- | --- | --- |",
        _target("mean buyer F1 from ours >= 0.9 x from real", f1["ours"] / real_f1, ">=", 0.9,
                f"{f1['ours']:.3f} vs {real_f1:.3f}"),
        _target("mean buyer F1 from ours >= from ctgan", f1["ours"] / f1["ctgan"], ">=", 1.0,
                f"{f1['ours']:.3f} vs {f1['ctgan']:.3f}"),
        _target("SDMetrics quality of ours >= of ctgan", qual["ours"] / qual["ctgan"], ">=", 1.0,
                f"{qual['ours']:.3f} vs {qual['ctgan']:.3f}"),
        _target("training wall time of ours <= of ctgan", wall["ours"] / wall["ctgan"], "<=", 1.0,
                f"{wall['ours']:.0f} s vs {wall['ctgan']:.0f} s"),
        "", f"For reference, ctgan's F1 ratio to real is {f1['ctgan'] / real_f1:.3f}. "
        "Efficacy numbers come from one sample seed and one model seed; differences of a "
        "few hundredths in F1 are within their noise.",
        "", "## Machine", "",
        f"{m['cpu']}; os.cpu_count() {m['cpu_count']}, "
        f"os.sched_getaffinity {m['sched_getaffinity']}"
        f"; load average (1/5/15 min) at start {', '.join(f'{x:.2f}' for x in m['loadavg_start'])}"
        f", at end {', '.join(f'{x:.2f}' for x in m['loadavg_end'])}; Python {m['python']}, "
        f"torch {m['torch']}. The machine was shared: wall times are noisy, CPU times and the "
        "ratio of the two runs (measured back to back) are the fairer comparison.",
        "", "Plots: `shoppers_marginals.png` (real train vs both generators, per column) and "
        "`shoppers_correlation_difference.png` (|association(real) - association(generated)|).",
    ]  # fmt: skip
    return "\n".join(lines) + "\n"


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Train both, sample both, score both (and the real references); the result dict."""
    work = Path(tempfile.mkdtemp(prefix="shoppers_ctgan_"))  # checkpoints; removed at the end
    try:
        return _run(args, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _run(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    out = Path(args.out)
    overrides = {**(QUICK_OURS if args.quick else {}), **_parse_overrides(args.set)}
    data_dir = args.data_dir
    if args.quick:  # both trainers read the same small table: a subsample of the CSV
        small = load_shoppers(data_dir).sample(n=QUICK_ROWS, random_state=args.seed)
        small.to_csv(work / "online_shoppers_intention.csv", index=False)
        data_dir = work
    train, test = load_split(data_dir, seed=0)
    load_start = os.getloadavg()
    say = print if not args.quiet else (lambda *_: None)
    say(f"training ours ({overrides or 'defaults'}) ...")
    if args.ours_checkpoint:
        ours = trained_ours(args.ours_checkpoint)
    else:
        ours = train_ours(overrides, work, data_dir)
    say(f"  {ours['train_wall_s']:.0f} s wall; training ctgan ...")
    epochs, batch = (1, 100) if args.quick else (args.ctgan_epochs, args.ctgan_batch)
    n = args.n_samples or len(train)
    ctgan_table, ctgan_info = ctgan_run(train, epochs, batch, args.seed, n, args.ctgan_cache)
    say(f"  {ctgan_info['train_wall_s']:.0f} s wall; sampling and evaluating ...")
    from gan.shoppers import sample_frame

    tables = {"ours": sample_frame(ours["checkpoint"], n, args.seed), "ctgan": ctgan_table}
    real = {  # the real train split's own row: what the generators should approach
        "efficacy": efficacy(train, train, test, seed=args.seed, quick=args.quick),
        "fidelity": fidelity(test, train, seed=args.seed, quick=args.quick),
        "constraints": constraint_violations(train, train),
    }
    base = real["efficacy"]["real"]  # fitted once, shared by both rows
    scores = {k: evaluate_tables(t, train, test, seed=args.seed, quick=args.quick, baseline=base)
              for k, t in tables.items()}  # fmt: skip
    result = {
        "machine": {**machine(), "loadavg_start": load_start, "loadavg_end": os.getloadavg()},
        "settings": {
            "quick": args.quick,
            "seed": args.seed,
            "n_samples": n,
            "n_train": len(train),
            "n_test": len(test),
        },  # fmt: skip
        "training": {"ours": ours, "ctgan": ctgan_info},
        "real": real,
        "scores": scores,
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / "shoppers.json").write_text(json.dumps(result, indent=2, allow_nan=False) + "\n")
    (out / "shoppers.md").write_text(to_markdown(result))
    plot_marginals({"real train": train, **tables}, out / "shoppers_marginals.png")
    plot_correlation_difference(train, tables, out / "shoppers_correlation_difference.png")
    if not args.quick and out.resolve() == DEFAULT_OUT:  # only the real run sets the picture
        (REPO / "docs").mkdir(exist_ok=True)
        # The association heat maps: one glance shows which generator keeps the dependencies.
        shutil.copyfile(out / "shoppers_correlation_difference.png", REPO / "docs" / "shoppers.png")
    say(f"wrote {out / 'shoppers.md'}")
    return result


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="tiny budgets: a smoke test")
    p.add_argument("--out", type=Path, help="default: benchmarks/results (a temp dir if --quick)")
    p.add_argument("--data-dir", type=Path, help="the shoppers CSV or its folder")
    p.add_argument("--seed", type=int, default=0, help="seed of ctgan, sampling and scores")
    p.add_argument("--n-samples", type=int, help="rows sampled from each (default: train size)")
    p.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                   help="override a field of our TrainConfig (repeatable)")  # fmt: skip
    p.add_argument("--ctgan-epochs", type=int, default=300)
    p.add_argument("--ctgan-batch", type=int, default=500)
    p.add_argument(
        "--ours-checkpoint",
        type=Path,
        help="score this run of ours instead of training one (its recorded wall time)",
    )
    p.add_argument("--ctgan-cache", type=Path, help="keep/reuse ctgan's samples here (runs/...)")
    p.add_argument("--quiet", action="store_true")
    args = p.parse_args(argv)
    if args.out is None:
        args.out = Path(tempfile.mkdtemp(prefix="shoppers_quick_")) if args.quick else DEFAULT_OUT
    if args.n_samples is not None and args.n_samples < 10:
        p.error("--n-samples must be >= 10")
    run(args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
