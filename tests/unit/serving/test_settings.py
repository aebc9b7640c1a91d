"""The serving settings: one on/off rule, errors that name the variable, one reader, one table."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from ecomgan.families import get_family
from serving import services
from serving.settings import FALSE_WORDS, TRUE_WORDS, Settings, documented

REPO = Path(__file__).resolve().parents[3]


def test_defaults_are_the_documented_ones():
    s = Settings.parse({})
    assert (s.max_items, s.max_rows, s.grpc_port, s.grpc_workers) == (256, 10_000, 3001, 512)
    assert s.max_body_bytes == s.max_grpc_message_bytes == 16 * 1024 * 1024
    assert (s.request_timeout_s, s.max_concurrency, s.ort_threads) == (30.0, 1024, 0)
    assert (s.topology, s.precision, s.ort_providers, s.api_token) == ("colocated", "fp32", (), "")
    assert s.grpc and s.access_log and not (s.ort_spin or s.gpu or s.skip_shipped)
    assert s.workers_of("entry") == 1 and s.batch_limits("products", "generator", (7, 9)) == (7, 9)


@pytest.mark.parametrize("word", TRUE_WORDS + ("TRUE", "On", " yes "))
def test_every_switch_takes_the_true_words(word):
    env = {f.metadata["env"]: word for f in _bool_fields()}
    s = Settings.parse(env)
    assert all(getattr(s, f.name) is True for f in _bool_fields())


@pytest.mark.parametrize("word", FALSE_WORDS + ("FALSE", "Off", "NO"))
def test_every_switch_takes_the_false_words(word):
    env = {f.metadata["env"]: word for f in _bool_fields()}
    s = Settings.parse(env)
    assert all(getattr(s, f.name) is False for f in _bool_fields())


@pytest.mark.parametrize("env", [f.metadata["env"] for f in Settings.__dataclass_fields__.values()
                                 if f.type == "bool"])  # fmt: skip
def test_a_switch_refuses_other_words_naming_the_variable_and_the_words(env):
    with pytest.raises(ValueError, match=rf"{env} must be one of 1/true/on/yes/0/false/off/no"):
        Settings.parse({env: "enabled"})


@pytest.mark.parametrize(
    ("env", "raw"),
    [
        ("ECOMGAN_MAX_ITEMS", "lots"),
        ("ECOMGAN_MAX_ITEMS", "0"),
        ("ECOMGAN_GRPC_PORT", "-1"),
        ("ECOMGAN_REQUEST_TIMEOUT_S", "soon"),
        ("ECOMGAN_REQUEST_TIMEOUT_S", "nan"),
        ("ECOMGAN_MAX_CONCURRENCY", "1.5"),
        ("ECOMGAN_ORT_THREADS", "-2"),
        ("ECOMGAN_ENTRY_WORKERS", "two"),
        ("ECOMGAN_PRODUCTS_GENERATOR_MAX_BATCH_SIZE", "0"),
        ("ECOMGAN_SHOPPERS_DISCRIMINATOR_MAX_LATENCY_MS", "fast"),
        ("ECOMGAN_TOPOLOGY", "mesh"),
        ("ECOMGAN_PRECISION", "fp8"),
    ],
)
def test_a_bad_value_names_its_variable(env, raw):
    with pytest.raises(ValueError, match=re.escape(env)):
        Settings.parse({env: raw})


def test_families_of_variables_and_case():
    s = Settings.parse(
        {
            "ECOMGAN_GENERATOR_WORKERS": "3",
            "ECOMGAN_PRODUCTS_GENERATOR_MAX_BATCH_SIZE": "1",
            "ECOMGAN_SHOPPERS_DISCRIMINATOR_MAX_LATENCY_MS": "0",
            "ECOMGAN_TOPOLOGY": " Split ",
            "ECOMGAN_ORT_PROVIDERS": "CUDAExecutionProvider, CPUExecutionProvider,",
            "ECOMGAN_MAX_ITEMS": "",  # empty keeps the default
        }
    )
    assert s.workers_of("generator") == 3 and s.workers_of("entry") == 1
    assert s.batch_limits("products", "generator", (256, 1000)) == (1, 1000)
    assert s.batch_limits("shoppers", "discriminator", (1024, 1000)) == (1024, 0)
    assert s.topology == "split" and s.max_items == 256
    assert s.ort_providers == ("CUDAExecutionProvider", "CPUExecutionProvider")


def test_the_token_never_shows_in_repr():
    s = Settings.parse({"ECOMGAN_API_TOKEN": "s3cret-token"})
    assert s.api_token == "s3cret-token" and "s3cret" not in repr(s) and "s3cret" not in str(s)


def test_parsed_once_while_the_variables_stay(monkeypatch):
    before = Settings.from_env()
    assert Settings.from_env() is before  # cached: not parsed again per call
    monkeypatch.setenv("OTHER_VARIABLE", "x")
    assert Settings.from_env() is before  # only ECOMGAN_* variables count
    assert Settings.reload() == before and Settings.reload() is not before
    monkeypatch.setenv("ECOMGAN_MAX_ITEMS", "7")
    monkeypatch.setenv("ECOMGAN_PRODUCTS_GENERATOR_MAX_LATENCY_MS", "5")
    assert Settings.from_env().max_items == 7 and Settings.from_env() is Settings.from_env()
    family = get_family("products")
    assert services.batch_limits(family, "generator") == (family.max_batch_size["generator"], 5)


def test_service_configs_follow_the_settings(monkeypatch):
    monkeypatch.setenv("ECOMGAN_GPU", "on")
    monkeypatch.setenv("ECOMGAN_ACCESS_LOG", "no")
    monkeypatch.setenv("ECOMGAN_DISCRIMINATOR_WORKERS", "2")
    monkeypatch.setenv("ECOMGAN_REQUEST_TIMEOUT_S", "12.5")
    role = services.role_config("discriminator")
    assert role["workers"] == 2 and role["resources"] == {"gpu": 1}
    assert role["traffic"]["timeout"] == 12.5
    entry = services.entry_config()
    assert entry["logging"]["access"]["enabled"] is False and entry["workers"] == 1


def _bool_fields():
    return [f for f in Settings.__dataclass_fields__.values() if f.type == "bool"]


def readme_table() -> dict[str, tuple[str, str]]:
    """Variable -> (default, meaning) from the README's Configuration table."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    section = text.split("\n## Configuration\n", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    table = {}
    for row in rows:
        cells = [c.strip() for c in row.strip().strip("|").split("|")]
        assert len(cells) == 3, row
        table[cells[0].strip("`")] = (cells[1], cells[2])
    return table


