"""Build the bento's OCI image with podman from a local Debian base: no Docker engine, no registry.

    python deploy/containerize.py [--gpu] [--base IMAGE] [--tag NAME:TAG]

1. the base image: `deploy/podman/base-image.sh` makes it when absent, unless --base names one;
2. the bento: the shipped models are registered (`ecomgan register`), then `bentoml build` runs
   on a copy of bentofile.yaml (bentofile-gpu.yaml with --gpu) whose `docker.base_image` is the
   base (BentoML then uses its plain template: no apt-get, no Python install), with
   ECOMGAN_TOPOLOGY=split so that the bento knows all three services (both topologies run);
3. the image: BentoML's generated Dockerfile, built by `podman build` with the host's CA bundle
   mounted read-only over the image's for the RUN steps only, and the build argument
   UV_NATIVE_TLS=1 (declared by deploy/Dockerfile.template) so that uv trusts that bundle: pip and
   uv reach the package index through this host's TLS setup. A mounted uv.toml would not do: the
   build leaves an empty file at a mount point the image lacks;
4. the check: no layer the build added may hold the CA bundle, a copy of the host's, a uv.toml,
   pip.conf or .netrc, the final file system's bundle must equal the base's, and no credential
   variable may be set; otherwise the tags are removed and the command fails.

Prints one JSON line: image, bento, size, base/bento/image build seconds. Docker users keep
`bentoml containerize` (see deploy/k8s/README.md).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
PODMAN_DIR = REPO / "deploy" / "podman"
DEFAULT_BASE = "localhost/ecomgan-base:bookworm-py3.11"
HOST_CA = Path("/etc/ssl/certs/ca-certificates.crt")
IMAGE_CA = "/etc/ssl/certs/ca-certificates.crt"
UV_TOML = "/etc/uv/uv.toml"
# Files a build must never leave behind (the build-time mounts, package-index credentials).
FORBIDDEN = (UV_TOML, "/etc/pip.conf", "/root/.netrc", "/root/.config/pip/pip.conf")
SECRET_ENV = re.compile(r"TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL|API_KEY|AUTH", re.I)
APT_HINT = "apt-get install podman buildah mmdebstrap runc catatonit"


class BuildError(RuntimeError):
    """A step failed; the message is the one line to show."""


def podman_env() -> dict[str, str]:
    """This process's environment with the project's containers.conf unless one is set."""
    env = dict(os.environ)
    env.setdefault("CONTAINERS_CONF", str(PODMAN_DIR / "containers.conf"))
    env.setdefault("BENTOML_DO_NOT_TRACK", "true")
    return env


def run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    """Run a command; raise BuildError with its last output lines when it fails."""
    kw.setdefault("env", podman_env())
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, **kw)
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-25:])
        raise BuildError(f"{' '.join(cmd[:4])} ... exited {proc.returncode}:\n{tail}")
    return proc


def require_podman() -> None:
    """Fail in one line, naming the packages, when podman is missing."""
    if not shutil.which("podman"):
        raise BuildError(f"podman not found; install it: {APT_HINT}")


def ensure_base(base: str | None) -> tuple[str, float]:
    """The base image to build FROM, made when absent; (reference, seconds spent making it)."""
    start = time.monotonic()
    if base:
        if subprocess.run(["podman", "image", "exists", base], env=podman_env()).returncode:
            raise BuildError(f"base image {base} is not in podman's storage")
        return base, 0.0
    run(["bash", str(PODMAN_DIR / "base-image.sh"), DEFAULT_BASE])
    return DEFAULT_BASE, time.monotonic() - start


def build_bento(bentofile: Path, base: str) -> str:
    """`bentoml build` of `bentofile` pointed at `base`; returns the bento tag."""
    config = yaml.safe_load(bentofile.read_text())
    docker = config.setdefault("docker", {})
    docker["base_image"] = base
    docker.pop("cuda_version", None)  # a CUDA base image cannot be fetched here
    docker.pop("distro", None)
    python = [sys.executable]
    run([*python, "-m", "ecomgan.cli", "register"], cwd=REPO)
    # service.py declares Generator and Discriminator as the entry's dependencies only in the
    # split topology, and the bento records the services it saw at build time: built this way,
    # the one image runs both the colocated (cpu) and the split overlays.
    env = {**podman_env(), "ECOMGAN_TOPOLOGY": "split"}
    with tempfile.TemporaryDirectory() as tmp:
        local = Path(tmp, "bentofile.yaml")
        local.write_text(yaml.safe_dump(config, sort_keys=False))
        # Relative paths in the bentofile resolve against the build context, the repo.
        proc = run(
            [*python, "-m", "bentoml", "build", "-f", str(local), str(REPO), "--output", "tag"],
            cwd=REPO,
            env=env,
        )
    return proc.stdout.strip().splitlines()[-1].removeprefix("__tag__:")


RENDER = """
import os, shutil, sys
import bentoml
from bentoml._internal.container import construct_containerfile
with construct_containerfile(bentoml.get(sys.argv[1]), enable_buildkit=False) as (ctx, _):
    shutil.copytree(ctx, sys.argv[2], symlinks=True, dirs_exist_ok=True)
