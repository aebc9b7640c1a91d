"""The family contract: what a family's two modules provide, checked once when they load.

A family is a registry entry (`Family`) naming two modules:

- its **training module** (torch side, `Family.trainer`): the `TrainerModule` members are
  required; the `OPTIONAL_HOOKS` are optional and get the defaults of `Trainer`;
- its **serving API class** (numpy/onnxruntime side, `Family.api`): a subclass of `FamilyAPI`
  that defines `FamilyAPI.REQUIRED` and may override `FamilyAPI.input_ranges`,
  `FamilyAPI.batch_padding` and `FamilyAPI.oip_adapter` (a model whose OIP tensors are not the
  ONNX graph's, e.g. text in and out around a tokenizer and a sampling loop).

`Family.load_trainer` and `Family.load_api` import a module, check it and raise a
`ContractError` naming every missing member and the module. The CLI, `export/` and `serving/`
call the resolved `Trainer` and never probe a module themselves.

This module must stay importable without torch (the service imports it).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, ClassVar, Protocol

ROLES = ("generator", "discriminator")
REQUIRED_TRAINER = ("TrainConfig", "train", "exportables", "calibration_inputs", "describe")
QUANTIZATION_HOOKS = ("quantization_inputs", "quantization_quality", "QUANTIZATION_RULES")
OPTIONAL_HOOKS = ("write_samples", "evaluate_checkpoint", "quality_gates", "artifacts",
                  "make_validation_inputs", *QUANTIZATION_HOOKS, "detector_inputs")  # fmt: skip


class ContractError(ValueError):
    """A family module lacks members of the contract (the message names them and the module)."""


class TrainerModule(Protocol):
    """The required members of a family's training module (``gan.<family>``)."""

    TrainConfig: type
    """Flat dataclass of training options (``gan.common.FlatConfig``); one CLI flag per field."""

    def train(self, cfg: Any, out_dir: Path, *, data_dir: Path | None = None,
              resume: Path | None = None, dry_run: bool = False) -> Path:  # fmt: skip
        """Train and return the checkpoint (``gan.loop.trainer(MyFamily)`` makes it)."""

    def exportables(self, checkpoint: Path) -> dict[str, Any]:
        """Role -> ``gan.exportable.Exportable`` for both `ROLES`."""

    def calibration_inputs(
        self, checkpoint: Path, n: int, seed: int, data_dir: Path | None = None
    ) -> tuple[tuple[Any, ...], tuple[Any, ...]]:
        """(real, fake) discriminator inputs, one array per ONNX input, for the detector."""

    def describe(self, checkpoint: Path) -> dict[str, Any]:
        """JSON facts of a checkpoint for the manifest and model-store metadata."""


@dataclass(frozen=True)
class EvaluateRequest:
    """What `ecomgan evaluate` asks a family's ``evaluate`` hook.

    Attributes:
        checkpoint: The subject: a checkpoint (or what the family's evaluator accepts).
        out: Folder for ``report.md`` and whatever else the evaluator writes.
        data_dir: Dataset folder (None: the family's default).
        samples: Generated examples to score (None: the family's default).
        seed: Seed of the evaluation.
        quick: Small models and samples (a smoke run).
        name: The subject's name in the report.
        compare: Name -> checkpoint of more generators to report beside it.
        classifier: A feature extractor for the metrics, if the family uses one.
        detector: A checkpoint whose discriminator is scored, if the family scores one.
    """

    checkpoint: Path
    out: Path
    data_dir: Path | None = None
    samples: int | None = None
    seed: int = 1
    quick: bool = False
    name: str = "ours"
    compare: Mapping[str, Path] = field(default_factory=dict)
    classifier: Path | None = None
    detector: Path | None = None


@dataclass(frozen=True)
class Quantization:
    """A family's INT8 hooks (see ``export.pipeline.quantize_folder`` and gan/products)."""

    inputs: Callable[..., Any]
    quality: Callable[..., Any]
    rules: Mapping[str, Any]
    detector_inputs: Callable[..., Any] | None


def _no_samples(name: str) -> Callable[..., str]:
    def write_samples(checkpoint: Path, out: Path, **_: Any) -> str:
        raise ContractError(
            f"family {name!r} does not sample from a checkpoint (its module has no "
            "write_samples); export it and sample the folder with `ecomgan sample --from DIR`"
        )

    return write_samples


def _no_evaluator(name: str) -> Callable[[EvaluateRequest], str]:
    def evaluate_checkpoint(request: EvaluateRequest) -> str:
        raise ContractError(
            f"family {name!r} has no evaluator (its module has no evaluate_checkpoint)"
        )

    return evaluate_checkpoint


def _no_gates(checkpoint: Path, report: Path | None, *, allow_below: bool) -> None:
    return None


def _no_artifacts(checkpoint: Path) -> dict[str, bytes]:
    return {}


