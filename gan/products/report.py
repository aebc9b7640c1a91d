"""Write an evaluation report (``gan.products.evaluate``) as JSON, Markdown and PNGs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from ecomgan.images import grid, to_uint8
from gan.common import atomic_write
from gan.products.data import CATEGORIES

# (label, getter, format): the rows of the side-by-side table.
_ROWS: list[tuple[str, Any, str]] = [
    ("FID vs test (lower is better)", lambda e: e["fid"], "{:.2f}"),
    ("intra-class FID, mean of 10", lambda e: e["fid_per_class_mean"], "{:.2f}"),
    ("precision, k=3 (higher)", lambda e: e["precision"], "{:.3f}"),
    ("recall, k=3 (higher)", lambda e: e["recall"], "{:.3f}"),
    ("class consistency (higher)", lambda e: e["class_consistency"], "{:.3f}"),
    ("C2ST accuracy (0.5 = indistinguishable)", lambda e: e["c2st"]["accuracy"], "{:.3f}"),
    ("NN-distance ratio, features (~1 healthy, <<1 copying)",
     lambda e: e["memorisation_features"]["ratio_median"], "{:.2f}"),
    ("NN-distance ratio, pixels", lambda e: e["memorisation_pixels"]["ratio_median"], "{:.2f}"),
    ("closer to train than 99% of test, features",
     lambda e: e["memorisation_features"]["flagged_rate"], "{:.3f}"),
    ("near copies of train images, pixels",
     lambda e: e["memorisation_pixels"]["near_copies"], "{}"),
]  # fmt: skip


def _fmt(fmt: str, getter: Any, entry: dict[str, Any]) -> str:
    try:
        return fmt.format(getter(entry))
    except (KeyError, TypeError):
        return "-"


def _num(x: float) -> str:
    return f"{x:.0f}" if float(x).is_integer() else f"{x:.4g}"


def _training(entry: dict[str, Any]) -> str:
    t = entry.get("training") or {}
    if "step" not in t:
        return "-"
    return f"{t['step']} steps, {t['elapsed_s'] / 60:.1f} min"


def to_markdown(report: dict[str, Any], gates: dict[str, Any] | None = None) -> str:
    """The report's tables as Markdown."""
    gens = report["generators"]
    names = list(gens)
    s = report["settings"]
    lines = [
        "# Generator quality (products)",
        "",
        f"Features: the project's Fashion-MNIST classifier ({report['classifier']['feature_dim']}-d"
        f" penultimate layer, test accuracy {report['classifier']['test_accuracy']:.4f}). "
        f"{s['n_samples']} fakes per generator (balanced labels, seed {s['seed']}, rounded to "
        f"8-bit pixels as served) vs {s['n_test']} test images. The *real* column scores "
        "train images (same label counts) as if they were fakes: the best a generator can do. "
        "Class consistency for *real* is the classifier's test accuracy.",
        "",
        "| metric | real (train vs test) | " + " | ".join(names) + " |",
        "| --- | --- | " + " | ".join("---" for _ in names) + " |",
    ]
    for label, get, fmt in _ROWS:
        cells = [_fmt(fmt, get, report["real"])] + [_fmt(fmt, get, gens[n]) for n in names]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines.append("| training | - | " + " | ".join(_training(gens[n]) for n in names) + " |")
    lines += ["", "## Per category: intra-class FID / class consistency / recall", "",
              "| category | real | " + " | ".join(names) + " |",
              "| --- | --- | " + " | ".join("---" for _ in names) + " |"]  # fmt: skip
    for c in CATEGORIES:
        cells = [f"{e['fid_per_class'][c]:.2f} / {e['class_consistency_per_class'][c]:.3f} / "
                 f"{e.get('recall_per_class', {}).get(c, float('nan')):.3f}"
                 for e in [report["real"], *(gens[n] for n in names)]]  # fmt: skip
        lines.append(f"| {c} | " + " | ".join(cells) + " |")
    det = report.get("detector")
    if det:
        cal = det["calibration"]
        where = "/".join(Path(det["checkpoint"]).parts[-2:])
        lines += [
            "", "## Detector", "",
            f"Discriminator of `{where}` as a detector. Platt scaling "
            f"and the threshold (target FPR {cal['target_fpr']}) are fit on half the test "
            f"images vs half the *{report['subject']}* fakes; every row is measured on the "
            "other halves (held-out reals, fakes never used for calibration).", "",
            "| fakes from | AUROC | AP | TPR at 1% FPR | TPR at threshold | FPR at threshold |",
            "| --- | --- | --- | --- | --- | --- |",
        ]  # fmt: skip
        for name, r in det["against"].items():
            lines.append(
                f"| {name} | {r['auroc']:.4f} | {r['average_precision']:.4f} | "
                f"{r['tpr_at_1pct_fpr']:.3f} | {r['tpr_at_threshold']:.3f} | "
                f"{r['fpr_at_threshold']:.3f} |"
            )
    for other, d in (report.get("other_detectors") or {}).items():
        lines += [
            "",
            f"For comparison, *{other}* (calibrated the same way):",
            "",
            "| fakes from | AUROC | AP | TPR at 1% FPR |",
            "| --- | --- | --- | --- |",
        ]
        lines += [f"| {n} | {r['auroc']:.4f} | {r['average_precision']:.4f} | "
                  f"{r['tpr_at_1pct_fpr']:.3f} |" for n, r in d["against"].items()]  # fmt: skip
    if gates:
        verdict = "PASS" if gates["passed"] else "FAIL"
        lines += ["", f"## Quality gates: {verdict}", "", "| gate | value | threshold | ok |",
                  "| --- | --- | --- | --- |"]  # fmt: skip
        for g in gates["results"]:
            value = "-" if g["value"] is None else _num(g["value"])
            lines.append(f"| {g['gate']} | {value} | {g['op']} {_num(g['threshold'])} | "
                         f"{'yes' if g['ok'] else 'NO'} |")  # fmt: skip
    return "\n".join(lines) + "\n"