"""


def build_context(bento: str, dest: Path) -> Path:
    """The bento's build context (models included) with BentoML's Dockerfile, copied to `dest`.

    Rendered with cwd=/: BentoML 1.4.36+ refuses a dockerfile_template outside the working
    directory when it renders from its temporary context (bentoml/BentoML#5566).
    """
    run([sys.executable, "-c", RENDER, bento, str(dest)], cwd="/")
    return dest / "env" / "docker" / "Dockerfile"


def podman_build(context: Path, dockerfile: Path, tags: list[str], cache: bool = True) -> None:
    """Build with the host CA bundle mounted read-only for RUN steps only."""
    if not HOST_CA.is_file():
        raise BuildError(f"{HOST_CA} not found (Debian's ca-certificates package)")
    cmd = [
        "podman",
        "build",
        "--layers",
        "--format",
        "oci",
        "-f",
        str(dockerfile),
        "-v",
        f"{HOST_CA}:{IMAGE_CA}:ro",
        "--build-arg",
        "UV_NATIVE_TLS=1",
    ]
    if not cache:
        cmd.append("--no-cache")
    for t in tags:
        cmd += ["-t", t]
    run([*cmd, str(context)])


def in_image(image: str, script: str) -> str:
    """stdout of `sh -c script` as root in a throwaway container of `image` (no network)."""
    cmd = ["podman", "run", "--rm", "--network", "none", "--user", "0", "--entrypoint", "sh"]
    return run([*cmd, image, "-c", script]).stdout


def layer_dirs(image: str) -> list[Path]:
    """The directories of the image's layers in podman's overlay storage ([] if not overlay)."""
    data = json.loads(run(["podman", "image", "inspect", image]).stdout)[0]["GraphDriver"]
    dirs = [data["Data"].get("UpperDir", ""), *data["Data"].get("LowerDir", "").split(":")]
    return [Path(d) for d in dirs if d and Path(d).is_dir()]


def _same_file(path: Path, size: int, digest: str) -> bool:
    if path.is_symlink() or not path.is_file() or path.stat().st_size != size:
        return False
    return hashlib.sha256(path.read_bytes()).hexdigest() == digest


def baked_files(image: str, base: str) -> list[str]:
    """What of the build's mounts or credentials the image holds ([] = clean).

    Two looks: each layer the build added, file by file (a file written by one step and
    deleted by a later one is still in a layer), and the image's final file system.
    """
    host = HOST_CA.read_bytes()
    size, digest = len(host), hashlib.sha256(host).hexdigest()
    found = []
    base_layers = set(layer_dirs(base))
    for layer in layer_dirs(image):
        if layer in base_layers:
            continue
        for root, _, files in os.walk(layer):
            for name in files:
                path = Path(root, name)
                rel = "/" + str(path.relative_to(layer))
                # The bundle itself must not change: mounted over it, never written.
                if rel in FORBIDDEN or rel == IMAGE_CA or _same_file(path, size, digest):
                    found.append(rel)
    sha = f"sha256sum {IMAGE_CA}"
    if in_image(image, sha) != in_image(base, sha):
        found.append(IMAGE_CA)
    listing = in_image(
        image,
        f"ls {' '.join(FORBIDDEN)} 2>/dev/null; find / -xdev -type f -size {size}c "
        f"-exec sha256sum {{}} + 2>/dev/null | grep {digest} || true",
    ).split()
    found += [p for p in listing if p.startswith("/") and p != IMAGE_CA or p in FORBIDDEN]
    envs = json.loads(run(["podman", "image", "inspect", image]).stdout)[0]["Config"]["Env"]
    found += [e.split("=")[0] for e in envs if SECRET_ENV.search(e.split("=")[0])]
    return sorted(set(found))


def image_size(image: str) -> int:
    """Bytes of the image in podman's storage (all layers)."""
    return int(run(["podman", "image", "inspect", "--format", "{{.Size}}", image]).stdout)


def project_version() -> str:
    """The version in pyproject.toml: the fixed tag the manifests reference."""
    m = re.search(r'^version = "([^"]+)"', (REPO / "pyproject.toml").read_text(), re.M)
    assert m, "pyproject.toml has no version"
    return m[1]


def containerize(gpu: bool, base: str | None, tag: str | None, cache: bool = True) -> dict:
    """Steps 1-4 of the module docstring; returns what was built and how long it took."""
    require_podman()
    base, base_s = ensure_base(base)
    name = "ecomgan-gpu" if gpu else "ecomgan"
    tags = [tag] if tag else [f"{name}:{project_version()}", f"{name}:latest"]
    start = time.monotonic()
    bento = build_bento(REPO / ("bentofile-gpu.yaml" if gpu else "bentofile.yaml"), base)
    bento_s = time.monotonic() - start
    start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="ecomgan-ctx-") as tmp:
        context = Path(tmp, "ctx")
        podman_build(context, build_context(bento, context), tags, cache)
    image_s = time.monotonic() - start
    baked = baked_files(tags[0], base)
    if baked:
        run(["podman", "rmi", *tags])
        raise BuildError(f"refusing {tags[0]}: build-time files or credentials in it: {baked}")
    return {
        "image": tags[0],
        "tags": tags,
        "bento": bento,
        "base": base,
        "size_bytes": image_size(tags[0]),
        "base_build_s": round(base_s, 1),
        "bento_build_s": round(bento_s, 1),
        "image_build_s": round(image_s, 1),
    }


def main(argv: list[str] | None = None) -> int:
    """CLI entry point."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--gpu", action="store_true", help="build bentofile-gpu.yaml")
    parser.add_argument(
        "--base", help=f"base image in podman's storage (default: {DEFAULT_BASE}, made when absent)"
    )
    parser.add_argument("--tag", help="image tag (default: NAME:VERSION and NAME:latest)")
    parser.add_argument("--no-cache", action="store_true", help="rebuild every layer")
    args = parser.parse_args(argv)
    try:
        print(json.dumps(containerize(args.gpu, args.base, args.tag, not args.no_cache)))
    except BuildError as exc:
        print(f"containerize: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
