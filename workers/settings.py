"""Polaris settings: declared once (type, env var, default, doc), validated by pydantic.

Every field is read from an environment variable `POLARIS_<FIELD>` or from a YAML
file named by `POLARIS_SETTINGS_FILE`. Errors name the setting, the value and the fix,
and never print a secret.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml
from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parents[1]


class SettingsError(ValueError):
    """A setting is invalid; the message names it, the value and the fix."""


def _host_port(value: str, where: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{where}: expected host:port with a port in 1..65535 (got {value!r})")
    return host, int(port)


class _YamlFileSource(PydanticBaseSettingsSource):
    """Reads the YAML file named by POLARIS_SETTINGS_FILE (lower priority than env)."""

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        path = os.environ.get("POLARIS_SETTINGS_FILE")
        if not path:
            return {}
        try:
            data = yaml.safe_load(Path(path).read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise SettingsError(f"POLARIS_SETTINGS_FILE={path}: cannot read it ({exc})") from exc
        if not isinstance(data, dict):
            raise SettingsError(f"{path}: expected a mapping of setting names to values")
        return data


class Settings(BaseSettings):
    """Everything a worker or `polaris stack` needs to know, with defaults for one machine."""

    model_config = SettingsConfigDict(env_prefix="POLARIS_", extra="forbid", frozen=True)

    # --- Kafka -------------------------------------------------------------------------
    kafka_bootstrap: str = Field("127.0.0.1:9092", description="Kafka bootstrap servers, host:port[,host:port]")
    kafka_controller_port: int = Field(9093, description="KRaft controller port of the local broker")
    # --- stores ------------------------------------------------------------------------
    postgres_dsn: SecretStr = Field(
        SecretStr("postgresql://polaris:polaris@127.0.0.1:5433/polaris"),
        description="PostgreSQL DSN (postgresql://user:password@host:port/db)",
    )
    redis_url: str = Field("redis://127.0.0.1:6380/0", description="Redis URL (redis://host:port/db)")
    neo4j_uri: str = Field("bolt://127.0.0.1:7687", description="Neo4j Bolt URI")
    neo4j_user: str = Field("neo4j", description="Neo4j user")
    neo4j_password: SecretStr = Field(SecretStr("polaris-neo4j"), description="Neo4j password (>= 8 chars)")
    weaviate_http: str = Field("127.0.0.1:8080", description="Weaviate REST host:port")
    weaviate_grpc: str = Field("127.0.0.1:50051", description="Weaviate gRPC host:port")
    weaviate_gossip_port: int = Field(7946, gt=0, lt=65536, description="Weaviate cluster gossip port")
    weaviate_data_port: int = Field(7947, gt=0, lt=65536, description="Weaviate cluster data port")
    weaviate_raft_port: int = Field(8300, gt=0, lt=65536, description="Weaviate Raft port")
    weaviate_raft_rpc_port: int = Field(8301, gt=0, lt=65536, description="Weaviate Raft internal RPC port")
    weaviate_metrics_port: int = Field(2112, gt=0, lt=65536, description="Weaviate Prometheus metrics port")
    prometheus_listen: str = Field("127.0.0.1:9090", description="Prometheus web listen host:port")
    # --- workers -----------------------------------------------------------------------
    process_app_id: str = Field("polaris-process", pattern=r"^[a-z0-9-]{1,60}$",
                                description="Faust app id of the process tier (its consumer group and state topics)")
    sink_group_prefix: str = Field("polaris-sink", pattern=r"^[a-z0-9-]{1,60}$",
                                   description="Kafka consumer group of each sink worker: <prefix>-<sink>")
    process_state_save_interval_s: float = Field(
        1.0, ge=0, description="process tier: write each partition's detector state at most every N seconds")
    process_native: bool = Field(
        True, description="process tier: run the log chain on the native hot path (polaris_native, "
                          "built by scripts/build-native); false runs the Python steps")
    process_commit_every: int = Field(1000, ge=1, description="process tier: commit source offsets every N records")
    process_commit_interval_s: float = Field(1.0, gt=0, description="process tier: ... or every N seconds")
    metrics_port: int = Field(9300, ge=0, lt=65536, description="Worker /metrics port (0 = any free port)")
    topology_file: Path = Field(REPO_ROOT / "topologies" / "default.yaml", description="Topology YAML")
    log_level: str = Field("INFO", pattern="^(DEBUG|INFO|WARNING|ERROR)$", description="Log level")
    # --- local stack -------------------------------------------------------------------
    stack_home: Path = Field(REPO_ROOT / ".polaris", description="Runtime data, logs and pids of the local stack")
    cache_dir: Path = Field(
        Path(os.environ.get("XDG_CACHE_HOME", str(Path.home() / ".cache"))) / "polaris",
        description="Downloads and builds cached across clones (jars, the Weaviate binary)",
    )
    kafka_version: str = Field("4.3.1", pattern=r"^\d+\.\d+\.\d+$", description="Apache Kafka version (Maven Central)")
    neo4j_version: str = Field("5.26.30", pattern=r"^5\.\d+\.\d+$", description="Neo4j 5 Community version")
    weaviate_version: str = Field("1.39.3", pattern=r"^\d+\.\d+\.\d+$", description="Weaviate release built from Go")
    kafka_heap: str = Field("768m", pattern=r"^\d+[mg]$", description="Kafka JVM heap")
    neo4j_heap: str = Field("512m", pattern=r"^\d+[mg]$", description="Neo4j JVM heap")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return init_settings, env_settings, _YamlFileSource(settings_cls)

    @field_validator("kafka_bootstrap")
    @classmethod
    def _check_bootstrap(cls, value: str) -> str:
        for server in value.split(","):
            _host_port(server.strip(), "kafka_bootstrap")
        return value

    @field_validator("weaviate_http", "weaviate_grpc", "prometheus_listen")
    @classmethod
    def _check_host_port(cls, value: str) -> str:
        _host_port(value, "address")
        return value

    @field_validator("postgres_dsn")
    @classmethod
    def _check_dsn(cls, value: SecretStr) -> SecretStr:
        parts = urlsplit(value.get_secret_value())
        if parts.scheme not in ("postgresql", "postgres") or not parts.hostname or not parts.path.strip("/"):
            shown = f"{parts.scheme}://{parts.hostname or ''}:{parts.port or ''}{parts.path}"
            raise ValueError(f"expected postgresql://user:password@host:port/database (got {shown!r})")
        return value

    @field_validator("redis_url")
    @classmethod
    def _check_redis(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("redis", "rediss") or not parts.hostname:
            raise ValueError(f"expected redis://host:port/db (got {value!r})")
        return value

    @field_validator("neo4j_uri")
    @classmethod
    def _check_neo4j(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("bolt", "neo4j", "bolt+s", "neo4j+s") or not parts.hostname:
            raise ValueError(f"expected bolt://host:port (got {value!r})")
        return value

    # --- derived addresses -------------------------------------------------------------
    @property
    def postgres(self) -> PostgresAddress:
        parts = urlsplit(self.postgres_dsn.get_secret_value())
        return PostgresAddress(
            host=parts.hostname or "127.0.0.1",
            port=parts.port or 5432,
            user=parts.username or "polaris",
            password=parts.password or "",
            database=parts.path.strip("/"),
        )

    @property
    def redis_port(self) -> int:
        return urlsplit(self.redis_url).port or 6379

    @property
    def neo4j_port(self) -> int:
        return urlsplit(self.neo4j_uri).port or 7687

    def port_of(self, address: str) -> int:
        return _host_port(address, "address")[1]


class PostgresAddress:
    __slots__ = ("database", "host", "password", "port", "user")

    def __init__(self, host: str, port: int, user: str, password: str, database: str) -> None:
        self.host, self.port, self.user, self.password, self.database = host, port, user, password, database


def _explain(exc: ValidationError) -> str:
    lines = []
    for error in exc.errors():
        field = ".".join(str(part) for part in error["loc"]) or "settings"
        env = f"POLARIS_{field.upper()}"
        value = error.get("input")
        shown = "<secret>" if "password" in field or "dsn" in field else repr(value)
        lines.append(f"setting {field} (env {env}) = {shown}: {error['msg']}")
    return "invalid settings:\n  " + "\n  ".join(lines)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process's settings; raises SettingsError with a readable message."""
    try:
        return Settings()
    except ValidationError as exc:
        raise SettingsError(_explain(exc)) from None
