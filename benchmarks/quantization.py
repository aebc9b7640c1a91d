"""INT8 vs FP32 for the shipped products models: quality with the project's own metrics, and speed.

Usage: python -m benchmarks.quantization [--quick] [--models models/products] [--out FILE.md]

Each variant (``export.quantize``) is calibrated on data the evaluation never sees: training
images plus FP32-generator fakes for the discriminator, latents of their own seed for the
generator. It is then accepted or rejected by its quality rule:

- generator: FID against the Fashion-MNIST test split on the project classifier's features
  (Heusel et al. 2017) may rise by <= 5 % relative, class consistency drop by <= 1 point,
  with the same latents and labels for both files (``gan.products.evaluate``);
- discriminator: AUROC on all 10,000 real test images vs FP32-generator fakes may drop by
  <= 0.005; TPR/FPR at the manifest's stored threshold and the max logit change are reported.

Accepted variants are timed against FP32 with `serving.runtime.create_session`, in repeated
trials that alternate the sessions (rotating their order), so load from other processes hits
both alike; a speed-up is the median of the per-trial INT8/FP32 ratios. INT8 files go to
``runs/quantization/`` (git-ignored), never into ``models/``.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from ecomgan.seeding import latent  # noqa: E402
from export.quantize import (  # noqa: E402
    QuantizationError,
    QuantizeConfig,
    cpu_int8_features,
    quantize_onnx,
)
from gan.products.quantization import (  # noqa: E402
    EVAL_SEED,
    QUANTIZATION_RULES,
    discriminator_logits,
    quantization_inputs,
    quantization_quality,
)
from serving.runtime import cpu_quota, create_session  # noqa: E402

RESULTS = REPO / "benchmarks" / "results" / "quantization.md"
WORK = REPO / "runs" / "quantization"
BATCHES = (1, 64, 256)
CAL_SEED = 1000  # calibration latents, as export.pipeline.QUANTIZE_SEED (EVAL_SEED: evaluation)
SHIP_MIN_SPEEDUP = 1.10  # at batch 64 (the serving batch), and no slowdown (>= 0.95) at batch 1
VARIANTS: dict[str, tuple[str, QuantizeConfig]] = {
    "int8-qdq": ("static", QuantizeConfig()),
    "int8-qoperator": ("static", QuantizeConfig(quant_format="qoperator", activation_type="uint8")),
    "int8-dynamic": ("dynamic", QuantizeConfig()),
    "int8-qdq-8bit-weights": ("static", QuantizeConfig(reduce_range=False)),
}


@dataclass(frozen=True)
class Settings:
    """One run's sizes: ``--quick`` shrinks every one of them."""

    n_samples: int = 5000
    n_calibration: int = 512
    trials: int = 7
    seconds: float = 0.4


class Evaluation:
    """The products family's quantisation hooks (`gan.products.quantization`) bound to a folder."""

    def __init__(self, models: Path, data_dir: Path | None, n_samples: int) -> None:
        from gan.products.evaluate import open_generator

        self.models, self.data_dir, self.n_samples = models, data_dir, n_samples
        self.nz = open_generator(models / "generator.onnx").nz

    def quality(self, role: str, seed: int = EVAL_SEED) -> Any:
        """``path -> metrics`` of ``role`` (`quantization_quality`), for `quantize_onnx`."""
        return functools.partial(quantization_quality, self.models, role, data_dir=self.data_dir,
                                 n_samples=self.n_samples, seed=seed)  # fmt: skip

    def calibration(self, role: str, n: int) -> dict[str, np.ndarray]:
        """Calibration inputs disjoint from the evaluation data (`quantization_inputs`)."""
        return quantization_inputs(self.models, role, n, CAL_SEED, self.data_dir)

    def logits(self, path: Path) -> np.ndarray:
        """Logits of a discriminator file on the evaluation's real and fake images, joined."""
        real, fake = discriminator_logits(self.models, path, self.data_dir,
                                          n_samples=self.n_samples)  # fmt: skip
        return np.concatenate([real, fake])