@dataclass(frozen=True)
class Trainer:
    """A checked training module, every optional hook resolved to the module's or its default.

    Attributes:
        ref: The module reference (``Family.trainer``), for messages.
        module: The module itself (or the object the reference names).
        TrainConfig, train, exportables, calibration_inputs, describe: `TrainerModule`.
        write_samples: ``f(checkpoint, out, *, count, seed, category, conditions) -> message``
            writes samples from a checkpoint in the family's own format (PNG grid, CSV, text,
            chart). Default: refuse, pointing at ``ecomgan sample --from``.
        evaluate_checkpoint: ``f(EvaluateRequest) -> summary``; writes ``report.md`` (and more) into
            ``request.out``. Default: refuse (the family has no evaluator).
        quality_gates: ``f(checkpoint, report_json_or_None, *, allow_below) -> verdict``,
            called by ``ecomgan export`` before exporting; raises below the gates (unless
            ``allow_below``) and returns the manifest's ``quality`` entry. Default: no gates
            (returns None, nothing recorded).
        artifacts: ``f(checkpoint) -> {file name: bytes}`` shipped beside the ONNX files.
            Default: none.
        make_validation_inputs: ``f(role, batch_size, seed) -> tensors`` for the ONNX parity
            check. Default None: random inputs shaped like the exportable's examples.
        quantization: The INT8 hooks, or None (``ecomgan quantize`` refuses the family).
    """

    ref: str
    module: Any
    TrainConfig: type
    train: Callable[..., Path]
    exportables: Callable[[Path], dict[str, Any]]
    calibration_inputs: Callable[..., Any]
    describe: Callable[[Path], dict[str, Any]]
    write_samples: Callable[..., str]
    evaluate_checkpoint: Callable[[EvaluateRequest], str]
    quality_gates: Callable[..., dict[str, Any] | None]
    artifacts: Callable[[Path], dict[str, bytes]]
    make_validation_inputs: Callable[..., Any] | None
    quantization: Quantization | None


def check_trainer(module: Any, ref: str, family: str) -> Trainer:
    """Check a training module against the contract and resolve its optional hooks.

    Raises:
        ContractError: Required members, or part of the quantisation hooks, are missing.
    """
    members = {n: getattr(module, n) for n in (*REQUIRED_TRAINER, *OPTIONAL_HOOKS)
               if hasattr(module, n)}  # fmt: skip
    shadowed = [n for n, v in members.items() if isinstance(v, ModuleType)]
    if shadowed:
        raise ContractError(
            f"family {family!r}: in training module {ref}, {', '.join(shadowed)} is a submodule, "
            "not the hook (importing a submodule of that name replaces the package attribute); "
            "rename the submodule"
        )
    missing = [n for n in REQUIRED_TRAINER if n not in members]
    quant = [n for n in QUANTIZATION_HOOKS if n in members]
    if quant and len(quant) < len(QUANTIZATION_HOOKS):
        missing += [n for n in QUANTIZATION_HOOKS if n not in members]
    if missing:
        raise ContractError(
            f"family {family!r}: training module {ref} lacks {', '.join(missing)} "
            "(see ecomgan/contract.py)"
        )
    quantization = None
    if quant:
        quantization = Quantization(members["quantization_inputs"],
                                    members["quantization_quality"],
                                    members["QUANTIZATION_RULES"],
                                    members.get("detector_inputs"))  # fmt: skip
    return Trainer(
        ref=ref,
        module=module,
        **{n: members[n] for n in REQUIRED_TRAINER},
        write_samples=members.get("write_samples") or _no_samples(family),
        evaluate_checkpoint=members.get("evaluate_checkpoint") or _no_evaluator(family),
        quality_gates=members.get("quality_gates") or _no_gates,
        artifacts=members.get("artifacts") or _no_artifacts,
        make_validation_inputs=members.get("make_validation_inputs"),
        quantization=quantization,
    )


Run = Callable[[dict[str, Any]], dict[str, Any]]


@dataclass(frozen=True)
class OIPAdapter:
    """A served model whose protocol-facing tensors differ from its ONNX graph's.

    The gateway validates a request against ``inputs`` (BYTES arrive as ``str`` objects), then
    calls ``call(inputs, run)`` in a worker thread, where ``run`` sends named ONNX inputs
    through the model's batched backend (the same dynamic batcher or role service as any
    request, so concurrent requests share runs) and returns its named outputs; ``call`` may run
    it several times (a sampling loop). ``call`` returns the ``outputs`` by name, batch on axis
    0, and raises ``ValueError`` for a request it refuses (a 400 / INVALID_ARGUMENT naming
    what is allowed). Every protocol (the JSON routes, OIP HTTP and gRPC) sees the model as
    ``inputs -> outputs``; the ONNX signature stays internal.

    Attributes:
        inputs: OIP tensor specs ``{"name", "datatype", "shape"}`` (-1 = any length).
        outputs: Likewise for the outputs.
        call: ``f(inputs, run) -> outputs`` on numpy arrays; numpy and the standard library
            only (it runs in the service).
    """

    inputs: tuple[dict[str, Any], ...]
    outputs: tuple[dict[str, Any], ...]
    call: Callable[[dict[str, Any], Run], dict[str, Any]]