def _plots(arrays: dict[str, np.ndarray], out: Path) -> list[Path]:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:  # plots are optional; the tables are not
        return []
    from gan.metrics import roc_curve

    written = []
    nn_keys = sorted({k.split("/")[1] for k in arrays if k.startswith("nn/")})
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.2), dpi=80)
    for ax, space in zip(axes, ("features", "pixels"), strict=True):
        for name in nn_keys:
            d = arrays.get(f"nn/{name}/{space}")
            if d is not None:
                label = {"real": "test images", "train": "train subset (real)"}.get(name, name)
                ax.hist(d, bins=60, histtype="step", density=True, label=label)
        ax.set_title(f"distance to nearest training image ({space})")
        ax.legend(fontsize=8)
    fig.tight_layout()
    written.append(out / "nn_distances.png")
    fig.savefig(written[-1])
    plt.close(fig)
    if "scores/real" in arrays:
        fig, ax = plt.subplots(figsize=(4.5, 4), dpi=80)
        for key in arrays:
            if key.startswith("scores/") and key != "scores/real":
                fpr, tpr = roc_curve(arrays["scores/real"], arrays[key])
                ax.plot(np.maximum(fpr, 1e-4), tpr, label=key.split("/", 1)[1])
        ax.axvline(0.01, color="grey", lw=0.8, ls="--")
        ax.set(xscale="log", xlim=(1e-4, 1), xlabel="FPR on real test images", ylabel="TPR",
               title="detector ROC (held-out halves)")  # fmt: skip
        ax.legend(fontsize=8)
        fig.tight_layout()
        written.append(out / "detector_roc.png")
        fig.savefig(written[-1])
        plt.close(fig)
    return written


def write_report(
    report: dict[str, Any],
    arrays: dict[str, np.ndarray],
    out_dir: Path,
    gates: dict[str, Any] | None = None,
) -> list[Path]:
    """Write ``report.json``, ``report.md``, ``samples_<name>.png`` (one row per category),
    ``nn_distances.png`` and ``detector_roc.png`` into ``out_dir``.

    Returns:
        The files written.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    full = {**report, "gates": gates} if gates else report
    with atomic_write(out / "report.json") as f:
        f.write((json.dumps(full, indent=2, allow_nan=False) + "\n").encode())
    with atomic_write(out / "report.md") as f:
        f.write(to_markdown(report, gates).encode())
    written = [out / "report.json", out / "report.md"]
    for key, images in arrays.items():
        if key.startswith("samples/"):
            path = out / f"samples_{key.split('/', 1)[1]}.png"
            grid(to_uint8(images), nrow=10).save(path)
            written.append(path)
    return written + _plots(arrays, out)


def run_evaluation(
    generators: dict[str, Path], out_dir: Path, **kwargs: Any
) -> tuple[dict[str, Any], dict[str, Any]]:
    """``evaluate_generators`` + quality gates (reported, never enforced) + ``write_report``.

    This is what ``ecomgan evaluate --family products`` runs.

    Args:
        generators: Name -> checkpoint or ONNX file; the first is the subject.
        out_dir: Receives the report files.
        **kwargs: Passed to ``gan.products.evaluate.evaluate_generators``.

    Returns:
        ``(report, gates)``: the report dict and ``ecomgan.gates.enforce``'s verdict.
    """
    from ecomgan.gates import enforce
    from gan.products.evaluate import evaluate_generators

    report, arrays = evaluate_generators(generators, **kwargs)
    gates = enforce(report, override=True)
    write_report(report, arrays, out_dir, gates)
    return report, gates
