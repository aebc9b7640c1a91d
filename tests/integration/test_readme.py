"""The README's examples, run as written against a real `bentoml serve`.

Console examples (`$ command` lines, with the output shown under them) run in a shell with
`localhost:3000` pointed at the test server; outputs must match what the README shows (numbers
within 1e-3 relative, since float results differ in the last digits between CPUs; an output
shown with `...` must have the keys it shows). The Python examples under "Calling the service"
run with the server's ports.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.integration
README = REPO / "README.md"
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?")


def console_examples(text: str) -> list[tuple[str, str]]:
    """(command, shown output) of every `$ ` line in the README's console blocks."""
    examples: list[tuple[str, str]] = []
    for block in re.findall(r"```console\n(.*?)```", text, flags=re.S):
        lines, i = block.splitlines(), 0
        while i < len(lines):
            if not lines[i].startswith("$ "):
                i += 1
                continue
            command = lines[i][2:]
            while command.endswith("\\"):
                i += 1
                command = command[:-1] + lines[i].strip()
            i += 1
            shown = []
            while i < len(lines) and not lines[i].startswith("$ "):
                shown.append(lines[i])
                i += 1
            examples.append((command, "\n".join(shown).strip()))
    return examples


def python_examples(text: str) -> list[str]:
    section = text.split("## Calling the service", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, flags=re.S)


def matches(shown: str, got: str) -> bool:
    """Whether an actual output is the one the README shows (see the module docstring)."""
    if not shown:
        return True
    if "..." in shown:
        return all(f'"{key}"' in got for key in re.findall(r'"(\w+)":', shown))
    a, b = re.sub(r"\s+", "", shown), re.sub(r"\s+", "", got)
    if _NUMBER.sub("#", a) != _NUMBER.sub("#", b):
        return False
    for x, y in zip(_NUMBER.findall(a), _NUMBER.findall(b), strict=True):
        if abs(float(x) - float(y)) > 1e-6 + 1e-3 * abs(float(x)):
            return False
    return True


def test_the_parser_and_the_matcher_can_fail():
    examples = console_examples('```console\n$ echo a \\\n  b\n{"x": 1.0}\n\n$ true\n```')
    assert examples == [("echo a b", '{"x": 1.0}'), ("true", "")]
    assert matches('{"x": 1.0}', '{"x":1.0000001}') and not matches('{"x": 1.0}', '{"x": 1.1}')
    assert not matches('{"x": 1}', '{"y": 1}') and not matches('{"a": ...}', '{"b": 2}')


@pytest.fixture(scope="module")
def workdir(server, tmp_path_factory) -> tuple[Path, dict[str, str]]:
    env = dict(server.env)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return tmp_path_factory.mktemp("readme"), env


def test_console_examples_run_as_written(server, workdir):
    cwd, env = workdir
    examples = console_examples(README.read_text())
    assert len(examples) >= 10
    host = server.url.removeprefix("http://")
    for command, shown in examples:
        proc = subprocess.run(
            ["bash", "-c", command.replace("localhost:3000", host)],
            cwd=cwd, env=env, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert proc.returncode == 0, (command, proc.stderr)
        assert matches(shown, proc.stdout), (command, shown, proc.stdout)
    assert (cwd / "bags.png").stat().st_size > 0


def test_python_examples_run_as_written(server, workdir):
    cwd, env = workdir
    snippets = python_examples(README.read_text())
    assert len(snippets) == 3  # BentoML client, tritonclient gRPC, tritonclient HTTP
    grpc_port = server.grpc_target.rsplit(":", 1)[1]
    for code in snippets:
        code = code.replace("localhost:3000", server.url.removeprefix("http://"))
        code = code.replace("localhost:3001", f"127.0.0.1:{grpc_port}")
        proc = subprocess.run(
            [sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True,
            timeout=120,
        )  # fmt: skip
        assert proc.returncode == 0, (code, proc.stderr)


def test_the_install_command_is_the_one_ci_runs():
    readme = README.read_text()
    first = re.search(r"```bash\n# 1\..*?\n(.*?)\n", readme, flags=re.S).group(1)
    ci = (REPO / ".ci" / "run").read_text()
    assert first.endswith(" && ecomgan serve")
    assert first.removesuffix(" && ecomgan serve") in ci.splitlines()
