"""The layer order of README "Architecture": no module imports a layer above its own.

Bottom to top: core (``ecomgan`` without the CLI), ``gan`` (training), ``export``, ``serving``,
then the CLI and ``service.py``. ``benchmarks`` and ``tests`` stand beside the top: they may
import any layer, and ``benchmarks`` never imports ``tests``. Modules are parsed with ``ast``
(nothing is imported); every import counts, also those inside functions or under
``TYPE_CHECKING``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
LAYERS = ("core", "gan", "export", "serving", "top", "benchmarks", "tests")
TOP = {"ecomgan.cli", "service"}
KNOWN_UPWARD: set[tuple[str, str]] = set()


def layer(module: str) -> str | None:
    """The layer of a first-party module name, None for third-party modules."""
    root = module.split(".")[0]
    if module in TOP or any(module.startswith(t + ".") for t in TOP):
        return "top"
    if root == "ecomgan":
        return "core"
    if root in ("gan", "export", "serving", "benchmarks", "tests"):
        return root
    return None


def modules() -> dict[str, Path]:
    files = [REPO / "service.py"]
    for package in ("ecomgan", "gan", "export", "serving", "benchmarks", "tests"):
        files += sorted((REPO / package).rglob("*.py"))
    names = {}
    for path in files:
        parts = path.relative_to(REPO).with_suffix("").parts
        names[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return names


def imports(path: Path, module: str) -> set[str]:
    found = set()
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolve against the importing package
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            found.add(base)
    return found


def upward_imports() -> set[tuple[str, str]]:
    bad = set()
    for module, path in modules().items():
        own = layer(module)
        for target in imports(path, module):
            theirs = layer(target)
            if own is None or theirs is None or own == theirs:
                continue
            beside = own in ("benchmarks", "tests")  # beside the top: any layer but tests
            if (theirs == "tests" and own == "benchmarks") or (
                not beside and LAYERS.index(theirs) > LAYERS.index(own)
            ):
                bad.add((module, target))
    return bad


def test_the_classification_sees_every_layer():
    seen = {layer(m) for m in modules()}
    assert seen == set(LAYERS)
    assert layer("ecomgan.files") == "core" and layer("ecomgan.cli") == "top"
    assert layer("numpy") is None and layer("gan.products.train") == "gan"


def test_no_layer_imports_one_above_it():
    bad = upward_imports()
    assert bad - KNOWN_UPWARD == set(), "upward imports (see this module's docstring)"
    assert KNOWN_UPWARD - bad == set(), "fixed: remove these from KNOWN_UPWARD"


@pytest.mark.parametrize(
    ("module", "source", "upward"),
    [
        ("gan.loop", "from export.onnx import export_onnx\n", True),
        ("gan.loop", "def f():\n    import serving.batcher\n", True),
        ("export.pipeline", "from gan.exportable import Exportable\n", False),
        ("ecomgan.tabular", "import ecomgan.cli\n", True),
        ("benchmarks.run", "from tests.conftest import base_env\n", True),
        ("tests.unit.x", "from benchmarks.server import bento\n", False),
    ],
)
def test_the_check_catches_an_upward_import(tmp_path, monkeypatch, module, source, upward):
    path = tmp_path / (module.rpartition(".")[2] + ".py")
    path.write_text(source)
    monkeypatch.setattr(f"{__name__}.modules", lambda: {module: path})
    assert bool(upward_imports()) is upward