def test_the_readme_table_lists_exactly_the_settings():
    documented_rows = {env: (default, meaning) for env, default, meaning in documented()}
    table = readme_table()
    assert set(table) - set(documented_rows) == set(), "in the README but not in Settings"
    assert set(documented_rows) - set(table) == set(), "in Settings but not in the README"
    for env, row in documented_rows.items():
        assert table[env] == row, env


def environ_reads(source: str) -> list[str]:
    """Reads of ``ECOMGAN_*`` (or of an unknown name) from ``os.environ``/``os.getenv``."""
    tree = ast.parse(source)
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == "os":
            found += [a.name for a in node.names if a.name in ("environ", "getenv")]
        if not (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id == "os"
            and node.attr in ("environ", "getenv")
        ):
            continue
        parent = parents.get(node)
        key = None
        if isinstance(parent, ast.Subscript):
            key = parent.slice
        elif isinstance(parent, ast.Call) and parent.args:
            key = parent.args[0]
        elif isinstance(parent, ast.Attribute) and isinstance(parents.get(parent), ast.Call):
            call = parents[parent]
            key = call.args[0] if call.args else None
        literal = isinstance(key, ast.Constant) and isinstance(key.value, str)
        if not literal or key.value.startswith("ECOMGAN_"):
            found.append(ast.unparse(parent or node))
    return found


def test_the_checker_finds_environment_reads():
    assert environ_reads("import os\nos.environ.get('ECOMGAN_GRPC', 'on')")
    assert environ_reads("import os\nx = os.environ[f'ECOMGAN_{r}_WORKERS']")
    assert environ_reads("import os\nos.getenv('ECOMGAN_GPU')")
    assert environ_reads("from os import environ")
    assert not environ_reads("import os\nos.environ.get('BENTOML_HOME', '~/bentoml')")


def test_only_the_settings_module_reads_ecomgan_variables():
    files = [*sorted((REPO / "serving").glob("*.py")), REPO / "service.py"]
    offenders = {
        str(path.relative_to(REPO)): reads
        for path in files
        if path.name != "settings.py"
        and (reads := environ_reads(path.read_text(encoding="utf-8")))
    }
    assert offenders == {}
