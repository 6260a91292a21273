"""The `entities` table on the real PostgreSQL: one row per (record, entity), exactly.

Records are built here and written straight through `PostgresSink.write_batch` on a topic of
this test's own (fresh sink_offsets keys), with ids and entity texts of their own (a uuid
suffix), so nothing shared is read; the rows are deleted afterwards. Duplicates come three
ways: inside one batch, the same record at a later offset (a process-tier re-emission, which
the fence cannot catch) and a batch replayed at the same offsets (which the fence skips).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from schemas.records import Entity, LogRecord, MetricRecord, Origin
from sinks.base import Batch, Position
from sinks.postgres import ENTITY_TEXT_MAX, PostgresSink
from workers.settings import Settings

pytestmark = pytest.mark.integration
T0 = datetime(2001, 1, 20, 10, 0, tzinfo=UTC)  # a month of test records only (see test_verify.py)
Row = tuple[str, str, str, str | None, str | None, datetime]  # record_id, label, text, service, host, ts


@pytest.fixture
async def sink(stack: Settings) -> AsyncIterator[PostgresSink]:
    sink = PostgresSink(stack.postgres_dsn.get_secret_value())
    await sink.start()
    try:
        yield sink
    finally:
        await sink.close()


@pytest.fixture
async def conn(stack: Settings) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(stack.postgres_dsn.get_secret_value())
    try:
        yield conn
    finally:
        await conn.close()


class Names:
    def __init__(self) -> None:
        s = uuid.uuid4().hex[:12]
        self.run, self.topic = s, f"test.pg-entities.{s}"
        self.service, self.host = f"svc-{s}", f"web-{s}"
        self.other_host, self.db = f"host-{s}", f"db-{s}"
        self.exc, self.code = f"org.test.Boom{s}Exception", f"E-{s}"
        self.path = f"/var/{s}/" + "p" * (ENTITY_TEXT_MAX + 100)
        self.ids = [f"r-pg-entities-{s}-{i}" for i in range(4)]

    def log(self, i: int, *entities: tuple[str, str], offset: int = 0) -> LogRecord:
        return LogRecord(
            record_id=self.ids[i], origin=Origin(topic="logs.raw", partition=0, offset=offset),
            timestamp=T0 + timedelta(minutes=i), format="json", service=self.service, host=self.host,
            message=f"entities test line {i}", entities=tuple(Entity(label=lb, text=tx) for lb, tx in entities))


def batch(topic: str, partition: int, start: int, records: Sequence[LogRecord | MetricRecord]) -> Batch:
    return Batch(topic=topic, partition=partition, start_offset=start, next_offset=start + len(records),
                 epoch=1, records=list(records))


async def stored(conn: asyncpg.Connection, ids: list[str]) -> list[Row]:
    rows = await conn.fetch("SELECT record_id, label, text, service, host, ts FROM entities "
                            "WHERE record_id = ANY($1::text[]) ORDER BY record_id, label, text", ids)
    return [(r["record_id"], r["label"], r["text"], r["service"], r["host"], r["ts"]) for r in rows]


async def _cleanup(conn: asyncpg.Connection, n: Names) -> None:
    for table in ("log_records", "metric_samples", "anomalies", "entities"):
        await conn.execute(f"DELETE FROM {table} WHERE record_id LIKE $1", f"r-pg-entities-{n.run}-%")
    await conn.execute("DELETE FROM sink_offsets WHERE topic = $1", n.topic)


async def test_entities_one_row_per_record_and_entity(sink: PostgresSink, conn: asyncpg.Connection) -> None:
    n = Names()
    assert await conn.fetchval("SELECT 1 FROM schema_migrations WHERE version = 'V003'") == 1
    try:
        await _scenario(sink, conn, n)
    finally:
        await _cleanup(conn, n)
    assert await stored(conn, n.ids) == []


async def _scenario(sink: PostgresSink, conn: asyncpg.Connection, n: Names) -> None:
    r0 = n.log(0, ("HOST", n.other_host), ("EXCEPTION", n.exc), ("DATABASE", n.db), ("HOST", n.other_host),
               ("PATH", n.path), ("PATH", n.path + "-longer-but-the-same-first-512"))
    r1 = n.log(1)  # no entities
    r2 = n.log(2, ("EXCEPTION", n.exc), ("ERROR_CODE", n.code))
    metric = MetricRecord(record_id=f"r-pg-entities-{n.run}-metric", origin=Origin(topic="m.raw", partition=0,
                          offset=0), timestamp=T0, name="cpu", series="cpu", value=1.0)

    # Offsets 0-3: r0 twice inside one batch, a metric beside. Offsets 4-5: r2 new, r0 re-emitted.
    assert await sink.write_batch(batch(n.topic, 0, 0, [r0, r1, metric, r0]))
    assert await sink.write_batch(batch(n.topic, 0, 4, [r2, r0.model_copy(update={"origin": Origin(
        topic="logs.raw", partition=0, offset=9)})]))

    def row(record: LogRecord, label: str, text: str) -> Row:
        return (record.record_id, label, text, n.service, n.host, record.timestamp)

    short_path = n.path[:ENTITY_TEXT_MAX]
    expected = sorted([
        row(r0, "DATABASE", n.db), row(r0, "EXCEPTION", n.exc), row(r0, "HOST", n.other_host),
        row(r0, "PATH", short_path), row(r2, "ERROR_CODE", n.code), row(r2, "EXCEPTION", n.exc),
    ])
    assert await stored(conn, n.ids) == expected

    # A replay at the same offsets is fenced; the same records on another partition are not
    # (only their ids match) and change nothing.
    assert not await sink.write_batch(batch(n.topic, 0, 0, [r0, r1, metric, r0]))
    assert await sink.write_batch(batch(n.topic, 1, 0, [r1, r2, r0]))
    assert await stored(conn, n.ids) == expected
    assert await sink.committed_offsets(n.topic, [0, 1]) == {0: Position(6, 1), 1: Position(3, 1)}

    # The operator's question, and the partition the rows are in.
    mentions = await conn.fetch(
        "SELECT e.record_id, l.message FROM entities e JOIN log_records l USING (ts, record_id) "
        "WHERE e.label = 'EXCEPTION' AND e.text = $1 AND e.ts >= $2 AND e.ts < $3 ORDER BY e.ts",
        n.exc, T0, T0 + timedelta(hours=1))
    assert [(m["record_id"], m["message"]) for m in mentions] == [
        (r0.record_id, "entities test line 0"), (r2.record_id, "entities test line 2")]
    partitions = await conn.fetch("SELECT DISTINCT tableoid::regclass::text AS p FROM entities "
                                  "WHERE record_id = ANY($1::text[])", n.ids)
    assert [p["p"] for p in partitions] == ["entities_2001_01"]

    # A re-emission with other entities (say, after a redaction fix upstream) replaces the
    # record's rows: the one it no longer has goes, a new one comes; r2 loses all of its own.
    r0_new = n.log(0, ("HOST", n.other_host), ("DATABASE", n.db), ("ERROR_CODE", n.code), offset=20)
    r2_new = n.log(2, offset=21)
    assert await sink.write_batch(batch(n.topic, 0, 6, [r0_new, r2_new]))
    assert await stored(conn, n.ids) == sorted([
        row(r0, "DATABASE", n.db), row(r0, "ERROR_CODE", n.code), row(r0, "HOST", n.other_host)])

    # `polaris verify --repair` goes through the same path, without touching any position.
    await sink.repair([r2])
    assert await stored(conn, n.ids) == sorted([
        row(r0, "DATABASE", n.db), row(r0, "ERROR_CODE", n.code), row(r0, "HOST", n.other_host),
        row(r2, "ERROR_CODE", n.code), row(r2, "EXCEPTION", n.exc)])
    assert await sink.committed_offsets(n.topic, [0, 1]) == {0: Position(8, 1), 1: Position(3, 1)}
    assert await conn.fetchval("SELECT count(*) FROM log_records WHERE record_id = ANY($1::text[])", n.ids) == 3
