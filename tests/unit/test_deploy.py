"""The deployment files hold together: the Kubernetes manifests validate against Kubernetes' own schemas
(offline), every lipstream command in them and in the compose files parses with lipstream's CLI, every
LIPSTREAM_* variable is a config field with a valid value, the ports declared are the ports the command
serves, draining fits the grace periods, and the images install through the script CI runs."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from inference_service.config import InferenceConfig
from inference_service.serving.cli import inference_config
from lipstream.cli import build_parser
from media_server.config import EdgeConfig
from media_server.metrics import EdgeMetrics
from signaling.server import edge_config

ROOT = Path(__file__).resolve().parents[2]
KUBERNETES = sorted((ROOT / "deploy" / "kubernetes").glob("*.yaml"))
COMPOSE = ROOT / "deploy" / "compose.yaml"
COMPOSE_GPU = ROOT / "deploy" / "compose.gpu.yaml"
KUBERNETES_VERSION = "1.33.0"
# What the compose file's ${...} and the manifests' secrets stand for here.
SAMPLES = {"PUBLIC_IP": "203.0.113.7", "TURN_SECRET": "sample-secret", "NODE_IP": "198.51.100.4"}


def documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def resources() -> list[dict[str, Any]]:
    return [doc for path in KUBERNETES for doc in documents(path)]


def expand(text: str, env: dict[str, str]) -> str:
    """Kubernetes' $(VAR) and compose's ${VAR[:?message]} references, with the values known here."""
    text = re.sub(r"\$\((\w+)\)", lambda m: env.get(m[1], SAMPLES.get(m[1], m[0])), text)
    return re.sub(r"\$\{(\w+)(?::\?[^}]*)?\}", lambda m: SAMPLES[m[1]], text)


@dataclass
class Container:
    where: str
    argv: list[str]  # lipstream's arguments (the images' ENTRYPOINT is `lipstream`)
    env: dict[str, str]
    ports: dict[str, tuple[int, str]]  # name (or number) -> (port, protocol)
    spec: dict[str, Any]
    host_network: bool

    @property
    def command(self) -> str:
        return self.argv[0]

    def config(self, monkeypatch: pytest.MonkeyPatch) -> EdgeConfig | InferenceConfig:
        """The config this container's command runs with, its environment and flags applied, as it builds it."""
        for name, value in self.env.items():
            monkeypatch.setenv(name, value)
        args = build_parser(self.command).parse_args(self.argv)
        return inference_config(args) if self.command == "inference" else edge_config(args)


def kubernetes_containers() -> list[Container]:
    found = []
    for doc in resources():
        if doc["kind"] not in ("Deployment", "DaemonSet", "StatefulSet"):
            continue
        for spec in doc["spec"]["template"]["spec"]["containers"]:
            if not spec["image"].startswith("lipstream"):
                continue
            env: dict[str, str] = {}
            for var in spec.get("env", []):
                env[var["name"]] = expand(var["value"], env) if "value" in var else SAMPLES["TURN_SECRET"]
            ports = {p.get("name", str(p["containerPort"])): (p["containerPort"], p["protocol"]) for p in spec["ports"]}
            where = f"{doc['metadata']['name']}/{spec['name']}"
            host = doc["spec"]["template"]["spec"].get("hostNetwork", False)
            found.append(Container(where, spec.get("command", []) + spec["args"], env, ports, spec, host))
    return found


def compose_containers() -> list[Container]:
    found = []
    for name, service in yaml.safe_load(COMPOSE.read_text())["services"].items():
        if not service["image"].startswith("lipstream"):
            continue
        env = {key: expand(str(value), {}) for key, value in service.get("environment", {}).items()}
        ports: dict[str, tuple[int, str]] = {}
        for mapping in service.get("ports", []):
            published, _, target = mapping.partition(":")
            target, _, protocol = target.partition("/")
            assert published == target, f"{name}: {mapping} must map ports one for one (ICE advertises them)"
            ports[target] = (0, protocol.upper() or "TCP")
        for exposed in service.get("expose", []):
            ports[str(exposed)] = (int(exposed), "TCP")
        argv = [expand(arg, {}) for arg in service["command"]]
        found.append(Container(f"compose/{name}", argv, env, ports, service, service.get("network_mode") == "host"))
    return found


CONTAINERS = kubernetes_containers() + compose_containers()


def test_there_is_something_to_check() -> None:
    commands = {(c.where.split("/")[0] == "compose", c.command) for c in CONTAINERS}
    assert commands == {(True, "edge"), (True, "inference"), (False, "edge"), (False, "inference")}
    assert {doc["kind"] for doc in resources()} >= {
        "Deployment",
        "Service",
        "PodDisruptionBudget",
        "HorizontalPodAutoscaler",
    }


@pytest.mark.parametrize("path", KUBERNETES, ids=lambda path: path.name)
def test_every_manifest_validates_against_the_kubernetes_schemas(path: Path) -> None:
    for doc in documents(path):
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


