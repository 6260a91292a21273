"""The PostgreSQL sink's pure part: which rows a batch becomes, table by table."""

from __future__ import annotations

from datetime import UTC, datetime

from schemas.records import Entity, LogRecord, MetricRecord, Origin
from sinks.postgres import ANOMALIES, ENTITIES, ENTITY_TEXT_MAX, TABLES, _by_table, entity_rows

T0 = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)


def log(record_id: str, *entities: tuple[str, str], score: float = 0.0) -> LogRecord:
    return LogRecord(record_id=record_id, origin=Origin(topic="logs.raw", partition=0, offset=0), timestamp=T0,
                     format="json", service="api", host="web-1", message="m", anomaly_score=score,
                     entities=tuple(Entity(label=label, text=text) for label, text in entities))


def metric(record_id: str) -> MetricRecord:
    return MetricRecord(record_id=record_id, origin=Origin(topic="metrics.raw", partition=0, offset=0),
                        timestamp=T0, name="cpu", series="cpu", value=1.0)


def test_entity_rows_one_per_distinct_label_and_text() -> None:
    long = "x" * (ENTITY_TEXT_MAX + 40)
    record = log("r-1", ("HOST", "db-1"), ("DATABASE", "db-1"), ("HOST", "db-1"),
                 ("PATH", long), ("PATH", long + "tail"), ("EXCEPTION", "Bad\x00Thing"))
    assert entity_rows(record) == [
        (T0, "r-1", "HOST", "db-1", "api", "web-1"),
        (T0, "r-1", "DATABASE", "db-1", "api", "web-1"),
        (T0, "r-1", "PATH", "x" * ENTITY_TEXT_MAX, "api", "web-1"),  # both cut to the same text: one row
        (T0, "r-1", "EXCEPTION", "Bad\ufffdThing", "api", "web-1"),  # NUL: what PostgreSQL text cannot hold
    ]
    assert entity_rows(log("r-2")) == []


def test_by_table_derives_entities_from_every_log_record() -> None:
    a, b = log("a", ("HOST", "h"), score=0.9), log("b")
    tables = _by_table([a, metric("m"), b, a], threshold=0.75)
    assert [(table.name, [r.record_id for r in records]) for table, records in tables] == [
        ("log_records", ["a", "b"]), ("metric_samples", ["m"]), ("anomalies", ["a"]), ("entities", ["a", "b"])]
    assert ENTITIES.rows_of([a, b]) == [(T0, "a", "HOST", "h", "api", "web-1")]  # b: none, stale ones go
    assert [table.name for table, _ in _by_table([metric("m")], threshold=0.75)] == ["metric_samples"]


def test_upserts_keyed_by_each_tables_primary_key() -> None:
    assert TABLES["log"].upsert.endswith(
        "ON CONFLICT (ts, record_id) DO UPDATE SET origin_topic = EXCLUDED.origin_topic, "
        + ", ".join(f"{c} = EXCLUDED.{c}" for c in TABLES["log"].columns[3:]) + ", written_at = now()")
    assert "ON CONFLICT (ts, record_id) DO UPDATE SET kind = EXCLUDED.kind" in ANOMALIES.upsert
    assert ENTITIES.upsert == (
        "INSERT INTO entities (ts, record_id, label, text, service, host) "
        "SELECT ts, record_id, label, text, service, host FROM batch_entities "
        "ON CONFLICT (record_id, label, text, ts) DO UPDATE SET service = EXCLUDED.service, "
        "host = EXCLUDED.host, written_at = now()")
    assert "NOT EXISTS (SELECT 1 FROM batch_entities AS b WHERE b.record_id = t.record_id AND b.label = t.label " \
           "AND b.text = t.text AND b.ts = t.ts)" in ENTITIES.drop_stale