class FamilyAPI:
    """Base of a family's serving API class, which the entry service mixes in.

    Define the `REQUIRED` members; give each route a ``<family>_`` prefix and keep helpers
    ``__private`` so that family APIs mixed into one class cannot shadow each other's.
    The class reaches the models through ``self.gateway`` and ``self.limits``
    (``serving.services.EntryBase``).

    Attributes:
        examples: Route name -> a valid JSON request body: the OpenAPI examples and the
            tests' fixtures (never defaults).
    """

    REQUIRED: ClassVar[tuple[str, ...]] = ("examples", "write_samples")
    examples: ClassVar[Mapping[str, Mapping[str, Any]]]

    @staticmethod
    def input_ranges(role: str, metadata: dict) -> dict[str, tuple[int, int]]:
        """Inclusive ranges of integer-coded inputs of one role (e.g. class labels); the
        gateway refuses values outside them. Default: none."""
        return {}

    @staticmethod
    def batch_padding(role: str) -> Mapping[str, Callable[..., Any]]:
        """Input name -> padding function (a list of per-request arrays -> one batch array,
        e.g. ``serving.batcher.pad_to_longest``) for inputs whose items vary in length, such as
        token sequences. Inputs without one batch only with items of the same shape. Default:
        none."""
        return {}

    @staticmethod
    def oip_adapter(role: str, metadata: dict, artifacts: Mapping[str, str]) -> OIPAdapter | None:
        """The protocol-facing view of one role's model, or None (the default) to serve the
        ONNX graph's own inputs and outputs.

        Args:
            role: ``generator`` or ``discriminator``.
            metadata: The model-store metadata (config, calibration...).
            artifacts: The family's artifacts by file name (paths), e.g. a tokenizer.
        """
        return None

    @staticmethod
    def write_samples(
        run: Callable[[dict[str, Any]], dict[str, Any]], nz: int, artifacts: dict[str, Path],
        out: Path, *, count: int, seed: int, category: str | None, conditions: dict[str, str],
    ) -> str:  # fmt: skip
        """`ecomgan sample --from/--model`: write what the API returns for the same seed.

        Args:
            run: The ONNX generator: input name -> array, to output name -> array.
            nz: Its latent size.
            artifacts: The family's artifacts by file name.
            out: The file to write (the family picks the suffix if it has none).
            count, seed, category, conditions: The CLI's options.

        Returns:
            One line for the user.
        """
        raise NotImplementedError


def check_api(cls: Any, ref: str, family: str) -> type[FamilyAPI]:
    """Check a serving API class against the contract.

    Raises:
        ContractError: Not a `FamilyAPI`, or required members missing or not overridden.
    """
    if not (isinstance(cls, type) and issubclass(cls, FamilyAPI)):
        raise ContractError(
            f"family {family!r}: {ref} is not a subclass of ecomgan.contract.FamilyAPI"
        )
    missing = [n for n in FamilyAPI.REQUIRED
               if n not in {k for c in cls.__mro__[:-1] if c is not FamilyAPI
                            for k in vars(c)}]  # fmt: skip
    if missing:
        raise ContractError(
            f"family {family!r}: serving API {ref} lacks {', '.join(missing)} "
            "(see ecomgan.contract.FamilyAPI)"
        )
    return cls


def _import(ref: str) -> Any:
    module, _, attr = ref.partition(":")
    obj = importlib.import_module(module)
    return getattr(obj, attr) if attr else obj


@dataclass(frozen=True)
class Family:
    """How one model family plugs into the pipeline: its registry entry.

    Attributes:
        name: Short name, used in CLI flags, model-store tags, OIP model names and route
            prefixes.
        description: One line for `ecomgan families` and docs.
        trainer: ``module[:attr]`` of the training module (imported lazily, it needs torch).
        api: ``module:Class`` of the serving API (a `FamilyAPI`; numpy/onnxruntime only).
        shipped_dir: Folder of the default ONNX models committed to the repo (registered by
            `ecomgan serve` when it holds a manifest).
        max_batch_size: Adaptive-batching cap of each role.
        max_latency_ms: Adaptive-batching deadline of each role.
        classes: Names of the conditioning classes, index = label (empty if unconditional).
    """

    name: str
    description: str
    trainer: str
    api: str
    shipped_dir: Path
    max_batch_size: dict[str, int]
    max_latency_ms: dict[str, int]
    classes: tuple[str, ...] = ()

    def model_name(self, role: str) -> str:
        """Model-store and OIP name of one role, e.g. ``products-generator``."""
        if role not in ROLES:
            raise ValueError(f"unknown role {role!r}; expected one of {ROLES}")
        return f"{self.name}-{role}"

    def load_trainer(self) -> Trainer:
        """Import and check the training module (`ContractError` names what is missing)."""
        return check_trainer(_import(self.trainer), self.trainer, self.name)

    def load_api(self) -> type[FamilyAPI]:
        """Import and check the serving API class (`ContractError` names what is missing)."""
        return check_api(_import(self.api), self.api, self.name)
