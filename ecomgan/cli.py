"""`ecomgan`: train, export, register, sample and serve every registered model family."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import sys
from pathlib import Path

from ecomgan import __version__
from ecomgan.contract import EvaluateRequest, Family
from ecomgan.families import FAMILIES, REPO_ROOT, get_family


def _add_config_flags(parser: argparse.ArgumentParser, config_cls) -> None:
    """One `--flag` per TrainConfig field; defaults and help come from the dataclass."""
    group = parser.add_argument_group(f"{config_cls.__module__} TrainConfig")
    for f in dataclasses.fields(config_cls):
        flag = "--" + f.name.replace("_", "-")
        help_text = f"{f.metadata.get('help', '')} (default: {f.default})"
        if f.type in (bool, "bool"):
            group.add_argument(
                flag,
                dest=f.name,
                action=argparse.BooleanOptionalAction,
                default=None,
                help=help_text,
            )
        else:
            kind = {"int": int, "float": float, "str": str}.get(str(f.type), f.type)
            group.add_argument(flag, dest=f.name, type=kind, default=None, help=help_text)


def _at_least(low: int):
    """An argparse type: an integer >= `low`, or a usage error saying so."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be >= {low}, got {value}")
        return value

    return parse


def _condition(text: str) -> tuple[str, str]:
    """``COLUMN=VALUE`` -> (column, value), or a usage error naming the form."""
    column, sep, value = text.partition("=")
    if not sep or not column.strip() or not value.strip():
        raise argparse.ArgumentTypeError(f"expected COLUMN=VALUE (e.g. Revenue=true), got {text!r}")
    return column.strip(), value.strip()


def _family_from_argv(argv: list[str]) -> str | None:
    for i, arg in enumerate(argv):
        if arg == "--family" and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith("--family="):
            return arg.split("=", 1)[1]
    return None


def _family(args: argparse.Namespace) -> Family:
    """The family of ``--family``; required while more than one family is registered."""
    if args.family is None:
        if len(FAMILIES) > 1:
            raise ValueError(f"give --family: one of {', '.join(FAMILIES)}")
        return next(iter(FAMILIES.values()))
    return get_family(args.family)