def quantize_variants(ev: Evaluation, role: str, s: Settings) -> dict[str, dict[str, Any]]:
    """Quantise ``role`` every way in `VARIANTS`; each entry is a report (accepted or not)."""
    src = ev.models / f"{role}.onnx"
    cal = ev.calibration(role, s.n_calibration)
    quality, rule = ev.quality(role), QUANTIZATION_RULES[role]
    fp32_logits = ev.logits(src) if role == "discriminator" else None
    out = {}
    for name, (method, cfg) in VARIANTS.items():
        dst = WORK / f"{role}.{name}.onnx"
        dst.unlink(missing_ok=True)
        try:
            report = quantize_onnx(src, dst, cal, method=method, config=cfg, quality=quality,
                                   rule=rule)  # fmt: skip
            report["accepted"], report["path"] = True, str(dst)
        except QuantizationError as exc:
            report = {**exc.report, "accepted": False, "failures": exc.failures}
        if fp32_logits is not None and report["accepted"]:
            report["max_logit_diff"] = float(np.abs(ev.logits(dst) - fp32_logits).max())
        out[name] = report
        print(f"{role} {name}: {'accepted' if report['accepted'] else 'REJECTED'} "
              f"{report.get('quality', {}).get('int8') or report.get('failures')}")  # fmt: skip
    return out


def _feeds(role: str, n: int, nz: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 10, n).astype(np.int64)
    if role == "generator":
        return {"z": latent(n, nz, 0), "label": labels}
    return {"image": rng.uniform(-1, 1, (n, 1, 28, 28)).astype(np.float32), "label": labels}


def time_sessions(
    paths: dict[str, Path], role: str, nz: int, s: Settings
) -> dict[int, dict[str, Any]]:
    """Images/s per session and batch: medians of alternating trials, and paired speed-ups."""
    sessions = {name: create_session(p) for name, p in paths.items()}
    names = list(sessions)
    out: dict[int, dict[str, Any]] = {}
    for batch in BATCHES:
        feeds = _feeds(role, batch, nz)
        for sess in sessions.values():
            sess.run(None, feeds)
        rates: dict[str, list[float]] = {n: [] for n in names}
        for trial in range(s.trials):
            for name in names[trial % len(names) :] + names[: trial % len(names)]:
                count, t0 = 0, time.perf_counter()
                while (elapsed := time.perf_counter() - t0) < s.seconds:
                    sessions[name].run(None, feeds)
                    count += 1
                rates[name].append(count * batch / elapsed)
        out[batch] = {
            "median": {n: statistics.median(r) for n, r in rates.items()},
            "speedup": {
                n: statistics.median(a / b for a, b in zip(r, rates["fp32"], strict=True))
                for n, r in rates.items()
                if n != "fp32"
            },  # fmt: skip
        }
    return out


def verdict(variants: dict[str, dict[str, Any]], speed: dict[int, dict[str, Any]]) -> str:
    """Ship the fastest accepted variant if it clears `SHIP_MIN_SPEEDUP`, else keep FP32."""
    ok = [n for n, r in variants.items() if r["accepted"]]
    if not ok:
        return "keep FP32: no INT8 variant met the quality rule"
    best = max(ok, key=lambda n: speed[64]["speedup"][n])
    s64, s1 = speed[64]["speedup"][best], speed[1]["speedup"][best]
    # How much of each allowance the variant used: a rule met at 95 % is a thin margin.
    used = ", ".join(f"{q['metric']} worsened {q['worsening']:.4g} of {q['allowed']:.4g} allowed"
                     for q in variants[best]["quality"]["results"])  # fmt: skip
    if s64 >= SHIP_MIN_SPEEDUP and s1 >= 0.95:
        return f"ship INT8 ({best}): x{s64:.2f} at batch 64, x{s1:.2f} at batch 1; {used}"
    return (f"keep FP32: the fastest accepted variant ({best}) is x{s64:.2f} at batch 64 and "
            f"x{s1:.2f} at batch 1 (needs x{SHIP_MIN_SPEEDUP} and x0.95); {used}")  # fmt: skip


