"""What the bento imports when it starts is installed in its image.

The bento (bentofile.yaml ``include``) gets only requirements-serve.txt and what those packages
require. Every module-level import of its Python files must resolve to the standard library,
to the project's own modules, or to a distribution in that closure; an import inside a function
(e.g. tqdm for `ecomgan sample`'s progress bar, torch for training) runs only where it is called.
A miss here means `bentoml serve` fails in the container with ModuleNotFoundError.
"""

from __future__ import annotations

import ast
import re
import sys
from importlib import metadata
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
FIRST_PARTY = {"ecomgan", "gan", "export", "serving", "service"}


def bento_files() -> list[Path]:
    spec = yaml.safe_load((REPO / "bentofile.yaml").read_text())
    return sorted({p for pattern in spec["include"] if pattern.endswith(".py")
                   for p in REPO.glob(pattern)})  # fmt: skip


def _name(requirement: str) -> tuple[str, set[str], str]:
    """(distribution, extras, marker) of a requirement line."""
    head, _, marker = requirement.partition(";")
    m = re.match(r"\s*([A-Za-z0-9_.-]+)\s*(?:\[([^\]]*)\])?", head)
    assert m, requirement
    extras = {e.strip() for e in (m.group(2) or "").split(",") if e.strip()}
    return m.group(1), extras, marker


def _applies(marker: str, extras: set[str]) -> bool:
    marker = marker.strip()
    if not marker:
        return True
    wanted = set(re.findall(r"extra\s*==\s*['\"]([^'\"]+)['\"]", marker))
    if wanted:
        return bool(wanted & extras)
    from packaging.markers import Marker

    return Marker(marker).evaluate()


def serve_closure() -> set[str]:
    """Normalised names of requirements-serve.txt's distributions and all they require."""
    lines = [line.split("#")[0].strip() for line in
             (REPO / "requirements-serve.txt").read_text().splitlines()]  # fmt: skip
    todo = [_name(line)[:2] for line in lines if line and _applies(_name(line)[2], set())]
    seen: set[str] = set()
    while todo:
        name, extras = todo.pop()
        key = re.sub(r"[-_.]+", "-", name).lower()
        if key in seen and not extras:
            continue
        seen.add(key)
        try:
            requires = metadata.distribution(name).requires or []
        except metadata.PackageNotFoundError:
            continue  # not installed here (e.g. a platform-specific one): nothing to walk
        for req in requires:
            dep, dep_extras, marker = _name(req)
            if _applies(marker, extras):
                todo.append((dep, dep_extras))
    return seen


def module_level_imports(path: Path) -> set[str]:
    """Top-level package names imported at module level (not inside functions or classes'
    methods), ``TYPE_CHECKING`` blocks excluded."""
    found: set[str] = set()

    def visit(body: list[ast.stmt]) -> None:
        for node in body:
            if isinstance(node, ast.Import):
                found.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
                found.add(node.module.split(".")[0])
            elif isinstance(node, ast.If) and "TYPE_CHECKING" not in ast.unparse(node.test):
                visit(node.body)
                visit(node.orelse)
            elif isinstance(node, ast.Try | ast.ClassDef):
                visit(node.body)

    visit(ast.parse(path.read_text(), str(path)).body)
    return found


def test_every_module_level_import_of_the_bento_is_installed_in_its_image():
    closure = serve_closure()
    owners = metadata.packages_distributions()
    missing = []
    for path in bento_files():
        for name in sorted(module_level_imports(path)):
            if name in sys.stdlib_module_names or name in FIRST_PARTY or name == "__future__":
                continue
            dists = {re.sub(r"[-_.]+", "-", d).lower() for d in owners.get(name, [])}
            if not dists & closure:
                missing.append(f"{path.relative_to(REPO)}: {name} ({', '.join(dists) or '?'})")
    assert not missing, (
        "imported at module level by the bento but not installed by requirements-serve.txt "
        "(import it inside the function that needs it, or add it there): " + "; ".join(missing)
    )


def test_the_check_catches_a_training_only_import(tmp_path):
    probe = tmp_path / "probe.py"
    probe.write_text("import numpy\nfrom tqdm import tqdm\n\ndef f():\n    import torch\n")
    assert module_level_imports(probe) == {"numpy", "tqdm"}
    owners = metadata.packages_distributions()
    closure = serve_closure()
    assert "numpy" in closure and "bentoml" in closure and "starlette" in closure
    assert not {d.lower() for d in owners["tqdm"]} & closure
    assert "torch" not in closure
