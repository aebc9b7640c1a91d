"""The family contract (ecomgan.contract) and the registry's external entries."""

from __future__ import annotations

import ast
from pathlib import Path
from types import ModuleType, SimpleNamespace

import pytest

from ecomgan import cli
from ecomgan.contract import (
    OPTIONAL_HOOKS,
    REQUIRED_TRAINER,
    ContractError,
    FamilyAPI,
    check_api,
    check_trainer,
)
from ecomgan.families import BUILTIN, ENV_VAR, FAMILIES, load_registry

REPO = Path(__file__).resolve().parents[3]
NOT_A_FAMILY = object()


def test_registry_reads_external_entries():
    families = load_registry({ENV_VAR: " tests.toyfamily:FAMILY , "})
    assert list(families) == [*BUILTIN, "toy"]
    assert families["toy"].api == "tests.toyfamily.api:ToyAPI"
    assert list(load_registry({})) == list(BUILTIN)


@pytest.mark.parametrize(
    ("ref", "message"),
    [
        ("tests.toyfamily", "is not module:ATTR"),
        ("tests.toyfamily:NOPE", "cannot load 'tests.toyfamily:NOPE'"),
        ("no_such_package.mod:FAMILY", "cannot load"),
        (f"{__name__}:NOT_A_FAMILY", "is not an ecomgan.contract.Family"),
        (f"{__name__}:RENAMED", "reuses the family name 'products'"),
    ],
)
def test_registry_refuses_bad_entries(ref, message):
    with pytest.raises(ContractError, match=message) as exc:
        load_registry({ENV_VAR: ref})
    assert ENV_VAR in str(exc.value)


RENAMED = BUILTIN["products"].__class__(**{**BUILTIN["products"].__dict__, "description": "x"})


def test_missing_trainer_members_are_named_with_the_module():
    with pytest.raises(ContractError) as exc:
        check_trainer(SimpleNamespace(TrainConfig=dict, describe=print), "pkg.mod", "mine")
    text = str(exc.value)
    assert "'mine'" in text and "pkg.mod" in text
    assert "train, exportables, calibration_inputs" in text and "describe" not in text
    sub = ModuleType("pkg.mod.evaluate_checkpoint")
    shadowed = SimpleNamespace(**{n: print for n in REQUIRED_TRAINER}, evaluate_checkpoint=sub)
    with pytest.raises(ContractError, match="evaluate_checkpoint is a submodule"):
        check_trainer(shadowed, "pkg.mod", "mine")
    half = SimpleNamespace(**{n: print for n in REQUIRED_TRAINER}, quantization_inputs=print)
    with pytest.raises(ContractError, match="lacks quantization_quality, QUANTIZATION_RULES"):
        check_trainer(half, "pkg.mod", "mine")


def test_optional_hooks_get_defaults_that_are_not_products_shaped(tmp_path):
    trainer = check_trainer(SimpleNamespace(**{n: print for n in REQUIRED_TRAINER}), "m", "mine")
    assert trainer.artifacts(tmp_path / "ckpt") == {}
    assert trainer.quality_gates(tmp_path / "ckpt", None, allow_below=False) is None
    assert trainer.make_validation_inputs is None and trainer.quantization is None
    with pytest.raises(ContractError, match="does not sample from a checkpoint.*--from"):
        trainer.write_samples(tmp_path / "ckpt", tmp_path / "out", count=1, seed=0)
    with pytest.raises(ContractError, match="'mine' has no evaluator"):
        trainer.evaluate_checkpoint(SimpleNamespace())


def test_builtin_and_toy_families_meet_the_contract():
    for family in (*BUILTIN.values(), load_registry({ENV_VAR: "tests.toyfamily:FAMILY"})["toy"]):
        trainer, api = family.load_trainer(), family.load_api()
        assert trainer.write_samples.__module__ == trainer.module.__name__
        assert api.examples and all(route in vars(api) for route in api.examples)
    products = BUILTIN["products"].load_trainer()
    assert (
        products.evaluate_checkpoint.__module__ == "gan.products"
        and products.quantization is not None
    )


def test_gates_are_a_family_hook_products_declares(tmp_path):
    ckpt = tmp_path / "checkpoint.pt"
    products = BUILTIN["products"].load_trainer()
    with pytest.raises(RuntimeError, match="no --quality-report.*--family products"):
        products.quality_gates(ckpt, None, allow_below=False)
    verdict = products.quality_gates(ckpt, None, allow_below=True)
    assert verdict == {"passed": False, "override_used": True, "failures": ["no quality report"]}
    assert BUILTIN["shoppers"].load_trainer().quality_gates(ckpt, None, allow_below=False) is None


def test_api_class_is_checked():
    class Bare(FamilyAPI):
        pass

    class Plain:
        examples = {"a": {}}

    with pytest.raises(ContractError, match="serving API pkg:Bare lacks examples, write_samples"):
        check_api(Bare, "pkg:Bare", "mine")
    with pytest.raises(ContractError, match="not a subclass of ecomgan.contract.FamilyAPI"):
        check_api(Plain, "pkg:Plain", "mine")


NO_FAMILY = [
    ["train", "--dry-run"],
    ["train", "--steps", "3"],
    ["export", "--checkpoint", "c.pt"],
    ["evaluate", "--checkpoint", "c.pt"],
    ["quantize"],
    ["sample", "--checkpoint", "c.pt"],
]


@pytest.mark.parametrize("argv", NO_FAMILY)
def test_family_is_required_and_the_error_lists_them(argv, capsys):
    assert len(FAMILIES) > 1
    try:
        rc = cli.main(argv)
    except SystemExit as exc:  # argparse's error (train: its flags depend on the family)
        rc = exc.code
    assert rc == 2
    assert f"give --family: one of {', '.join(FAMILIES)}" in capsys.readouterr().err


FAMILY_OBJECTS = {"trainer", "module", "hooks", "api"}
PROBED = {*REQUIRED_TRAINER, *OPTIONAL_HOOKS, "sample_frame", "input_ranges", "examples"}


def test_no_probing_of_family_modules_and_no_family_branches():
    """cli, export and the generic serving modules call the contract, never a family by name."""
    files = [REPO / "ecomgan" / "cli.py", *sorted((REPO / "export").glob("*.py"))]
    files += [p for p in sorted((REPO / "serving").glob("*.py"))
              if p.stem not in ("products", "shoppers")]  # fmt: skip
    found = []
    for path in files:
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                    and node.func.id in ("hasattr", "getattr") and len(node.args) > 1
                    and (getattr(node.args[1], "value", None) in PROBED
                         or getattr(node.args[0], "id", None) in FAMILY_OBJECTS)):  # fmt: skip
                found.append(f"{path.name}:{node.lineno} {ast.unparse(node)}")
            if isinstance(node, ast.Compare) and any(
                isinstance(c, ast.Constant) and c.value in BUILTIN
                for c in (node.left, *node.comparators)
            ):
                found.append(f"{path.name}:{node.lineno} compares with a family name")
    assert not found
