"""The process tier's per-batch work, free of Kafka and Faust: raw lines in, records out.

`LogEnricher.enrich` is what the Faust agent calls for each batch it takes:
decode → parse → redact → template → entities → classify → anomaly score.
It returns, per input it has not applied before, either an enriched `LogRecord` or a
`Rejected` with the reason it goes to the DLQ. A line no format fits is not rejected: it
becomes a record of format "unknown". Redaction runs before anything else sees the text, so no later step (nor any
store) ever holds a secret.

The stateful parts — the template miner and the log anomaly scorer — live in the enricher;
`state()`/`restore()` and `last_offsets` let the agent persist them with the offsets they
have applied; a replayed record (at or below those offsets) is skipped, so it does not update
them twice — its outputs were delivered before the state that covers it was saved.
"""

from __future__ import annotations

import gc
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from schemas.records import Entity, LogRecord, Origin, record_id_for
from workers.steps.classify import Classification, classify
from workers.steps.entities import EntityExtractor
from workers.steps.parse import ParsedLine, parse_line
from workers.steps.redact import RedactionRules, default_rules
from workers.steps.score_logs import LogAnomalyScorer
from workers.steps.templates import TemplateMiner

STATE_VERSION = 2  # of LogEnricher.state(); bump when its shape changes
MAX_LINE_BYTES = 1 << 20  # a larger "line" is a shipper bug, not a log record


def not_applied(last_offsets: dict[str, int], batch: Sequence[RawLine]) -> list[RawLine]:
    """The records of `batch` that the state behind `last_offsets` has not applied: a replay
    after a crash or a rebalance (whose outputs were delivered the first time) is skipped, so
    the stateful steps see each record once. Within a topic/partition offsets must ascend."""
    last_seen = dict(last_offsets)
    fresh: list[RawLine] = []
    for raw in batch:
        key = f"{raw.origin.topic}/{raw.origin.partition}"
        if raw.origin.offset > last_seen.get(key, -1):
            fresh.append(raw)
            last_seen[key] = raw.origin.offset
    return fresh


def settle_heap() -> None:
    """Move every object alive now out of reach of the cyclic garbage collector.

    Called once the long-lived heap is built (spaCy's vocabulary and pipeline, the worker's
    clients). Otherwise each full collection walks those objects again: with only spaCy and
    the native chain loaded that was about a sixth of the chain's time per line, and a third
    in `polaris bench process`, whose heap also holds its inputs. Objects made later
    (batches, records) are collected as usual.
    """
    gc.collect()
    gc.freeze()


def processing_error(exc: Exception) -> str:
    """The dead-letter reason of a record a step failed on."""
    return f"processing_error: {exc.__class__.__name__}: {exc}"[:500]


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


def decode(raw: RawLine) -> str | Rejected:
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


@dataclass
class _Parsed:
    raw: RawLine
    line: ParsedLine
    message: str
    fields: dict[str, str]
    redacted: tuple[str, ...]


