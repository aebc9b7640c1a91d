"""deploy/kube_play.py: what the rendered overlays become for `podman kube play`."""

from __future__ import annotations

import pytest
import yaml

from deploy.kube_play import main, pod_name, scratch_volumes, service_targets, transform
from tests.integration.test_deploy import container, of_kind, render

IMAGE = "localhost/ecomgan:9.9.9"


def played(overlay: str, publish=None) -> list[dict]:
    return transform(render(overlay), IMAGE, publish)


@pytest.mark.parametrize("overlay", ["cpu", "split", "gpu"])
def test_only_deployments_remain_one_replica_each_with_the_local_image(overlay):
    objs = render(overlay)
    docs = played(overlay)
    assert [d["kind"] for d in docs] == ["Deployment"] * len(of_kind(objs, "Deployment"))
    for d in docs:
        assert d["spec"]["replicas"] == 1
        assert "namespace" not in d["metadata"]
        c = container(d)
        assert c["image"] == IMAGE and c["imagePullPolicy"] == "IfNotPresent"
        assert not {"livenessProbe", "readinessProbe", "startupProbe"} & set(c)
    # The input is left as it was.
    assert all(container(d)["image"] != IMAGE for d in of_kind(objs, "Deployment").values())


def test_hardening_survives_the_transformation():
    (rendered,) = of_kind(render("cpu"), "Deployment").values()
    (dep,) = played("cpu")
    for key in ("securityContext", "resources", "env", "command", "lifecycle"):
        assert container(dep)[key] == container(rendered)[key], key
    spec, before = dep["spec"]["template"]["spec"], rendered["spec"]["template"]["spec"]
    assert spec["securityContext"] == before["securityContext"]
    assert spec["terminationGracePeriodSeconds"] == before["terminationGracePeriodSeconds"]


def test_ports_are_published_on_loopback_only_and_unpublished_ones_dropped():
    docs = played("split", {"ecomgan": {3000: 18000, 3001: 18001}})
    deps = {d["metadata"]["name"]: d for d in docs}
    assert container(deps["ecomgan"])["ports"] == [
        {
            "name": "http",
            "containerPort": 3000,
            "protocol": "TCP",
            "hostPort": 18000,
            "hostIP": "127.0.0.1",
        },
        {
            "name": "grpc",
            "containerPort": 3001,
            "protocol": "TCP",
            "hostPort": 18001,
            "hostIP": "127.0.0.1",
        },
    ]
    # Podman would publish these on every host address at their own port.
    for name in ("ecomgan-generator", "ecomgan-discriminator"):
        assert "ports" not in container(deps[name]), name


def test_publishing_an_unknown_deployment_or_port_fails():
    with pytest.raises(ValueError, match="no Deployment"):
        played("cpu", {"nope": {3000: 1}})
    with pytest.raises(ValueError, match="no containerPort"):
        played("cpu", {"ecomgan": {4000: 1}})


def test_split_dependencies_point_at_the_pods_on_podmans_network():
    objs = render("split")
    assert service_targets(objs) == {
        "ecomgan": "ecomgan",
        "ecomgan-generator": "ecomgan-generator",
        "ecomgan-discriminator": "ecomgan-discriminator",
    }
    (entry,) = [d for d in played("split") if d["metadata"]["name"] == "ecomgan"]
    command = container(entry)["command"]
    depends = [command[i + 1] for i, a in enumerate(command) if a == "--depends"]
    assert depends == [
        f"Generator=http://{pod_name('ecomgan-generator')}:3000",
        f"Discriminator=http://{pod_name('ecomgan-discriminator')}:3000",
    ]


def test_scratch_volumes_get_one_name_per_deployment():
    docs = played("split")
    names = scratch_volumes(docs)
    assert names == sorted(f"{d['metadata']['name']}-tmp" for d in docs)
    for d in docs:
        mounts = {m["name"]: m["mountPath"] for m in container(d)["volumeMounts"]}
        assert mounts == {f"{d['metadata']['name']}-tmp": "/tmp"}


def test_cli_reads_rendered_yaml_and_writes_playable_yaml(monkeypatch, capsys):
    import io

    monkeypatch.setattr("sys.stdin", io.StringIO(yaml.safe_dump_all(render("cpu"))))
    assert main(["--image", IMAGE, "--publish", "ecomgan:3000=18000"]) == 0
    (dep,) = list(yaml.safe_load_all(capsys.readouterr().out))
    assert container(dep)["ports"][0]["hostPort"] == 18000
    assert [p["containerPort"] for p in container(dep)["ports"]] == [3000]