@pytest.mark.parametrize("container", CONTAINERS, ids=lambda c: c.where)
def test_every_command_parses_and_every_variable_is_a_config_field(
    container: Container, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Unknown flags, unknown fields (configs refuse extra keys) and bad values all fail here as at start-up."""
    prefix = "LIPSTREAM_INFERENCE_" if container.command == "inference" else "LIPSTREAM_EDGE_"
    stray = [n for n in container.env if n.startswith("LIPSTREAM_") and not n.startswith(prefix)]
    assert stray == [], f"{container.where}: variables of another service's config"
    assert container.config(monkeypatch) is not None


@pytest.mark.parametrize("container", CONTAINERS, ids=lambda c: c.where)
def test_the_ports_declared_are_the_ports_served(container: Container, monkeypatch: pytest.MonkeyPatch) -> None:
    config = container.config(monkeypatch)
    declared = {port if port else int(name.split("-")[0]) for name, (port, _) in container.ports.items()}
    if isinstance(config, InferenceConfig):
        assert config.server.host == "0.0.0.0" and config.server.metrics_host == "0.0.0.0"
        assert declared == {config.server.port, config.server.metrics_port}
        return
    assert config.http.host == "0.0.0.0"
    assert config.http.port in declared
    udp = [name for name, (_, protocol) in container.ports.items() if protocol == "UDP"]
    if udp:  # compose publishes the ICE ports; host networking needs no mapping
        assert udp == [config.http.ice_port_range]
    else:
        assert container.host_network, container.where


def test_kubernetes_probes_services_and_scraping_name_ports_that_exist(monkeypatch: pytest.MonkeyPatch) -> None:
    for container in kubernetes_containers():
        names = set(container.ports) | {str(port) for port, _ in container.ports.values()}
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            for handler in ("grpc", "httpGet", "tcpSocket"):
                if handler in container.spec.get(probe, {}):
                    assert str(container.spec[probe][handler]["port"]) in names, (container.where, probe)
    pods = {doc["metadata"]["name"]: doc["spec"]["template"] for doc in resources() if doc["kind"] == "Deployment"}
    for service in (doc for doc in resources() if doc["kind"] == "Service"):
        (template,) = [
            t for t in pods.values() if service["spec"]["selector"].items() <= t["metadata"]["labels"].items()
        ]
        ports = {p.get("name") for c in template["spec"]["containers"] for p in c["ports"]}
        assert all(p["targetPort"] in ports for p in service["spec"]["ports"]), service["metadata"]["name"]
    for template in pods.values():
        annotations = template["metadata"].get("annotations", {})
        if annotations.get("prometheus.io/scrape") == "true":
            served = {p["containerPort"] for c in template["spec"]["containers"] for p in c["ports"]}
            assert int(annotations["prometheus.io/port"]) in served


def test_edges_find_inference_through_its_headless_service(monkeypatch: pytest.MonkeyPatch) -> None:
    (service,) = [d for d in resources() if d["kind"] == "Service" and d["metadata"]["name"] == "lipstream-inference"]
    assert service["spec"]["clusterIP"] == "None"
    name = f"{service['metadata']['name']}.{service['metadata']['namespace']}.svc.cluster.local"
    for container in kubernetes_containers():
        if container.command == "edge":
            config = container.config(monkeypatch)
            assert isinstance(config, EdgeConfig)
            assert config.inference.targets == [f"{name}:{service['spec']['ports'][0]['port']}"]
            assert container.spec.get("env") and config.http.public_url and config.http.turn.secret
    (edge,) = [c for c in compose_containers() if c.command == "edge"]
    (inference,) = [c for c in compose_containers() if c.command == "inference"]
    edge_targets = edge.config(monkeypatch).inference.targets  # type: ignore[union-attr]
    assert edge_targets == [f"inference:{inference.config(monkeypatch).server.port}"]  # type: ignore[union-attr]


def test_draining_fits_in_the_grace_periods(monkeypatch: pytest.MonkeyPatch) -> None:
    pods = {d["metadata"]["name"]: d["spec"]["template"]["spec"] for d in resources() if d["kind"] == "Deployment"}
    for container in kubernetes_containers():
        if container.command != "edge":
            continue
        drain = container.config(monkeypatch).sessions.drain_timeout_s  # type: ignore[union-attr]
        pre_stop = container.spec["lifecycle"]["preStop"]["sleep"]["seconds"]
        assert pods[container.where.split("/")[0]]["terminationGracePeriodSeconds"] > pre_stop + drain
    (edge,) = [c for c in compose_containers() if c.command == "edge"]
    grace = int(edge.spec["stop_grace_period"].rstrip("s"))
    assert grace > edge.config(monkeypatch).sessions.drain_timeout_s  # type: ignore[union-attr]


def test_scaling_reads_a_metric_the_edges_export() -> None:
    exported = {family.name for family in EdgeMetrics().registry.collect()}
    (hpa,) = [d for d in resources() if d["kind"] == "HorizontalPodAutoscaler"]
    metrics = [m["pods"]["metric"]["name"] for m in hpa["spec"]["metrics"]]
    assert metrics == ["lipstream_edge_sessions"] and set(metrics) <= exported
    (rules,) = [d for d in resources() if d["kind"] == "ConfigMap"]
    assert "lipstream_edge_sessions" in rules["data"]["config.yaml"]


def test_images_and_ci_install_through_the_one_script() -> None:
    script = "deploy/install.sh"
    for dockerfile, extra in (("Dockerfile", "cpu"), ("Dockerfile.gpu", "gpu")):
        text = (ROOT / dockerfile).read_text()
        runs = [line for line in text.splitlines() if line.startswith("RUN ") and script in line]
        assert runs and runs[0].split()[1:5] == [script, "--venv", "/opt/venv", extra], dockerfile
        assert 'ENTRYPOINT ["lipstream"]' in text, dockerfile
        assert "pip install" not in text and "apt-get" not in text, f"{dockerfile} installs outside {script}"
    # The CUDA libraries come as the gpu extra's wheels; the driver's, from the container toolkit.
    assert "NVIDIA_DRIVER_CAPABILITIES=compute" in (ROOT / "Dockerfile.gpu").read_text()
    assert re.search(rf"^{re.escape(script)} cpu,test[,\w]* ", (ROOT / ".ci" / "run").read_text(), re.M)
    gpu = yaml.safe_load(COMPOSE_GPU.read_text())["services"]["inference"]
    assert gpu["build"]["dockerfile"] == "Dockerfile.gpu"