@dataclass
class LogEnricher:
    """All steps of the process tier for log lines, with the state of the stateful ones."""

    redaction: RedactionRules = field(default_factory=default_rules)
    miner: TemplateMiner = field(default_factory=TemplateMiner)
    scorer: LogAnomalyScorer = field(default_factory=LogAnomalyScorer)
    extractor: EntityExtractor | None = None  # built lazily: spaCy costs a second to load
    last_offsets: dict[str, int] = field(default_factory=dict)  # "topic/partition" -> last applied
    _classes: dict[tuple[str, str | None, frozenset[str]], Classification] = field(default_factory=dict)
    # (label, text) -> the record's Entity: frozen, so one instance serves every repetition
    _entities: dict[tuple[str, str], Entity] = field(default_factory=dict)

    def enrich(self, batch: Sequence[RawLine], *, now: datetime | None = None) -> list[LogRecord | Rejected]:
        received = now or datetime.now(UTC)
        out: list[LogRecord | Rejected | _Parsed] = []
        for raw in not_applied(self.last_offsets, batch):
            text = decode(raw)
            if isinstance(text, Rejected):
                out.append(text)
                continue
            line = parse_line(text)
            message, kinds = self.redaction.redact(line.message)
            if line.fields:
                fields, field_kinds = self.redaction.redact_fields(line.fields)
                if field_kinds:
                    kinds = (*kinds, *field_kinds)
            else:
                fields = {}
            # distinct kinds, sorted (`kinds` from redact are already distinct)
            redacted = () if not kinds else kinds if len(kinds) == 1 else tuple(sorted(set(kinds)))
            out.append(_Parsed(raw, line, message, fields, redacted))
        parsed = [item for item in out if isinstance(item, _Parsed)]
        if self.extractor is None:
            self.extractor = EntityExtractor()
        entities = self.extractor.extract_batch([item.message for item in parsed])
        records = iter(self._record_or_reject(item, found, received)
                       for item, found in zip(parsed, entities, strict=True))
        return [next(records) if isinstance(item, _Parsed) else item for item in out]

    def _record_or_reject(self, item: _Parsed, found: Sequence[Any], received: datetime) -> LogRecord | Rejected:
        # Past this point the miner and scorer move: a line that fails here is dead-lettered on
        # its own instead of failing the batch, whose earlier lines are already applied.
        try:
            return self._record(item, found, received)
        except Exception as exc:
            return Rejected(item.raw.origin, processing_error(exc), item.raw.value)

    def _record(self, item: _Parsed, found: Sequence[Any], received: datetime) -> LogRecord:
        raw, line = item.raw, item.line
        origin_key = f"{raw.origin.topic}/{raw.origin.partition}"
        timestamp = line.timestamp or (
            datetime.fromtimestamp(raw.timestamp_ms / 1000, UTC) if raw.timestamp_ms else received)
        match = self.miner.add(item.message)
        template, template_id = match.template, match.template_id
        entities = self._entities_of(found)
        # Classified once per (template, level, entity labels): the template holds the words
        # the rules look at, and it costs one lookup for every repetition.
        labels = frozenset(e.label for e in entities)
        class_key = (template_id, line.level, labels)
        classification = self._classes.get(class_key)
        if classification is None:
            if len(self._classes) > 50_000:
                self._classes.clear()
            classification = self._classes[class_key] = classify(template, line.level, found)
        service = line.service or line.host or "unknown"
        score = self.scorer.update(service, template_id, line.level, item.message, timestamp.timestamp())
        score_value, reason = round(score.score, 4), (score.explanation if score.reasons else None)
        self.last_offsets[origin_key] = raw.origin.offset
        return LogRecord(
            record_id=record_id_for(raw.origin.topic, raw.origin.partition, raw.origin.offset),
            origin=raw.origin, timestamp=timestamp, format=line.format, level=line.level, host=line.host,
            service=line.service, message=item.message, fields=item.fields, template=template,
            template_id=template_id,
            entities=entities,
            category=classification.category, severity=classification.severity, redacted=item.redacted,
            anomaly_score=score_value,
            anomaly_reason=reason,
        )

    def state(self) -> dict[str, Any]:
        """JSON-safe state of the stateful steps, with the offsets they have applied."""
        return {
            "version": STATE_VERSION, "miner": self.miner.to_dict(), "scorer": self.scorer.to_dict(),
            "last_offsets": dict(self.last_offsets),
        }

    def restore(self, state: dict[str, Any]) -> None:
        if state.get("version") != STATE_VERSION:
            raise ValueError(f"unknown process state version {state.get('version')!r}")
        self.miner = TemplateMiner.from_dict(state["miner"])
        self.scorer = LogAnomalyScorer.from_dict(state["scorer"])
        # States of older releases also hold a "recent" memory of results: no longer needed.
        self.last_offsets = {key: int(offset) for key, offset in state["last_offsets"].items()}

    def _entities_of(self, found: Sequence[Any]) -> tuple[Entity, ...]:
        if not found:
            return ()
        cache = self._entities
        out = []
        for e in found:
            key = (e.label, e.text)
            entity = cache.get(key)
            if entity is None:
                if len(cache) >= 100_000:
                    cache.clear()
                entity = cache[key] = Entity(label=e.label, text=e.text)
            out.append(entity)
        return tuple(out)


def enrich_logs(batch: Sequence[RawLine], *, now: datetime | None = None) -> list[LogRecord | Rejected]:
    """Stateless convenience for one batch (a fresh enricher): tests and one-off tools."""
    return LogEnricher().enrich(batch, now=now)