def cmd_train(args: argparse.Namespace) -> int:
    family = _family(args)
    trainer = family.load_trainer()
    overrides = {
        f.name: getattr(args, f.name)
        for f in dataclasses.fields(trainer.TrainConfig)
        if getattr(args, f.name, None) is not None
    }
    cfg = trainer.TrainConfig(**overrides)
    out = Path(args.out or f"runs/{family.name}")
    main_rank = os.environ.get("RANK", "0") == "0"  # under torchrun, only rank 0 reports
    try:
        ckpt = trainer.train(
            cfg, out, data_dir=args.data_dir, resume=args.resume, dry_run=args.dry_run
        )
    except KeyboardInterrupt:
        if main_rank:
            print(f"interrupted; the last checkpoint is {out / 'checkpoint.pt'}", file=sys.stderr)
        return 130
    if main_rank:
        print(f"checkpoint: {ckpt}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from export.pipeline import export_family, register_folder

    family = _family(args)
    out = Path(args.out) if args.out else Path("exports") / family.name
    report = Path(args.quality_report) if args.quality_report else None
    # Before the slow export: fail fast.
    quality = family.load_trainer().quality_gates(
        Path(args.checkpoint), report, allow_below=args.allow_below_gates
    )
    result = export_family(
        family.name, Path(args.checkpoint), out, data_dir=args.data_dir, quality=quality
    )
    if quality and quality["override_used"]:
        print(f"WARNING: exported below the quality gates: {quality['failures']}", file=sys.stderr)
    print(f"exported to {out}: {result}")
    if args.register:
        for role, tag in register_folder(family.name, out).items():
            print(f"registered {role}: {tag}")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    family = _family(args)
    compare = {}
    for spec in args.compare or []:
        name, _, path = spec.rpartition("=")
        compare[name or Path(path).stem] = Path(path)
    request = EvaluateRequest(
        checkpoint=Path(args.checkpoint),
        out=Path(args.out or f"reports/{family.name}"),
        data_dir=args.data_dir,
        samples=args.samples,
        seed=args.seed,
        quick=args.quick,
        name=args.name,
        compare=compare,
        classifier=Path(args.classifier) if args.classifier else None,
        detector=Path(args.detector) if args.detector else None,
    )
    print(family.load_trainer().evaluate_checkpoint(request))
    return 0


def cmd_register(args: argparse.Namespace) -> int:
    from export.pipeline import MANIFEST, ensure_registered, register_folder

    if args.folder and not args.family and len(FAMILIES) > 1:
        raise ValueError(f"--folder needs --family: one of {', '.join(FAMILIES)}")
    for family in [get_family(args.family)] if args.family else FAMILIES.values():
        folder = Path(args.folder) if args.folder else family.shipped_dir
        if not args.family and not (folder / MANIFEST).is_file():
            print(f"{family.name}: ships no models ({folder}); skipped")
            continue
        register = register_folder if args.force else ensure_registered
        for role, tag in register(family.name, folder).items():
            print(f"{family.model_name(role)}: {tag}")
    return 0


def cmd_quantize(args: argparse.Namespace) -> int:
    from export.pipeline import quantize_folder

    family = _family(args)
    folder = Path(args.folder) if args.folder else family.shipped_dir
    for role, entry in quantize_folder(
        family.name, folder, args.roles, data_dir=args.data_dir
    ).items():
        report = entry["quantization"]
        print(
            f"{role}: {folder / entry['file']} ({entry['size_bytes'] / 1024:,.0f} KB, FP32 "
            f"{report['source']['size_bytes'] / 1024:,.0f} KB), sha256 {entry['sha256'][:12]}, "
            f"{report['seconds']} s"
        )
        for name, v in report["validation"].items():
            print(f"  output {name}: RMSE / std(FP32) {v['rel_rmse']:.3f} on held-out inputs")
        for q in report["quality"]["results"]:
            print(
                f"  {q['metric']}: FP32 {q['fp32']:.4f} -> INT8 {q['int8']:.4f} "
                f"(worsens {q['worsening']:.4g}, allowed {q['allowed']:.4g})"
            )
        if "calibration" in entry:
            cal = entry["calibration"]
            print(
                f"  INT8 calibration: AUROC {cal['auroc']:.4f}, TPR {cal['tpr']:.3f} at FPR "
                f"{cal['fpr']:.4f} (target {cal['target_fpr']}), threshold {cal['threshold']:.4f}"
            )
    print(
        f"register it with `ecomgan register --family {family.name} --folder {folder}` "
        "(`ecomgan serve` does so for the shipped folder) and serve it with ECOMGAN_PRECISION=int8"
    )
    return 0


def _is_onnx(path: Path) -> bool:
    """ONNX files are protobufs that start with the ir_version field (tag 0x08)."""
    if path.suffix == ".onnx":
        return True
    try:
        with path.open("rb") as f:
            return f.read(1) == b"\x08"
    except OSError:
        return False


def _sample_onnx(args: argparse.Namespace) -> int:
    from serving import sampling

    if args.model:
        family, run, nz, artifacts = sampling.from_store(args.model)
    else:
        family, run, nz, artifacts = sampling.from_folder(Path(args.folder))
    conditions = dict(args.condition or [])
    message = family.load_api().write_samples(
        run,
        nz,
        artifacts,
        Path(args.out or "samples"),
        count=args.count,
        seed=args.seed,
        category=args.category,
        conditions=conditions,
    )
    print(message)
    return 0


def cmd_sample(args: argparse.Namespace) -> int:
    if args.checkpoint is None:
        return _sample_onnx(args)
    if _is_onnx(Path(args.checkpoint)):
        raise ValueError(
            f"{args.checkpoint} is an ONNX model, not a training checkpoint; sample an exported "
            "folder with --from DIR (e.g. --from models/products) or a registered model with "
            "--model FAMILY"
        )
    message = (
        _family(args)
        .load_trainer()
        .write_samples(
            Path(args.checkpoint),
            Path(args.out) if args.out else None,
            count=args.count,
            seed=args.seed,
            category=args.category,
            conditions=dict(args.condition or []),
        )
    )
    print(message)
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from serving.ports import PortInUseError, check_free
    from serving.settings import Settings
    from serving.shipped import ensure_shipped_models

    settings = Settings.from_env()  # a bad ECOMGAN_* value stops here, naming the variable
    grpc_port = settings.grpc_port if args.grpc_port is None else args.grpc_port
    try:
        check_free(args.port, args.host, "--port")
        if settings.grpc:
            check_free(grpc_port, "0.0.0.0", "--grpc-port (or ECOMGAN_GRPC_PORT)")
    except PortInUseError as exc:
        print(f"ecomgan serve: {exc}", file=sys.stderr)
        return 2
    for name, tag in ensure_shipped_models().items():
        print(f"model {name}: {tag}")
    os.environ["ECOMGAN_GRPC_PORT"] = str(grpc_port)  # the bento's processes read it
    cmd = [
        sys.executable,
        "-m",
        "bentoml",
        "serve",
        "service:EcomGAN",
        "--working-dir",
        str(REPO_ROOT),
        "--host",
        args.host,
        "--port",
        str(args.port),
    ]
    print(f"HTTP on {args.host}:{args.port}, OIP gRPC on port {args.grpc_port}", flush=True)
    os.execv(sys.executable, cmd)


def cmd_families(args: argparse.Namespace) -> int:
    for family in FAMILIES.values():
        print(f"{family.name:10s} {family.description}")
    return 0


def build_parser(argv: list[str]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ecomgan", description=__doc__)
    parser.add_argument("--version", action="version", version=f"ecomgan {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    family_help = f"model family (required): {', '.join(FAMILIES)}"

    p = sub.add_parser("train", help="train a family's GAN")
    p.add_argument("--family", choices=list(FAMILIES), help=family_help)
    p.add_argument("--out", help="run folder (default runs/<family>)")
    p.add_argument("--data-dir", type=Path, help="dataset folder (else $ECOMGAN_DATA_DIR, ...)")
    p.add_argument("--resume", type=Path, help="continue from this checkpoint")
    p.add_argument("--dry-run", action="store_true", help="one step on synthetic data")
    family = _family_from_argv(argv)
    if argv[:1] == ["train"] and family in FAMILIES:  # imports torch: only when training
        _add_config_flags(p, get_family(family).load_trainer().TrainConfig)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("export", help="export a checkpoint to validated ONNX and register it")
    p.add_argument("--family", choices=list(FAMILIES), help=family_help)
    p.add_argument("--checkpoint", required=True, help="checkpoint.pt from `ecomgan train`")
    p.add_argument("--out", help="output folder (default exports/<family>)")
    p.add_argument("--data-dir", type=Path, help="dataset folder for detector calibration")
    p.add_argument(
        "--register",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="register into the BentoML model store (default: yes)",
    )
    p.add_argument(
        "--quality-report",
        help="report.json written by `ecomgan evaluate` for this "
        "checkpoint; its quality gates (ecomgan/gates.py) must pass",
    )
    p.add_argument(
        "--allow-below-gates",
        action="store_true",
        help="export even below the "
        "quality gates (or without a report); recorded in the manifest and metadata",
    )
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("evaluate", help="measure a generator (and its detector) against real data")
    p.add_argument("--family", choices=list(FAMILIES), help=family_help)
    p.add_argument("--checkpoint", required=True, help="checkpoint.pt or generator.onnx")
    p.add_argument("--name", default="ours", help="its name in the report (default: ours)")
    p.add_argument(
        "--compare",
        nargs="*",
        metavar="[NAME=]PATH",
        help="more generators beside it, e.g. dcgan=runs/quality/baseline/checkpoint.pt",
    )
    p.add_argument(
        "--detector",
        help="checkpoint whose discriminator is scored as the detector "
        "(default: --checkpoint, if it is a products checkpoint)",
    )
    p.add_argument(
        "--classifier", help="feature extractor (default models/products/classifier.npz)"
    )
    p.add_argument(
        "--samples",
        type=int,
        help="fakes per generator (default: products 10,000; shoppers the train split's size)",
    )
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--quick", action="store_true", help="small models and samples (a smoke run)")
    p.add_argument("--out", help="folder for report.json/.md and PNGs (default reports/<family>)")
    p.add_argument("--data-dir", type=Path, help="dataset folder (else $ECOMGAN_DATA_DIR, ...)")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("register", help="register shipped (or exported) models in the store")
    p.add_argument("--family", choices=list(FAMILIES), help="one family (default: all)")
    p.add_argument("--folder", help="an exported folder (default: the shipped models)")
    p.add_argument("--force", action="store_true", help="register even if already present")
    p.set_defaults(func=cmd_register)

    p = sub.add_parser(
        "quantize",
        help="add INT8 twins of an exported folder's ONNX files, gated on quality",
        description="Quantise with ONNX Runtime (static QDQ INT8) and keep each file only if "
        "the family's quality rule holds; the discriminator's calibration is refit on INT8 "
        "logits. Serve the result with ECOMGAN_PRECISION=int8.",
    )
    p.add_argument("--family", choices=list(FAMILIES), help=family_help)
    p.add_argument("--folder", help="an exported folder (default: the family's shipped models)")
    p.add_argument(
        "--roles",
        nargs="+",
        default=["discriminator"],
        choices=["generator", "discriminator"],
        help="roles to quantise (default: discriminator)",
    )
    p.add_argument("--data-dir", type=Path, help="dataset folder (else $ECOMGAN_DATA_DIR, ...)")
    p.set_defaults(func=cmd_quantize)

    p = sub.add_parser(
        "sample",
        help="write samples (PNG grid of images, or CSV rows) from a registered model, an "
        "exported folder or a training checkpoint",
    )
    p.add_argument("--family", choices=list(FAMILIES), help=f"{family_help} (with --checkpoint)")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--model",
        choices=list(FAMILIES),
        help="the family's latest generator in the model store (the shipped default is "
        "registered first if the store has none)",
    )
    source.add_argument(
        "--from",
        dest="folder",
        metavar="DIR",
        help="an exported folder: models/<family> or what `ecomgan export --out` wrote",
    )
    source.add_argument("--checkpoint", help="a training checkpoint (checkpoint.pt)")
    p.add_argument("--category", help="class name or index (image families; default 0)")
    p.add_argument(
        "--condition",
        action="append",
        type=_condition,
        metavar="COLUMN=VALUE",
        help="fix a categorical column (tabular families; repeatable), e.g. Revenue=true",
    )
    p.add_argument("--count", type=_at_least(1), default=16)
    p.add_argument("--seed", type=_at_least(0), default=0)
    p.add_argument("--out", help="output file (default: the family's, e.g. samples.png)")
    p.set_defaults(func=cmd_sample)

    p = sub.add_parser(
        "serve",
        help="register the shipped defaults if needed and serve the bento",
        description="Environment: ECOMGAN_PRECISION=fp32 (default) | int8 serves the INT8 "
        "files `ecomgan quantize` added, where a model has one, on the CPU provider.",
    )
    p.add_argument("--host", default="0.0.0.0")
    p.add_argument("--port", type=int, default=3000, help="HTTP port (JSON APIs and OIP /v2)")
    p.add_argument(
        "--grpc-port",
        type=int,
        default=int(os.environ.get("ECOMGAN_GRPC_PORT", 3001)),
        help="OIP gRPC port",
    )
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("families", help="list the registered model families")
    p.set_defaults(func=cmd_families)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("ecomgan").setLevel(logging.INFO)
    os.environ.setdefault("BENTOML_DO_NOT_TRACK", "true")
    parser = build_parser(argv)
    no_family = argv[:1] == ["train"] and _family_from_argv(argv) is None
    # train's TrainConfig flags depend on the family: without one, name it, not a flag.
    if no_family and len(FAMILIES) > 1 and not {"-h", "--help"} & set(argv):
        parser.error(f"train: give --family: one of {', '.join(FAMILIES)}")
    args = parser.parse_args(argv)
    try:
        return args.func(args) or 0
    except (ValueError, FileNotFoundError, RuntimeError) as exc:  # QualityGateError too
        print(f"ecomgan {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:
        from serving.errors import ServingError

        if not isinstance(exc, ServingError):  # input refused by a family's serving code
            raise
        print(f"ecomgan {args.command}: error: {exc.message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
