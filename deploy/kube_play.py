"""Turn a rendered overlay (`kubectl kustomize deploy/k8s/OVERLAY`) into what `podman kube play`
can run on one machine, changing only what podman cannot do:

- Services, HorizontalPodAutoscalers, PodDisruptionBudgets, NetworkPolicies and the Namespace
  are dropped (podman ignores or rejects them); so is `metadata.namespace`.
- each Deployment runs one replica; its image may be replaced by a local tag, pulled only when
  absent (`imagePullPolicy: IfNotPresent`: the image is in podman's storage, not a registry).
- probes are dropped: podman 4.3 ignores readiness and startup probes and runs liveness probes
  through systemd timers this host lacks; the caller polls `/readyz` instead.
- a Service name in an entry's `--depends` URL becomes the pod's name on podman's network
  (`<deployment>-pod-0`, resolved by podman's DNS on a network created with DNS enabled).
- emptyDir volumes are renamed `<deployment>-<volume>`: podman 4.3 makes each a named volume of
  the same name, which the pods of several Deployments would otherwise share (remove them with
  `podman volume rm` after `podman kube down`).
- container ports are published on loopback only (`hostIP: 127.0.0.1`, `hostPort` from the
  caller's mapping), and the others are dropped: on a bridge network podman 4.3 publishes a
  `containerPort` without `hostPort` on the same port of every host address.

    kubectl kustomize deploy/k8s/cpu | python deploy/kube_play.py --image localhost/ecomgan:0.1.0 \\
        --publish ecomgan:3000=13000 --publish ecomgan:3001=13001 > play.yaml
    podman kube play --network ecomgan-play play.yaml   ...   podman kube down play.yaml
"""

from __future__ import annotations

import argparse
import copy
import re
import sys
from collections.abc import Iterable

import yaml

PLAYED = {"Deployment", "ConfigMap"}
PROBES = ("livenessProbe", "readinessProbe", "startupProbe")
_URL = re.compile(r"^(?P<dep>\w+)=http://(?P<host>[a-z0-9-]+):(?P<port>\d+)$")


def pod_name(deployment: str) -> str:
    """The pod (and DNS) name `podman kube play` (4.3) gives a Deployment's one pod."""
    return f"{deployment}-pod-0"


def service_targets(docs: Iterable[dict]) -> dict[str, str]:
    """Service name -> name of the Deployment whose pods it selects."""
    docs = list(docs)
    deployments = [d for d in docs if d["kind"] == "Deployment"]
    out = {}
    for svc in (d for d in docs if d["kind"] == "Service"):
        selector = svc["spec"].get("selector", {})
        for dep in deployments:
            labels = dep["spec"]["template"]["metadata"].get("labels", {})
            if selector and all(labels.get(k) == v for k, v in selector.items()):
                out[svc["metadata"]["name"]] = dep["metadata"]["name"]
    return out


def _rewrite_depends(command: list[str], targets: dict[str, str]) -> list[str]:
    """--depends X=http://SERVICE:PORT -> X=http://<deployment>-pod:PORT."""
    out = list(command)
    for i, arg in enumerate(out[:-1]):
        m = _URL.match(out[i + 1]) if arg == "--depends" else None
        if m and m["host"] in targets:
            out[i + 1] = f"{m['dep']}=http://{pod_name(targets[m['host']])}:{m['port']}"
    return out


def transform(
    docs: Iterable[dict],
    image: str | None = None,
    publish: dict[str, dict[int, int]] | None = None,
) -> list[dict]:
    """The playable objects of `docs` (see the module docstring).

    publish: Deployment name -> {containerPort: hostPort} to publish on 127.0.0.1.
    """
    docs = [d for d in docs if d]
    targets = service_targets(docs)
    publish = publish or {}
    unknown = set(publish) - {d["metadata"]["name"] for d in docs if d["kind"] == "Deployment"}
    if unknown:
        raise ValueError(f"no Deployment named {sorted(unknown)} to publish ports of")
    out = []
    for doc in docs:
        if doc["kind"] not in PLAYED:
            continue
        doc = copy.deepcopy(doc)
        doc["metadata"].pop("namespace", None)
        if doc["kind"] == "Deployment":
            name = doc["metadata"]["name"]
            doc["spec"]["replicas"] = 1
            ports = dict(publish.get(name, {}))
            pod = doc["spec"]["template"]["spec"]
            scratch = {v["name"] for v in pod.get("volumes", []) if "emptyDir" in v}
            for v in pod.get("volumes", []):
                if v["name"] in scratch:
                    v["name"] = f"{name}-{v['name']}"
            for c in pod["containers"]:
                for m in c.get("volumeMounts", []):
                    if m["name"] in scratch:
                        m["name"] = f"{name}-{m['name']}"
                for probe in PROBES:
                    c.pop(probe, None)
                if image:
                    c["image"] = image
                c["imagePullPolicy"] = "IfNotPresent"
                if "command" in c:
                    c["command"] = _rewrite_depends(c["command"], targets)
                kept = []
                for p in c.get("ports", []):
                    if p["containerPort"] in ports:
                        kept.append(
                            {**p, "hostPort": ports.pop(p["containerPort"]), "hostIP": "127.0.0.1"}
                        )
                if kept:
                    c["ports"] = kept
                else:
                    c.pop("ports", None)
            if ports:
                raise ValueError(f"{name} declares no containerPort {sorted(ports)}")
        out.append(doc)
    return out


def scratch_volumes(played: Iterable[dict]) -> list[str]:
    """The podman volume names the played emptyDirs become (to remove after `kube down`)."""
    return sorted(
        v["name"]
        for d in played
        if d["kind"] == "Deployment"
        for v in d["spec"]["template"]["spec"].get("volumes", [])
        if "emptyDir" in v
    )


def _publish_arg(value: str) -> tuple[str, int, int]:
    """DEPLOYMENT:CONTAINERPORT=HOSTPORT."""
    m = re.fullmatch(r"([a-z0-9-]+):(\d+)=(\d+)", value)
    if not m:
        raise argparse.ArgumentTypeError(f"expected DEPLOYMENT:PORT=HOSTPORT, got {value!r}")
    return m[1], int(m[2]), int(m[3])


def main(argv: list[str] | None = None) -> int:
    """Read rendered manifests on stdin, write playable ones on stdout."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--image", help="image reference to run instead of the manifests'")
    parser.add_argument(
        "--publish",
        action="append",
        type=_publish_arg,
        default=[],
        help="DEPLOYMENT:CONTAINERPORT=HOSTPORT, published on 127.0.0.1",
    )
    args = parser.parse_args(argv)
    publish: dict[str, dict[int, int]] = {}
    for dep, container_port, host_port in args.publish:
        publish.setdefault(dep, {})[container_port] = host_port
    docs = transform(yaml.safe_load_all(sys.stdin), args.image, publish)
    yaml.safe_dump_all(docs, sys.stdout, sort_keys=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
