"""compose.yaml, the Helm chart and the README/CI commands, checked without Docker or Helm."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from workers.settings import Settings

REPO = Path(__file__).resolve().parents[2]
COMPOSE: dict[str, Any] = yaml.safe_load((REPO / "compose.yaml").read_text())
SERVICES: dict[str, Any] = COMPOSE["services"]
WORKERS = {name: s for name, s in SERVICES.items() if s.get("build")}
# The official image each store comes from, and the port it listens on inside its container.
STORES = {"kafka": ("apache/kafka", 9092), "postgres": ("postgres", 5432), "redis": ("redis", 6379),
          "neo4j": ("neo4j", 7687), "weaviate": ("semitechnologies/weaviate", 8080),
          "prometheus": ("prom/prometheus", 9090), "grafana": ("grafana/grafana", 3000)}


def _settings_from(env: dict[str, str]) -> Settings:
    fields = {key.removeprefix("POLARIS_").lower(): value for key, value in env.items()}
    unknown = set(fields) - set(Settings.model_fields)
    assert not unknown, f"compose sets env vars no setting reads: {unknown}"
    return Settings(**fields)


def test_every_store_comes_from_its_official_image() -> None:
    for name, (image, _port) in STORES.items():
        assert name in SERVICES, f"compose.yaml lacks the {name} service"
        assert image in SERVICES[name]["image"]


def test_workers_are_built_from_the_repository_dockerfile() -> None:
    assert (REPO / "Dockerfile").exists()
    roles = {tuple(s["command"][1:]) for s in WORKERS.values() if s["command"][0] == "polaris"}
    assert ("worker", "process") in roles
    assert {("worker", "sink", sink) for sink in ("postgres", "weaviate", "neo4j", "redis")} <= roles


def test_worker_settings_point_at_services_that_exist_on_their_ports() -> None:
    for name, worker in WORKERS.items():
        settings = _settings_from(worker["environment"])
        addresses = {
            "kafka": settings.kafka_bootstrap.split(",")[0],
            "postgres": f"{settings.postgres.host}:{settings.postgres.port}",
            "redis": f"{urlsplit(settings.redis_url).hostname}:{settings.redis_port}",
            "neo4j": f"{urlsplit(settings.neo4j_uri).hostname}:{settings.neo4j_port}",
            "weaviate": settings.weaviate_http,
        }
        for store, address in addresses.items():
            host, port = address.rsplit(":", 1)
            assert host == store, f"{name}: {store} address {address} is not the compose service"
            assert int(port) == STORES[store][1], f"{name}: {store} port {port} != container port"


def test_credentials_agree_between_workers_and_stores() -> None:
    settings = _settings_from(SERVICES["worker-process"]["environment"])
    postgres_env = SERVICES["postgres"]["environment"]
    pg = settings.postgres
    assert (pg.user, pg.password, pg.database) == (
        postgres_env["POSTGRES_USER"], postgres_env["POSTGRES_PASSWORD"], postgres_env["POSTGRES_DB"])
    assert SERVICES["neo4j"]["environment"]["NEO4J_AUTH"] == (
        f"{settings.neo4j_user}/{settings.neo4j_password.get_secret_value()}")


def test_host_ports_match_the_local_stack_defaults() -> None:
    defaults = Settings()
    published = {name: {int(p.split(":")[0]) for p in SERVICES[name].get("ports", [])} for name in STORES}
    assert int(defaults.kafka_bootstrap.rsplit(":", 1)[1]) in published["kafka"]
    assert defaults.postgres.port in published["postgres"]
    assert defaults.redis_port in published["redis"]
    assert defaults.neo4j_port in published["neo4j"]
    assert defaults.port_of(defaults.weaviate_http) in published["weaviate"]
    assert defaults.port_of(defaults.weaviate_grpc) in published["weaviate"]


def test_prometheus_in_compose_scrapes_every_worker() -> None:
    config = yaml.safe_load((REPO / "deploy" / "prometheus.yml").read_text())
    targets = {t for job in config["scrape_configs"] for sc in job.get("static_configs", []) for t in sc["targets"]}
    port = _settings_from(SERVICES["worker-process"]["environment"]).metrics_port
    assert {f"{name}:{port}" for name in WORKERS if name != "init"} <= targets


def test_helm_chart_ships_the_default_topology() -> None:
    chart = (REPO / "helm" / "polaris" / "topology.yaml").read_text()
    default = (REPO / "topologies" / "default.yaml").read_text()
    assert yaml.safe_load(chart) == yaml.safe_load(default)
    values = yaml.safe_load((REPO / "helm" / "polaris" / "values.yaml").read_text())
    assert set(values["sinks"]) == {"postgres", "weaviate", "neo4j", "redis"}


def test_ci_runs_the_test_command_written_in_the_readme() -> None:
    readme = (REPO / "README.md").read_text()
    blocks = re.findall(r"```(?:bash|sh)?\n(.*?)```", readme, flags=re.S)
    commands = [line.strip() for block in blocks for line in block.splitlines() if line.strip()]
    assert "scripts/test" in commands, "the README must show the test command `scripts/test`"
    assert "scripts/polaris demo" in commands, "the README must show the run command `scripts/polaris demo`"
    ci = [line.strip() for line in (REPO / ".ci" / "run").read_text().splitlines()
          if line.strip() and not line.lstrip().startswith("#")]
    assert "scripts/test" in ci
