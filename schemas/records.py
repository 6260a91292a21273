"""The records that travel between the tiers: the only contract between them.

A record's `record_id` is fixed where it first enters the fleet (source topic, partition
and offset) and travels with it; every store upserts by it.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Annotated, Any, Literal, cast

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter


class Origin(BaseModel):
    """Where a record entered the fleet: the raw topic, partition and offset."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    topic: str
    partition: int = Field(ge=0)
    offset: int = Field(ge=0)


def record_id_for(topic: str, partition: int, offset: int) -> str:
    """Deterministic id of the record at a raw topic position (same on every replay)."""
    digest = hashlib.blake2b(f"{topic}/{partition}/{offset}".encode(), digest_size=12).hexdigest()
    return f"r-{digest}"


class Entity(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    label: str
    text: str


class LogRecord(BaseModel):
    """A parsed, enriched log line (records.enriched, kind "log")."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    kind: Literal["log"] = "log"
    record_id: str = Field(pattern=r"^[A-Za-z0-9_.:-]{1,128}$")
    origin: Origin
    timestamp: datetime = Field(description="event time, UTC (ingest time when the line had none)")
    format: str = Field(description="detected source format, 'unknown' when no pattern fits")
    level: str | None = None
    host: str | None = None
    service: str | None = None
    message: str
    fields: dict[str, str] = Field(default_factory=dict)
    template: str | None = None
    template_id: str | None = None
    entities: tuple[Entity, ...] = ()
    category: str | None = None
    severity: int | None = Field(None, ge=1, le=5)
    redacted: tuple[str, ...] = Field((), description="kinds of secrets removed (never values)")
    anomaly_score: float = Field(0.0, ge=0.0, le=1.0)
    anomaly_reason: str | None = None


class MetricRecord(BaseModel):
    """One sample of a metric series, scored (records.enriched, kind "metric").

    A series is the metric name plus its labels; `series` is its canonical text form
    `name{k="v",...}` with labels sorted, so every tier names a series the same way.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)
    kind: Literal["metric"] = "metric"
    record_id: str = Field(pattern=r"^[A-Za-z0-9_.:-]{1,128}$")
    origin: Origin
    timestamp: datetime
    name: str = Field(pattern=r"^[a-zA-Z_:][a-zA-Z0-9_:]{0,199}$")
    labels: dict[str, str] = Field(default_factory=dict)
    series: str
    value: float
    anomaly_score: float = Field(0.0, ge=0.0, le=1.0)
    anomaly_reason: str | None = None


class EventRecord(BaseModel):
    """One user event, scored (records.enriched, kind "event")."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    kind: Literal["event"] = "event"
    record_id: str = Field(pattern=r"^[A-Za-z0-9_.:-]{1,128}$")
    origin: Origin
    timestamp: datetime
    user_id: str = Field(min_length=1, max_length=200)
    event_type: str = Field(min_length=1, max_length=200)
    properties: dict[str, str] = Field(default_factory=dict)
    anomaly_score: float = Field(0.0, ge=0.0, le=1.0)
    anomaly_reason: str | None = None


EnrichedRecord = Annotated[LogRecord | MetricRecord | EventRecord, Field(discriminator="kind")]
ENRICHED_RECORD: TypeAdapter[LogRecord | MetricRecord | EventRecord] = TypeAdapter(
    cast(Any, EnrichedRecord)  # mypy versions disagree on Annotated unions here; the annotation carries the type
)


def subject_of(record: LogRecord | MetricRecord | EventRecord) -> str:
    """What an anomaly is about: the service of a log, the series of a metric, the user of an event."""
    if isinstance(record, LogRecord):
        return record.service or record.host or "unknown"
    return record.series if isinstance(record, MetricRecord) else record.user_id
