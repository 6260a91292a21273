"""The process tier's per-batch work, free of Kafka and Faust: raw lines in, records out.

`enrich_logs` is what the Faust agent calls for each batch it takes. It returns, per input,
either an enriched `LogRecord` or a `Rejected` with the reason it goes to the DLQ.
A line no format fits is not rejected: it becomes a record of format "unknown".
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from schemas.records import LogRecord, Origin, record_id_for
from workers.steps.parse import parse_line

MAX_LINE_BYTES = 1 << 20  # a larger "line" is a shipper bug, not a log record


@dataclass(frozen=True, slots=True)
class RawLine:
    origin: Origin
    value: bytes | None
    timestamp_ms: int | None = None


@dataclass(frozen=True, slots=True)
class Rejected:
    origin: Origin
    reason: str
    value: bytes | None


def _decode(raw: RawLine) -> str | Rejected:
    if raw.value is None or not raw.value.strip():
        return Rejected(raw.origin, "empty: the message has no text", raw.value)
    if len(raw.value) > MAX_LINE_BYTES:
        return Rejected(raw.origin, f"too_large: {len(raw.value)} bytes > {MAX_LINE_BYTES}", None)
    try:
        text = raw.value.decode("utf-8")
    except UnicodeDecodeError as exc:
        return Rejected(raw.origin, f"not_utf8: invalid byte at position {exc.start}", raw.value)
    if "\x00" in text:
        return Rejected(raw.origin, "binary: the message holds NUL bytes", raw.value)
    return text


def enrich_logs(batch: Sequence[RawLine], *, now: datetime | None = None) -> list[LogRecord | Rejected]:
    received = now or datetime.now(UTC)
    out: list[LogRecord | Rejected] = []
    for raw in batch:
        text = _decode(raw)
        if isinstance(text, Rejected):
            out.append(text)
            continue
        parsed = parse_line(text)
        fallback = (datetime.fromtimestamp(raw.timestamp_ms / 1000, UTC) if raw.timestamp_ms else received)
        out.append(LogRecord(
            record_id=record_id_for(raw.origin.topic, raw.origin.partition, raw.origin.offset),
            origin=raw.origin,
            timestamp=parsed.timestamp or fallback,
            format=parsed.format,
            level=parsed.level,
            host=parsed.host,
            service=parsed.service,
            message=parsed.message,
            fields=dict(parsed.fields),
        ))
    return out
