"""Deployment artifacts, checked offline: the Kubernetes overlays in deploy/k8s (rendered by
kustomize, validated against the Kubernetes OpenAPI schemas), both bentos' builds and the
Dockerfiles BentoML generates for them. tests/integration/test_container.py builds and runs the
image and plays the cpu overlay with podman."""

from __future__ import annotations

import functools
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import kubernetes_validate
import pytest
import yaml
from bentoml._internal.container.generate import BENTO_PATH

from ecomgan.families import model_names
from tests.conftest import REPO, base_env

pytestmark = pytest.mark.integration

K8S = REPO / "deploy" / "k8s"
OVERLAYS = ("cpu", "split", "gpu")
VERSION = re.search(r'^version = "([^"]+)"', (REPO / "pyproject.toml").read_text(), re.M)[1]
# A fixed tag, the one deploy/containerize.py gives the images: the project version.
IMAGES = {"cpu": f"ecomgan:{VERSION}", "split": f"ecomgan:{VERSION}"}
IMAGES["gpu"] = f"ecomgan-gpu:{VERSION}"
NAMESPACE = "ecomgan"
# Native gRPC probes are GA since Kubernetes 1.27; 1.37 is the newest kubernetes-validate ships.
SCHEMA_VERSIONS = ("1.27", "1.37")
HTTP_PORT, GRPC_PORT = 3000, 3001
PROBE_HANDLERS = ("exec", "httpGet", "tcpSocket", "grpc")


