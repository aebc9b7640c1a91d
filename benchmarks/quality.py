"""Generator quality and counterfeit detection, ours vs the textbook DCGAN, in one run.

    nice -n 19 python -m benchmarks.quality --checkpoint runs/products/checkpoint.pt \\
        --snapshots runs/quality/snaps/*.pt --out models/products/quality

Phases, each skipped when its artifact already exists (``--force PHASE`` redoes it):

1. ``classifier``: train the feature extractor into ``models/products/classifier.npz``.
2. ``baseline``: train ``gan.products.baseline`` (pytorch/examples DCGAN recipe) for the
   wall time our checkpoint's run took (``describe(...)["elapsed_s"]``), into
   ``WORK/baseline/checkpoint.pt``.
3. ``detector``: fine-tune our discriminator on real train images vs fakes from our
   checkpoint and ``--snapshots`` (never the baseline), into ``WORK/detector/checkpoint.pt``:
   our checkpoint with the discriminator replaced, ready for ``ecomgan export``.
4. ``evaluate``: ``gan.products.report.run_evaluation`` on {ours: detector checkpoint,
   dcgan-baseline}, with the adversarial discriminator scored beside the fine-tuned one;
   writes ``report.{json,md}`` and PNGs into ``--out`` and the phases' wall times into
   ``report.json["benchmark"]``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from gan.common import sha256_file
from gan.products import describe
from gan.products.baseline import BaselineConfig, train_baseline
from gan.products.classifier import ClassifierConfig, save_classifier, train_classifier
from gan.products.detector import DetectorConfig, finetune_detector, save_detector_checkpoint
from gan.products.evaluate import DEFAULT_CLASSIFIER
from gan.products.report import run_evaluation

PHASES = ("classifier", "baseline", "detector", "evaluate")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--checkpoint", type=Path, default=Path("runs/products/checkpoint.pt"))
    p.add_argument(
        "--snapshots",
        type=Path,
        nargs="*",
        default=[],
        help="extra products checkpoints whose fakes train the detector",
    )
    p.add_argument("--work", type=Path, default=Path("runs/quality"))
    p.add_argument("--out", type=Path, default=Path("models/products/quality"))
    p.add_argument("--data-dir", type=Path)
    p.add_argument("--classifier", type=Path, default=DEFAULT_CLASSIFIER)
    p.add_argument("--samples", type=int, default=10_000, help="fakes per generator")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--device", default="cpu", help="torch device for classifier/detector")
    p.add_argument("--detector-steps", type=int, default=DetectorConfig.steps)
    p.add_argument("--detector-batch", type=int, default=DetectorConfig.batch_size)
    p.add_argument("--detector-lr", type=float, default=DetectorConfig.lr)
    p.add_argument("--detector-seed", type=int, default=0)
    p.add_argument(
        "--detector-init",
        type=Path,
        help="continue from this discriminator state_dict (torch.save'd)",
    )
    p.add_argument("--only", choices=PHASES, nargs="*", help="run just these phases")
    p.add_argument("--force", choices=PHASES, nargs="*", default=[], help="redo these phases")
    args = p.parse_args(argv)  # fmt: skip
    phases = args.only or PHASES
    times: dict[str, float] = {}
    baseline_ckpt = args.work / "baseline" / "checkpoint.pt"
    detector_ckpt = args.work / "detector" / "checkpoint.pt"

    def todo(phase: str, artifact: Path) -> bool:
        return phase in phases and (phase in args.force or not artifact.exists())

    if todo("classifier", args.classifier):
        t = time.perf_counter()
        model, metrics = train_classifier(ClassifierConfig(), args.data_dir, device=args.device)
        save_classifier(model, args.classifier, metrics)
        times["classifier_s"] = time.perf_counter() - t
        print(f"classifier: test accuracy {metrics['test_accuracy']:.4f}", flush=True)

    ours = describe(args.checkpoint)
    if todo("baseline", baseline_ckpt):
        t = time.perf_counter()
        train_baseline(BaselineConfig(), baseline_ckpt.parent, time_budget_s=ours["elapsed_s"],
                       data_dir=args.data_dir)  # fmt: skip
        times["baseline_s"] = time.perf_counter() - t

    if todo("detector", detector_ckpt):
        t = time.perf_counter()
        cfg = DetectorConfig(steps=args.detector_steps, batch_size=args.detector_batch,
                             lr=args.detector_lr, seed=args.detector_seed)  # fmt: skip
        init = previous = None
        if args.detector_init:
            init = torch.load(args.detector_init, map_location="cpu", weights_only=True)
            info_file = args.detector_init.with_suffix(".json")
            previous = json.loads(info_file.read_text()) if info_file.exists() else None
        by_hash = {sha256_file(c): c for c in [*args.snapshots, args.checkpoint]}
        gens = list(by_hash.values())  # the same weights twice would double their share
        disc, info = finetune_detector(args.checkpoint, gens, cfg, data_dir=args.data_dir,
                                       device=args.device, init=init)  # fmt: skip
        if previous is not None:
            info["continued_from"] = previous
        save_detector_checkpoint(args.checkpoint, disc, detector_ckpt, info)
        times["detector_s"] = time.perf_counter() - t

    if "evaluate" in phases:
        t = time.perf_counter()
        report, gates = run_evaluation(
            {"ours": detector_ckpt, "dcgan-baseline": baseline_ckpt},
            args.out,
            classifier=args.classifier,
            extra_detectors={"adversarial discriminator (before fine-tuning)": args.checkpoint},
            data_dir=args.data_dir,
            n_samples=args.samples,
            seed=args.seed,
        )
        times["evaluate_s"] = time.perf_counter() - t
        report_file = args.out / "report.json"
        full = json.loads(report_file.read_text())
        full["benchmark"] = {"phase_seconds": {k: round(v, 1) for k, v in times.items()},
                             "torch_threads": torch.get_num_threads()}  # fmt: skip
        report_file.write_text(json.dumps(full, indent=2) + "\n")
        print((args.out / "report.md").read_text())
        print("gates:", "PASS" if gates["passed"] else f"FAIL {gates['failures']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
