"""The topology file: which topics exist and which record kinds go to which sinks.

Routing is data. `polaris topology validate FILE` loads a file through `load_topology`,
whose errors name the file, the field and the fix.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

RecordKind = Literal["log", "metric", "event"]
SinkName = Literal["postgres", "weaviate", "neo4j", "redis"]
LEVELS = ("TRACE", "DEBUG", "INFO", "NOTICE", "WARN", "ERROR", "CRITICAL", "FATAL")
TOPIC_PATTERN = r"^[A-Za-z0-9._-]{1,200}$"
# Which stores hold which record kinds (Weaviate and Neo4j model log records only).
SINKS_FOR_KIND = {"log": {"postgres", "weaviate", "neo4j", "redis"}, "metric": {"postgres", "redis"},
                  "event": {"postgres", "redis"}}


class TopologyError(ValueError):
    """A topology file is invalid: the message names the file, the field and the fix."""


class TopicSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    partitions: int = Field(4, ge=1, le=1024, description="partition count; tables keyed by it must match")
    retention_hours: int = Field(168, ge=1)


class RouteFilter(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    min_level: Literal[LEVELS] | None = Field(None, description="keep records at this level or above")  # type: ignore[valid-type]
    services: tuple[str, ...] | None = Field(None, description="keep only these services")

    def accepts(self, level: str | None, service: str | None) -> bool:
        if self.min_level is not None and (
            level not in LEVELS or LEVELS.index(level) < LEVELS.index(self.min_level)
        ):
            return False
        return self.services is None or service in self.services


class Route(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str = Field(pattern=r"^[a-z0-9_-]+$")
    kinds: tuple[RecordKind, ...] = Field(min_length=1)
    sinks: tuple[SinkName, ...] = Field(min_length=1)
    where: RouteFilter = RouteFilter()

    @model_validator(mode="after")
    def _stores_hold_the_kinds(self) -> Route:
        for kind in self.kinds:
            refused = sorted(set(self.sinks) - SINKS_FOR_KIND[kind])
            if refused:
                raise ValueError(f"{kind} records cannot go to {refused}; fix: send them to "
                                 f"{sorted(SINKS_FOR_KIND[kind] & set(self.sinks)) or sorted(SINKS_FOR_KIND[kind])} "
                                 f"or split the route by kind")
        return self


class Topology(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    raw_topics: dict[str, TopicSpec] = Field(description="topics producers publish to, by record kind source")
    log_topic: str = Field("logs.raw", pattern=TOPIC_PATTERN, description="the raw topic holding log lines")
    metric_topic: str | None = Field(None, pattern=TOPIC_PATTERN, description="the raw topic of metric samples")
    event_topic: str | None = Field(None, pattern=TOPIC_PATTERN, description="the raw topic of user events")
    enriched_topic: str = Field("records.enriched", pattern=TOPIC_PATTERN)
    enriched: TopicSpec = TopicSpec()
    routes: tuple[Route, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _check(self) -> Topology:
        import re

        for topic in self.raw_topics:
            if not re.match(TOPIC_PATTERN, topic):
                raise ValueError(f"topic name {topic!r} may only hold letters, digits, '.', '_' and '-'")
        for field_name in ("log_topic", "metric_topic", "event_topic"):
            topic = getattr(self, field_name)
            if topic is not None and topic not in self.raw_topics:
                raise ValueError(f"{field_name} {topic!r} must be one of raw_topics {sorted(self.raw_topics)}; "
                                 f"fix: add it under raw_topics or name one of those")
        kinds = [t for t in (self.log_topic, self.metric_topic, self.event_topic) if t is not None]
        if len(set(kinds)) != len(kinds):
            raise ValueError("log_topic, metric_topic and event_topic must be different topics; "
                             "fix: give each record kind its own raw topic")
        names = [route.name for route in self.routes]
        duplicated = sorted({name for name in names if names.count(name) > 1})
        if duplicated:
            raise ValueError(f"route names must be unique; repeated: {duplicated}")
        return self

    def all_topics(self) -> dict[str, TopicSpec]:
        """Every topic the fleet needs, dead-letter topics included (`<topic>.dlq`)."""
        topics = {**self.raw_topics, self.enriched_topic: self.enriched}
        return {**topics, **{f"{name}.dlq": spec for name, spec in topics.items()}}

    def sinks_for(self, kind: str, level: str | None, service: str | None) -> set[str]:
        return {sink for route in self.routes if kind in route.kinds
                and route.where.accepts(level, service) for sink in route.sinks}

    def used_sinks(self) -> set[str]:
        return {sink for route in self.routes for sink in route.sinks}


def load_topology(path: Path) -> Topology:
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise TopologyError(f"{path}: cannot read the topology file ({exc.strerror})") from exc
    except yaml.YAMLError as exc:
        raise TopologyError(f"{path}: not valid YAML: {exc}") from exc
    try:
        return Topology.model_validate(data)
    except ValidationError as exc:
        lines = []
        for error in exc.errors():
            field = ".".join(str(part) for part in error["loc"]) or "(top level)"
            fix = _fix_for(error["type"], error.get("ctx") or {})
            lines.append(f"{path}: field {field}: {error['msg']} (got {error.get('input')!r}){fix}")
        raise TopologyError("\n".join(lines)) from None


def _fix_for(error_type: str, ctx: dict[str, object]) -> str:
    if error_type == "literal_error":
        return f"; fix: use one of {ctx.get('expected')}"
    if error_type == "extra_forbidden":
        return "; fix: remove it or check its spelling"
    if error_type == "missing":
        return "; fix: add this field"
    return ""