@functools.cache
def render(overlay: str) -> tuple[dict, ...]:
    """The objects of an overlay, as `kustomize build` (or `kubectl kustomize`) renders them."""
    if shutil.which("kustomize"):
        cmd = ["kustomize", "build"]
    elif shutil.which("kubectl"):
        cmd = ["kubectl", "kustomize"]
    else:
        pytest.fail("rendering deploy/k8s needs kustomize or kubectl (kustomize >= 3.7) on PATH")
    proc = subprocess.run(
        [*cmd, str(K8S / overlay)], capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 0, f"{' '.join(cmd)} {overlay}: {proc.stderr}"
    return tuple(doc for doc in yaml.safe_load_all(proc.stdout) if doc)


def of_kind(objs, kind: str) -> dict[str, dict]:
    return {o["metadata"]["name"]: o for o in objs if o["kind"] == kind}


def container(deployment: dict) -> dict:
    (only,) = deployment["spec"]["template"]["spec"]["containers"]
    return only


def pod_labels(deployment: dict) -> dict:
    return deployment["spec"]["template"]["metadata"]["labels"]


def selects(selector: dict, labels: dict) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


def env_of(c: dict) -> dict[str, str]:
    return {e["name"]: e["value"] for e in c.get("env", [])}


def ports_of(c: dict) -> dict[str, int]:
    return {p["name"]: p["containerPort"] for p in c.get("ports", [])}


def server_options(command: list[str]) -> tuple[dict[str, list[str]], list[str]]:
    """`--opt value` pairs (repeatable) and positional arguments of a bentoml server command."""
    opts: dict[str, list[str]] = {}
    positional = []
    args = iter(command)
    for arg in args:
        if arg.startswith("--"):
            opts.setdefault(arg, []).append(next(args))
        else:
            positional.append(arg)
    return opts, positional


def service_name(deployment: dict) -> str:
    """The BentoML service a Deployment runs ("" = the whole bento)."""
    opts, _ = server_options(container(deployment)["command"])
    return opts.get("--service-name", [""])[0]


@pytest.mark.parametrize("version", SCHEMA_VERSIONS)
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_objects_match_the_kubernetes_schemas(overlay, version):
    objs = render(overlay)
    assert {o["kind"] for o in objs} == {
        "Namespace",
        "NetworkPolicy",
        "Deployment",
        "Service",
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
    }
    errors = []
    for obj in objs:
        try:
            # strict: unknown fields (typos) fail too.
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            where = ".".join(str(p) for p in exc.path)
            errors.append(f"{obj['kind']}/{obj['metadata']['name']} {where}: {exc.message}")
    assert not errors, "\n".join(errors)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_deployment_has_a_service_autoscaler_and_disruption_budget(overlay):
    objs = render(overlay)
    services, hpas = of_kind(objs, "Service"), of_kind(objs, "HorizontalPodAutoscaler")
    pdbs = of_kind(objs, "PodDisruptionBudget")
    for name, dep in of_kind(objs, "Deployment").items():
        labels = pod_labels(dep)
        assert selects(dep["spec"]["selector"]["matchLabels"], labels)
        # The autoscaler owns the replica count; a fixed one would be reset on every apply.
        assert "replicas" not in dep["spec"], name
        (svc,) = [s for s in services.values() if selects(s["spec"]["selector"], labels)]
        http = {p["name"]: p for p in svc["spec"]["ports"]}["http"]
        assert (http["port"], http["targetPort"]) == (HTTP_PORT, "http")
        (hpa,) = [h for h in hpas.values() if h["spec"]["scaleTargetRef"]["name"] == name]
        assert hpa["apiVersion"] == "autoscaling/v2"
        assert hpa["spec"]["scaleTargetRef"]["kind"] == "Deployment"
        assert hpa["spec"]["minReplicas"] >= 2  # one pod can drain while another serves
        assert [m["resource"]["name"] for m in hpa["spec"]["metrics"]] == ["cpu"]
        assert hpa["spec"]["metrics"][0]["resource"]["target"]["type"] == "Utilization"
        (pdb,) = [p for p in pdbs.values() if selects(p["spec"]["selector"]["matchLabels"], labels)]
        assert pdb["apiVersion"] == "policy/v1"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_pods_are_probed_and_hardened(overlay):
    for name, dep in of_kind(render(overlay), "Deployment").items():
        pod = dep["spec"]["template"]
        spec, c = pod["spec"], container(dep)
        assert c["image"] == IMAGES[overlay]
        assert ports_of(c)["http"] == HTTP_PORT
        for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
            # Kubernetes rejects a probe with two handlers; the schema does not.
            assert len([h for h in PROBE_HANDLERS if h in c[probe]]) == 1, (name, probe)
        assert c["livenessProbe"]["httpGet"] == {"path": "/livez", "port": "http"}
        assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
        startup = c["startupProbe"]
        assert startup["failureThreshold"] * startup["periodSeconds"] >= 120, name
        for kind in ("requests", "limits"):
            assert {"cpu", "memory"} <= set(c["resources"][kind]), (name, kind)

        assert spec["securityContext"]["runAsNonRoot"] is True
        # Above the uids of a node's own accounts; the image's user (see the Dockerfile test).
        assert spec["securityContext"]["runAsUser"] >= 10000
        sc = c["securityContext"]
        assert sc["allowPrivilegeEscalation"] is False
        assert sc["capabilities"]["drop"] == ["ALL"]
        assert sc["readOnlyRootFilesystem"] is True
        scratch = {v["name"] for v in spec["volumes"] if "emptyDir" in v}
        writable = [m["mountPath"] for m in c["volumeMounts"] if m["name"] in scratch]
        assert "/tmp" in writable
        home = env_of(c)["BENTOML_HOME"]
        assert any(Path(home).is_relative_to(p) for p in writable), home

        ann = pod["metadata"]["annotations"]
        assert ann["prometheus.io/scrape"] == "true"
        assert ann["prometheus.io/port"] == str(HTTP_PORT)
        assert ann["prometheus.io/path"] == "/metrics"
        sleep, seconds = c["lifecycle"]["preStop"]["exec"]["command"]
        assert sleep == "sleep"
        longest_request = float(env_of(c).get("ECOMGAN_REQUEST_TIMEOUT_S", "30"))
        assert spec["terminationGracePeriodSeconds"] > int(seconds) + longest_request


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_only_the_entry_serves_grpc(overlay):
    objs = render(overlay)
    deployments = of_kind(objs, "Deployment")
    entry = deployments.pop("ecomgan")
    c = container(entry)
    assert service_name(entry) in ("", "EcomGAN")
    assert ports_of(c)["grpc"] == GRPC_PORT
    assert env_of(c)["ECOMGAN_GRPC_PORT"] == str(GRPC_PORT)
    assert c["startupProbe"]["grpc"]["port"] == GRPC_PORT
    svc = of_kind(objs, "Service")["ecomgan"]
    assert {p["name"]: (p["port"], p["targetPort"]) for p in svc["spec"]["ports"]} == {
        "http": (HTTP_PORT, "http"),
        "grpc": (GRPC_PORT, "grpc"),
    }
    for name, dep in deployments.items():
        assert GRPC_PORT not in ports_of(container(dep)).values(), name
    for name, svc in of_kind(objs, "Service").items():
        if name != "ecomgan":
            assert [p["name"] for p in svc["spec"]["ports"]] == ["http"], name


def test_cpu_runs_the_whole_bento_in_each_pod():
    (dep,) = of_kind(render("cpu"), "Deployment").values()
    command = container(dep)["command"]
    assert command[:2] == ["bentoml", "serve"]
    assert server_options(command)[1][-1] == BENTO_PATH


@pytest.mark.parametrize("overlay", ["split", "gpu"])
def test_split_runs_one_bentoml_service_per_deployment(overlay):
    objs = render(overlay)
    deployments = of_kind(objs, "Deployment")
    for kind in ("Deployment", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget"):
        assert len(of_kind(objs, kind)) == 3, kind
    by_service = {service_name(d): d for d in deployments.values()}
    assert set(by_service) == {"EcomGAN", "Generator", "Discriminator"}
    for dep in deployments.values():
        command = container(dep)["command"]
        assert command[:4] == ["python", "-m", "bentoml_cli._internal.start", "start-http-server"]
        assert server_options(command)[1][-1] == BENTO_PATH
    # Each --depends URL names the Service in front of the Deployment running that service.
    opts, _ = server_options(container(by_service["EcomGAN"])["command"])
    depends = dict(d.split("=", 1) for d in opts["--depends"])
    assert set(depends) == {"Generator", "Discriminator"}
    for dependency, url in depends.items():
        m = re.fullmatch(r"http://([a-z0-9-]+):(\d+)", url)
        assert m, url
        svc = of_kind(objs, "Service")[m[1]]
        assert selects(svc["spec"]["selector"], pod_labels(by_service[dependency]))
        assert int(m[2]) in [p["port"] for p in svc["spec"]["ports"]]


def test_gpu_overlay_gives_each_model_pod_a_gpu():
    for name, dep in of_kind(render("gpu"), "Deployment").items():
        spec, resources = dep["spec"]["template"]["spec"], container(dep)["resources"]
        tolerations = spec.get("tolerations", [])
        if service_name(dep) == "EcomGAN":
            assert "nvidia.com/gpu" not in resources["limits"] and not tolerations, name
            continue
        assert resources["requests"]["nvidia.com/gpu"] == resources["limits"]["nvidia.com/gpu"]
        assert resources["limits"]["nvidia.com/gpu"] == "1", name
        assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in (
            tolerations
        )
        assert "nvidia.com" in json.dumps([spec.get("affinity"), spec.get("nodeSelector")])
    for overlay in ("cpu", "split"):
        assert "nvidia.com/gpu" not in yaml.safe_dump_all(render(overlay)), overlay


# The Dockerfiles BentoML would build. `bentoml containerize` renders them in a temporary build
# context that, in BentoML 1.4.36+, must lie below the working directory when the bento has a
# dockerfile_template (bentoml/BentoML#5566), hence cwd="/" (the same workaround as
# `cd / && bentoml containerize ...`).
RENDER_DOCKERFILES = """
import json, sys
from pathlib import Path
import bentoml
from bentoml._internal.container import construct_containerfile

out = {}
for tag in sys.argv[1:]:
    bento = bentoml.get(tag)
    with construct_containerfile(bento, enable_buildkit=False) as (ctx, dockerfile):
        out[tag] = {
            "dockerfile": Path(dockerfile).read_text(),
            "models": sorted(
                str(p.relative_to(ctx)) for p in Path(ctx).glob("models/*/*/model.onnx")
            ),
            "requirements": Path(ctx, "env/python/requirements.txt").read_text(),
            "envs": {e["name"]: e["value"] for e in bento.info.to_dict()["envs"]},
        }
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def bentos(shipped_home: Path) -> dict[str, dict]:
    """Build both bentos into the shipped-models home; return what their images would hold."""
    env = base_env(shipped_home)
    tags = {}
    for kind, bentofile in (("cpu", "bentofile.yaml"), ("gpu", "bentofile-gpu.yaml")):
        proc = subprocess.run(
            [sys.executable, "-m", "bentoml", "build", "-f", bentofile, "--output", "tag"],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert proc.returncode == 0, f"bentoml build -f {bentofile}:\n{proc.stdout}{proc.stderr}"
        tags[kind] = proc.stdout.strip().splitlines()[-1].removeprefix("__tag__:")
    proc = subprocess.run(
        [sys.executable, "-c", RENDER_DOCKERFILES, *tags.values()],
        cwd="/",
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    rendered = json.loads(proc.stdout.strip().splitlines()[-1])
    return {kind: rendered[tag] for kind, tag in tags.items()}


def container_pod_uid() -> int:
    (uid,) = {
        d["spec"]["template"]["spec"]["securityContext"]["runAsUser"]
        for o in OVERLAYS
        for d in of_kind(render(o), "Deployment").values()
    }
    return uid


def instructions(dockerfile: str, keyword: str) -> list[str]:
    return [
        line.split(None, 1)[1].strip()
        for line in dockerfile.splitlines()
        if line.startswith(keyword + " ")
    ]


@pytest.mark.parametrize("kind", ["cpu", "gpu"])
def test_dockerfile_exposes_both_ports_and_runs_as_the_pod_user(bentos, kind):
    bento = bentos[kind]
    dockerfile = bento["dockerfile"]
    assert {str(HTTP_PORT), str(GRPC_PORT)} <= set(instructions(dockerfile, "EXPOSE"))
    assert f"ECOMGAN_GRPC_PORT={GRPC_PORT}" in instructions(dockerfile, "ENV")
    user = instructions(dockerfile, "USER")[-1]
    assert user not in ("root", "0")
    # The uid the Kubernetes pods run as.
    assert f"BENTO_USER={user}" in instructions(dockerfile, "ARG")
    assert f"BENTO_USER_UID={container_pod_uid()}" in instructions(dockerfile, "ARG")
    assert instructions(dockerfile, "WORKDIR") == ["$BENTO_PATH"]
    assert f"BENTO_PATH={BENTO_PATH}" in instructions(dockerfile, "ARG")
    # The image carries its models: the build context holds every family's ONNX files.
    assert [m.split("/")[1] for m in bento["models"]] == sorted(model_names())
    assert bento["envs"]["ECOMGAN_SKIP_SHIPPED"] == "1"


def requirement_names(requirements: str) -> set[str]:
    names = set()
    for line in requirements.splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            names.add(re.split(r"[\s\[<>=!~;]", line, maxsplit=1)[0].lower())
    return names


def test_gpu_bento_gets_cuda_from_pip_not_from_a_cuda_base_image(bentos):
    gpu, cpu = bentos["gpu"], bentos["cpu"]
    # Both build FROM the same (python or local Debian) base: nvidia/cuda images cannot be
    # fetched everywhere, and CUDA + cuDNN come as pip wheels instead.
    assert instructions(gpu["dockerfile"], "FROM") == instructions(cpu["dockerfile"], "FROM")
    assert not instructions(gpu["dockerfile"], "FROM")[0].startswith("nvidia/")
    assert gpu["envs"]["ECOMGAN_GPU"] == "1" and "ECOMGAN_GPU" not in cpu["envs"]
    assert "ECOMGAN_GPU=$ECOMGAN_GPU" in instructions(gpu["dockerfile"], "ENV")
    # Both wheels ship the `onnxruntime` module: an image must get exactly one of them.
    assert "onnxruntime-gpu" in requirement_names(gpu["requirements"])
    assert "onnxruntime" not in requirement_names(gpu["requirements"])
    assert "onnxruntime" in requirement_names(cpu["requirements"])
    assert "onnxruntime-gpu" not in requirement_names(cpu["requirements"])
    (ort,) = [r for r in gpu["requirements"].splitlines() if r.startswith("onnxruntime-gpu")]
    extras = set(re.search(r"\[([^\]]*)\]", ort)[1].replace(" ", "").split(","))
    assert {"cuda", "cudnn"} <= extras, ort
    # The pip CUDA libraries go on the loader's path after the packages are installed.
    lines = gpu["dockerfile"].splitlines()
    install = next(
        i
        for i, line in enumerate(lines)
        if "env/python/install.sh" in line or "env/python/requirements.txt" in line
    )
    ldconfig = next(i for i, line in enumerate(lines) if "ldconfig" in line)
    assert install < ldconfig


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_everything_lives_in_a_restricted_namespace(overlay):
    objs = render(overlay)
    (ns,) = of_kind(objs, "Namespace").values()
    assert ns["metadata"]["name"] == NAMESPACE
    assert ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    for o in objs:
        if o["kind"] != "Namespace":
            assert o["metadata"]["namespace"] == NAMESPACE, (o["kind"], o["metadata"]["name"])
    for name, dep in of_kind(objs, "Deployment").items():
        ref = container(dep)["image"]
        assert not ref.endswith(":latest") and ":" in ref, (name, ref)


def policies_for(objs, labels: dict) -> list[dict]:
    return [
        p
        for p in of_kind(objs, "NetworkPolicy").values()
        if selects(p["spec"]["podSelector"]["matchLabels"], labels)
    ]


def admits(rule: dict, labels: dict) -> bool:
    """Whether an ingress rule's `from` admits pods with `labels` (same namespace)."""
    peers = rule.get("from")
    if not peers:
        return True  # no `from`: every source
    return any(
        "podSelector" in p and selects(p["podSelector"].get("matchLabels", {}), labels)
        for p in peers
    )


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_network_policies_isolate_every_pod(overlay):
    objs = render(overlay)
    deployments = of_kind(objs, "Deployment")
    entry_labels = pod_labels(deployments["ecomgan"])
    for name, dep in deployments.items():
        labels = pod_labels(dep)
        (policy,) = policies_for(objs, labels)
        assert set(policy["spec"]["policyTypes"]) == {"Ingress", "Egress"}, name
        ingress = policy["spec"]["ingress"]
        ports = {p["port"] for rule in ingress for p in rule["ports"]}
        if name == "ecomgan":
            # The public entry: anyone, on its two ports only.
            assert ports == {HTTP_PORT, GRPC_PORT}
            assert all(admits(rule, {"anything": "x"}) for rule in ingress)
            continue
        # Role pods take BentoML's pickled batch payloads: from entry pods only.
        assert ports == {HTTP_PORT}, name
        assert all(admits(rule, entry_labels) for rule in ingress), name
        other = {**labels, "app.kubernetes.io/component": "something-else"}
        assert not any(admits(rule, other) for rule in ingress), name
        assert not any(admits(rule, labels) for rule in ingress), name
        assert policy["spec"]["egress"] == [], name
    (entry_policy,) = policies_for(objs, entry_labels)
    egress = entry_policy["spec"]["egress"]
    if overlay == "cpu":
        assert egress == []  # the whole bento in one pod: it calls nobody
    else:
        targets = [t for rule in egress for t in rule["to"]]
        dns = [t for t in targets if t.get("podSelector", {}).get("matchLabels") == {
            "k8s-app": "kube-dns"}]
        assert dns, "the split entry resolves the role Services' names"
        roles = [t for t in targets if t not in dns]
        for role in ("generator", "discriminator"):
            assert any(
                {"key": "app.kubernetes.io/component", "operator": "In"}.items()
                <= e.items() and role in e["values"]
                for t in roles
                for e in t["podSelector"].get("matchExpressions", [])
            ), role
