"""export.store: round trip through a private BentoML store, and atomic registration.

BentoML reads ``BENTOML_HOME`` once, when the model store is first resolved, then
caches the store for the life of the process. So a test cannot rely on setting the
environment variable alone: `bentoml_home` sets it (for subprocesses) AND overrides
the container's store with ``BentoMLContainer.model_store.patch``. The last test
checks the plain environment-variable route in a fresh process.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import bentoml
import pytest
from bentoml._internal.configuration.containers import BentoMLContainer
from bentoml._internal.models import ModelStore

from export import store

REPO = Path(store.__file__).resolve().parents[1]


@pytest.fixture
def bentoml_home(tmp_path, monkeypatch):
    home = tmp_path / "bentoml"
    (home / "models").mkdir(parents=True)
    monkeypatch.setenv("BENTOML_HOME", str(home))
    monkeypatch.setenv("BENTOML_DO_NOT_TRACK", "True")
    monkeypatch.setattr(bentoml.models, "track", lambda *a, **k: None)  # no usage analytics
    with (
        BentoMLContainer.bentoml_home.patch(str(home)),
        BentoMLContainer.model_store.patch(ModelStore(home / "models")),
    ):
        yield home


@pytest.fixture
def files(tmp_path) -> dict[str, Path]:
    out = {}
    for name, data in (("model.onnx", b"onnx bytes"), ("extra.json", b'{"k": 1}')):
        out[name] = tmp_path / f"src-{name}"
        out[name].write_bytes(data)
    return out


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


METADATA = {
    "family": "toy",
    "opset": 18,
    "diff": 1.5e-7,
    "ok": True,
    "io": {"inputs": [{"shape": (-1, 8)}]},
}


def test_round_trip(bentoml_home, files):
    tag = store.register("toy-generator", files, labels={"family": "toy"}, metadata=METADATA)
    assert tag.startswith("toy-generator:")
    model = store.latest("toy-generator")
    assert str(model.tag) == tag == str(store.get(tag).tag)
    assert model.info.labels == {"family": "toy"}
    assert model.info.metadata == json.loads(json.dumps(METADATA))  # tuples come back as lists
    for name, src in files.items():
        assert sha(store.model_file(model, name)) == sha(src)
    assert Path(model.path).is_relative_to(bentoml_home / "models")
    assert [str(m.tag) for m in bentoml.models.list()] == [tag]


def test_latest_follows_newest_and_versions_are_ordered(bentoml_home, files):
    assert store.latest("toy-generator") is None
    assert store.versions("toy-generator") == []
    first = store.register("toy-generator", files, labels={}, metadata={})
    second = store.register("toy-generator", files, labels={}, metadata={})
    assert [str(m.tag) for m in store.versions("toy-generator")] == [first, second]
    assert str(store.latest("toy-generator").tag) == second


def test_model_file_errors(bentoml_home, files):
    model = store.get(store.register("toy-generator", files, labels={}, metadata={}))
    with pytest.raises(FileNotFoundError, match="bentoml models delete"):
        store.model_file(model, "missing.onnx")
    with pytest.raises(ValueError, match="plain file name"):
        store.model_file(model, "../model.yaml")


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"metadata": {"loss": None}}, TypeError, "metadata loss is NoneType"),
        ({"metadata": {"m": {"loss": float("nan")}}}, ValueError, "metadata m.loss is nan"),
        ({"metadata": {"m": [object()]}}, TypeError, "metadata m.0 is object"),
        ({"labels": {"k": 1}}, TypeError, "labels must map str to str"),
        ({"files": {"../x.onnx": None}}, ValueError, "plain file name"),
        ({"files": {"model.onnx": Path("/nonexistent.onnx")}}, FileNotFoundError, "does not exist"),
    ],
)
def test_rejects_bad_arguments_before_writing(bentoml_home, files, kwargs, error, match):
    args = {"files": files, "labels": {}, "metadata": {}, **kwargs}
    with pytest.raises(error, match=match):
        store.register("toy-generator", args.pop("files"), **args)
    assert bentoml.models.list() == []


def no_leftovers(home: Path) -> bool:
    return not [p for p in home.iterdir() if p.name.startswith(".ecomgan-staging")]


@pytest.mark.parametrize("interrupt", [RuntimeError("disk full"), KeyboardInterrupt()])
@pytest.mark.parametrize("fail_at", [2, 4], ids=["our-copy", "bentoml-save"])
def test_failure_mid_copy_leaves_nothing_visible(
    bentoml_home, files, monkeypatch, interrupt, fail_at
):
    kept = store.register("toy-generator", files, labels={}, metadata={"v": 1})
    real_copy = store.shutil.copyfile
    copies = []

    # Copies 1-2 put the files into the model; copies 3-5 are BentoML's own save
    # (model.yaml + both files) into the store.
    def copy_then_fail(src, dst, **kwargs):
        copies.append(dst)
        if len(copies) % 5 == fail_at:
            raise interrupt
        return real_copy(src, dst, **kwargs)

    monkeypatch.setattr(store.shutil, "copyfile", copy_then_fail)
    for name in ("toy-generator", "toy-new"):
        with pytest.raises(type(interrupt)):
            store.register(name, files, labels={}, metadata={"v": 2})
        copies.clear()
    monkeypatch.undo()
    assert [str(m.tag) for m in bentoml.models.list()] == [kept]
    assert str(store.latest("toy-generator").tag) == kept
    assert store.latest("toy-new") is None
    assert no_leftovers(bentoml_home)


def test_failure_at_commit_leaves_nothing_visible(bentoml_home, files, monkeypatch):
    def fail_rename(src, dst):
        raise KeyboardInterrupt

    monkeypatch.setattr(store.os, "rename", fail_rename)
    with pytest.raises(KeyboardInterrupt):
        store.register("toy-generator", files, labels={}, metadata={})
    monkeypatch.undo()
    assert store.latest("toy-generator") is None
    assert bentoml.models.list() == []
    assert no_leftovers(bentoml_home)


def test_bentoml_home_env_in_fresh_process(tmp_path, files):
    home = tmp_path / "fresh-home"
    code = (
        "import sys; from pathlib import Path; from export import store\n"
        "tag = store.register('toy-generator', {'model.onnx': Path(sys.argv[1])}, "
        "labels={}, metadata={})\n"
        "print(store.model_file(store.get(tag), 'model.onnx'))"
    )
    env = {**os.environ, "BENTOML_HOME": str(home), "BENTOML_DO_NOT_TRACK": "True"}
    out = subprocess.run(
        [sys.executable, "-c", code, str(files["model.onnx"])],
        capture_output=True,
        text=True,
        check=True,
        env=env,
        cwd=REPO,
    )
    stored = Path(out.stdout.strip().splitlines()[-1])
    assert stored.is_relative_to(home / "models" / "toy-generator")
    assert sha(stored) == sha(files["model.onnx"])