def machine() -> str:
    """CPU model, cores usable, int8 instruction sets, ONNX Runtime version."""
    import onnxruntime as ort

    model = next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text()
                  .splitlines() if ln.startswith("model name")), platform.processor())  # fmt: skip
    feats = ", ".join(f"{k} {'yes' if v else 'no'}" for k, v in cpu_int8_features().items())
    return (
        f"{model}; {os.cpu_count()} CPUs, quota {cpu_quota()} (ORT intra-op threads); {feats}; "
        f"onnxruntime {ort.__version__}; Python {platform.python_version()}"
    )


def _quality_rows(role: str, variants: dict[str, dict[str, Any]]) -> list[str]:
    fp32 = next((r["quality"]["fp32"] for r in variants.values() if "quality" in r), {})
    keys = ["fid", "class_consistency"] if role == "generator" else list(fp32)
    diff_name = "max pixel diff (held-out)" if role == "generator" else "max logit diff (eval)"
    rows = [f"| variant | accepted | {' | '.join(keys)} | rel. RMSE | {diff_name} | KB |",
            "|---" * (len(keys) + 5) + "|",
            f"| fp32 | - | {' | '.join(f'{fp32[k]:.4f}' for k in keys)} | - | - | - |"]  # fmt: skip
    for name, r in variants.items():
        q = r.get("quality", {}).get("int8", {})
        val = next(iter(r.get("validation", {}).values()), {})
        cells = [f"{q[k]:.4f}" if k in q else "-" for k in keys]
        # Discriminator: on the evaluation images (accepted variants only); generator: held out.
        diff = r.get("max_logit_diff") if role == "discriminator" else val.get("max_abs_diff")
        size = f"{r['size_bytes'] / 1024:.0f}" if "size_bytes" in r else "-"
        rows.append(f"| {name} | {'yes' if r['accepted'] else 'no: ' + '; '.join(r['failures'])} "
                    f"| {' | '.join(cells)} | {val.get('rel_rmse', float('nan')):.3f} "
                    f"| {'-' if diff is None else f'{diff:.3f}'} | {size} |")  # fmt: skip
    return rows


