"""The process tier's work on user events, free of Kafka and Faust: raw lines in, records out.

One message is one JSON event: the user as ``user_id`` / ``user`` / ``userId``, the kind as
``event_type`` / ``type`` / ``event`` / ``name``, the time as ``timestamp`` / ``time`` / ``ts``
(ISO-8601, epoch seconds or epoch milliseconds; Kafka time, then ingest time, when absent) and
``properties`` / ``props`` (values as text: strings as they are, anything else as compact JSON).

Record ids are `record_id_for(topic, partition, offset)`, as for log lines. One
`UserEventScorer` per source partition; it is bounded, so `state()` saves it whole.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, NamedTuple

from schemas.records import EventRecord, record_id_for
from workers.pipeline import RawLine, Rejected, decode, not_applied, processing_error
from workers.pipeline_metrics import parse_time
from workers.steps.score_events import UserEventScorer

STATE_VERSION = 1  # of EventEnricher.state()
MAX_ID = 200  # EventRecord allows no longer user ids or event types
_USER_KEYS = ("user_id", "user", "userId")
_TYPE_KEYS = ("event_type", "type", "event", "name")
_TIME_KEYS = ("timestamp", "time", "ts")
_PROPERTY_KEYS = ("properties", "props")


class UserEvent(NamedTuple):
    user_id: str
    event_type: str
    timestamp: datetime | None  # None: the caller supplies one (Kafka time or now)
    properties: dict[str, str]


def _as_text(value: object) -> str:
    # compact and key-sorted, so the same event always gives the same text
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True, separators=(",", ":"))


def _identifier(data: Mapping[str, Any], keys: tuple[str, ...], what: str) -> str:
    """The first non-empty of `keys` as text; raises ValueError with the reason otherwise."""
    value = next((data[k] for k in keys if data.get(k) not in (None, "")), None)
    if value is None:
        raise ValueError(f"missing_{what}: none of {', '.join(keys)}")
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ValueError(f"invalid_{what}: {value!r:.80} is not text or a number")
    text = str(value).strip()
    if not text or len(text) > MAX_ID:
        raise ValueError(f"invalid_{what}: must be 1 to {MAX_ID} characters (got {len(text)})")
    return text


def parse_event_line(text: str) -> UserEvent | str:
    """The event of one message, or the reason (`kind: detail`) it is rejected."""
    try:
        data = json.loads(text)
    except ValueError as exc:
        return f"invalid_json: {exc}"
    if not isinstance(data, dict):
        return "invalid_event: expected a JSON object"
    try:
        user_id = _identifier(data, _USER_KEYS, "user")
        event_type = _identifier(data, _TYPE_KEYS, "event_type")
    except ValueError as exc:
        return str(exc)
    timestamp = parse_time(next((data[k] for k in _TIME_KEYS if data.get(k) is not None), None))
    if isinstance(timestamp, str):
        return timestamp
    raw_properties: object = next((data[k] for k in _PROPERTY_KEYS if data.get(k) is not None), {})
    if not isinstance(raw_properties, dict):
        return "invalid_properties: properties must be a JSON object"
    properties = {str(k): _as_text(v) for k, v in raw_properties.items()}
    return UserEvent(user_id, event_type, timestamp, properties)


@dataclass
class EventEnricher:
    """Parse and score the user events of one source partition."""

    scorer: UserEventScorer = field(default_factory=UserEventScorer)
    last_offsets: dict[str, int] = field(default_factory=dict)  # "topic/partition" -> last applied

    def enrich(self, batch: Sequence[RawLine], *, now: datetime | None = None) -> list[EventRecord | Rejected]:
        received = now or datetime.now(UTC)
        out: list[EventRecord | Rejected] = []
        # A replay of what this state has applied is skipped: its outputs went out the first time.
        for raw in not_applied(self.last_offsets, batch):
            text = decode(raw)
            event = text if isinstance(text, Rejected) else parse_event_line(text)
            if isinstance(event, Rejected):
                out.append(event)
            elif isinstance(event, str):
                out.append(Rejected(raw.origin, event, raw.value))
            else:
                try:
                    out.append(self._record(raw, event, received))
                except Exception as exc:  # this event alone is dead-lettered, not the batch
                    out.append(Rejected(raw.origin, processing_error(exc), raw.value))
        return out

    def _record(self, raw: RawLine, event: UserEvent, received: datetime) -> EventRecord:
        origin = raw.origin
        if event.timestamp is not None:
            timestamp = event.timestamp
        elif raw.timestamp_ms is not None and raw.timestamp_ms > 0:
            timestamp = datetime.fromtimestamp(raw.timestamp_ms / 1000, UTC)
        else:
            timestamp = received
        result = self.scorer.update(event.user_id, event.event_type, timestamp.timestamp())
        score, reason = round(result.score, 4), (result.explanation if result.reasons else None)
        self.last_offsets[f"{origin.topic}/{origin.partition}"] = origin.offset
        return EventRecord(
            record_id=record_id_for(origin.topic, origin.partition, origin.offset), origin=origin,
            timestamp=timestamp, user_id=event.user_id, event_type=event.event_type, properties=event.properties,
            anomaly_score=score, anomaly_reason=reason)

    def state(self) -> dict[str, Any]:
        """JSON-safe state of the scorer, with the offsets it has applied."""
        return {"version": STATE_VERSION, "scorer": self.scorer.to_dict(), "last_offsets": dict(self.last_offsets)}

    def restore(self, state: Mapping[str, Any]) -> None:
        if state.get("version") != STATE_VERSION:
            raise ValueError(f"unknown event state version {state.get('version')!r}")
        self.scorer = UserEventScorer.from_dict(state["scorer"])
        # States of older releases also hold a "recent" memory of results: no longer needed.
        self.last_offsets = {key: int(offset) for key, offset in state["last_offsets"].items()}