def markdown(results: dict[str, Any]) -> str:
    """The results file: machine, quality per variant, speed side by side, verdicts."""
    s = results["settings"]
    lines = [
        "# INT8 quantisation of the products models (ONNX Runtime, CPU)",
        "",
        f"`python -m benchmarks.quantization`, {time.strftime('%Y-%m-%d')}, "
        f"{results['seconds']} s. Machine: {results['machine']}. Load average (1/5/15 min) "
        f"{results['load_avg']['start']} at start, {results['load_avg']['end']} at end: "
        "the machine is shared, so compare only ratios from this one run.",
        "",
        f"Quality: {s['n_samples']} fakes per generator (balanced labels, latents seed "
        f"{EVAL_SEED}), all 10,000 Fashion-MNIST test images; calibration {s['n_calibration']} "
        f"rows disjoint from them. Speed: {s['trials']} alternating trials of {s['seconds']} s "
        "per session and batch, `serving.runtime.create_session`; speed-up = median of the "
        "per-trial INT8/FP32 ratios.",
        "",
        "Acceptance rule (raises in `export.quantize.quantize_onnx`): generator FID +<= 5 % "
        "relative and class consistency -<= 1 point; discriminator AUROC -<= 0.005; before "
        "that, every output's RMSE(INT8 - FP32) / std(FP32) <= 0.25 on held-out inputs. "
        f"FP32 generator with other latents (seed {EVAL_SEED + 1}): FID "
        f"{results['fid_fp32_other_seed']['fid']:.4f}, the sampling noise at this size.",
        "",
        "Variants (`export.quantize.QuantizeConfig`; ORT's quantisation guide): `int8-qdq` = "
        "static, QDQ, S8S8, per-channel, 7-bit weights (`reduce_range`); `int8-qoperator` = "
        "the same as QLinearConv/QGemm with U8S8 (S8S8 QOperator is slow on x86); "
        "`int8-dynamic` = weights only, ConvInteger; `int8-qdq-8bit-weights` = `int8-qdq` "
        "without `reduce_range`, which saturates ORT's VPMADDUBSW kernels on CPUs without "
        "VNNI. Max logit diff (eval): the largest |INT8 - FP32| logit over the evaluation "
        "images; static variants quantise the output too, so logits beyond the calibration "
        "range are clipped to its ends (which moves only extreme scores when the ends lie "
        "beyond the detector's threshold). FP32 sizes: "
        + ", ".join(
            f"{role} {next(iter(r['variants'].values()))['source']['size_bytes'] / 1024:,.0f} KB"
            for role, r in results["roles"].items()
        )
        + ".",
    ]
    for role, r in results["roles"].items():
        lines += ["", f"## {role}", "", *_quality_rows(role, r["variants"]), "",
                  "| batch | " + " | ".join(f"{n} img/s" for n in r["speed"][BATCHES[0]]["median"])
                  + " | " + " | ".join(f"{n} speed-up" for n in r["speed"][BATCHES[0]]["speedup"])
                  + " |"]  # fmt: skip
        ncols = len(r["speed"][BATCHES[0]]["median"]) + len(r["speed"][BATCHES[0]]["speedup"])
        lines.append("|---:" * (ncols + 1) + "|")
        for batch, row in r["speed"].items():
            lines.append(f"| {batch} | " + " | ".join(f"{v:,.0f}" for v in row["median"].values())
                         + " | " + " | ".join(f"x{v:.2f}" for v in row["speedup"].values())
                         + " |")  # fmt: skip
        lines += ["", f"**Verdict:** {r['verdict']}"]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small sizes (a smoke run, ~2 min)")
    ap.add_argument("--models", type=Path, default=REPO / "models" / "products")
    ap.add_argument("--data-dir", type=Path, default=None)
    ap.add_argument("--out", type=Path, default=None,
                    help=f"Markdown file (default {RESULTS.relative_to(REPO)}; with --quick "
                         f"{(WORK / 'quantization-quick.md').relative_to(REPO)})")  # fmt: skip
    args = ap.parse_args(argv)
    s = Settings(1000, 256, 3, 0.15) if args.quick else Settings()
    out = args.out or (WORK / "quantization-quick.md" if args.quick else RESULTS)
    WORK.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    load = os.getloadavg()
    ev = Evaluation(args.models, args.data_dir, s.n_samples)
    results: dict[str, Any] = {"machine": machine(), "settings": s.__dict__, "roles": {}}
    for role in ("generator", "discriminator"):
        variants = quantize_variants(ev, role, s)
        paths = {"fp32": args.models / f"{role}.onnx"}
        paths.update({n: Path(r["path"]) for n, r in variants.items() if r["accepted"]})
        speed = time_sessions(paths, role, ev.nz, s)
        results["roles"][role] = {"variants": variants, "speed": speed,
                                  "verdict": verdict(variants, speed)}  # fmt: skip
        print(f"{role}: {results['roles'][role]['verdict']}")
    # Sampling noise of FID at this size: FP32 with other latents, a yardstick for the 5 % rule.
    results["fid_fp32_other_seed"] = ev.quality("generator", EVAL_SEED + 1)(
        args.models / "generator.onnx"
    )
    results["load_avg"] = {"start": load, "end": os.getloadavg()}
    results["seconds"] = round(time.perf_counter() - t0, 1)
    (WORK / "report.json").write_text(json.dumps(results, indent=2, default=str) + "\n")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(markdown(results))
    print(f"wrote {out} ({results['seconds']} s)")


if __name__ == "__main__":
    main()
