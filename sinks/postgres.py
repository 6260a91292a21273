"""PostgreSQL sink (asyncpg): log_records, metric_samples, user_events, anomalies and entities.

Guarantee: exactly once. Atomicity: one transaction locks the partition's row in
`sink_offsets` (FOR UPDATE), applies the fencing rule, COPYs the batch into a temporary
table, upserts it into `log_records` keyed by (ts, record_id) and moves the position.
Rows derived from records go in the same transaction: `anomalies`, and `entities` (a log
record's rows there replace its earlier ones). Idempotency key: record_id (entities: record_id,
label, text). Retriable: connection loss, timeouts, serialization failures, the server
shutting down. Not retriable (dead-lettered): data errors such as a value the column types
refuse.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import asyncpg

from schemas.records import EnrichedRecord, EventRecord, LogRecord, MetricRecord, subject_of
from sinks.base import ANOMALY_THRESHOLD, Batch, Decision, Position, RecordRejected, RetriableError, decide

MIGRATIONS = Path(__file__).resolve().parents[1] / "schemas" / "migrations"
ENTITY_TEXT_MAX = 512  # characters of an entity's text kept in `entities`


def _text(value: str | None) -> str | None:
    # NUL is the one character PostgreSQL text cannot hold; it is never meaningful in a record.
    return value.replace("\x00", "\ufffd") if value else value


def _json(value: object) -> str:
    return json.dumps(value).replace("\\u0000", "\\ufffd")


def _origin(record: EnrichedRecord) -> tuple[object, ...]:
    return record.timestamp, record.record_id, record.origin.topic, record.origin.partition, record.origin.offset


def _log_row(record: LogRecord) -> tuple[object, ...]:
    return (
        *_origin(record), record.format, record.level, _text(record.host), _text(record.service),
        _text(record.message), _text(record.template), record.template_id, record.category, record.severity,
        record.anomaly_score, record.anomaly_reason, _json(record.fields),
        _json([entity.model_dump() for entity in record.entities]), list(record.redacted),
    )


def _metric_row(record: MetricRecord) -> tuple[object, ...]:
    return (*_origin(record), record.name, _text(record.series), _json(record.labels), record.value,
            record.anomaly_score, record.anomaly_reason)


def _event_row(record: EventRecord) -> tuple[object, ...]:
    return (*_origin(record), _text(record.user_id), _text(record.event_type), _json(record.properties),
            record.anomaly_score, record.anomaly_reason)


def _anomaly_row(record: EnrichedRecord) -> tuple[object, ...]:
    return (record.timestamp, record.record_id, record.kind, _text(subject_of(record)), record.anomaly_score,
            record.anomaly_reason)


def entity_rows(record: LogRecord) -> list[tuple[object, ...]]:
    """A log record's rows in `entities`: one per distinct (label, text) after the cut to
    ENTITY_TEXT_MAX characters (an upsert may touch a row only once per statement)."""
    rows: dict[tuple[str, str], tuple[object, ...]] = {}
    service, host = _text(record.service), _text(record.host)
    for entity in record.entities:
        label, text = _text(entity.label) or "", (_text(entity.text) or "")[:ENTITY_TEXT_MAX]
        rows.setdefault((label, text), (record.timestamp, record.record_id, label, text, service, host))
    return list(rows.values())


_ORIGIN = ("ts", "record_id", "origin_topic", "origin_partition", "origin_offset")


# Errors about the server, not the rows: retried with backoff while the position stays put.
# Class 53 is disk full, out of memory, too many connections; 25006 a primary that failed over
# to a read-only standby; 57P an operator's shutdown.
STORE_ERRORS = (
    OSError, asyncpg.PostgresConnectionError, asyncpg.InterfaceError,
    asyncpg.exceptions.OperatorInterventionError, asyncpg.exceptions.SerializationError,
    asyncpg.exceptions.DeadlockDetectedError, asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.InsufficientResourcesError, asyncpg.exceptions.ReadOnlySQLTransactionError,
)


@dataclass(frozen=True)
class _Table:
    name: str
    columns: tuple[str, ...]
    row: Callable[[Any], tuple[object, ...]] | None = None  # one row per record ...
    rows: Callable[[Any], Iterable[tuple[object, ...]]] | None = None  # ... or any number, replacing earlier ones
    key: tuple[str, ...] = ("ts", "record_id")

    def rows_of(self, records: Sequence[EnrichedRecord]) -> list[tuple[object, ...]]:
        if self.rows is not None:
            return [row for record in records for row in self.rows(record)]
        if self.row is not None:
            return [self.row(record) for record in records]
        raise TypeError(f"{self.name}: a table needs `row` or `rows`")

    @property
    def upsert(self) -> str:
        updates = ", ".join(f"{column} = EXCLUDED.{column}" for column in self.columns if column not in self.key)
        columns = ", ".join(self.columns)
        return (f"INSERT INTO {self.name} ({columns}) SELECT {columns} FROM batch_{self.name} "
                f"ON CONFLICT ({', '.join(self.key)}) DO UPDATE SET {updates}, written_at = now()")

    @property
    def drop_stale(self) -> str:
        """For `rows` tables: delete the rows of the records written ($1 ids, $2 their ts, $3-$4 the
        range of $2) that their new version no longer has (re-emitted after a change upstream, such
        as a redaction rule). Runs after the COPY into batch_<table>, before the upsert."""
        same = " AND ".join(f"b.{column} = t.{column}" for column in self.key)
        return (f"DELETE FROM {self.name} AS t WHERE (t.record_id, t.ts) IN "
                "(SELECT * FROM unnest($1::text[], $2::timestamptz[])) "
                "AND t.ts >= $3 AND t.ts <= $4 "  # lets the planner skip the other months' partitions
                f"AND NOT EXISTS (SELECT 1 FROM batch_{self.name} AS b WHERE {same})")


TABLES: dict[str, _Table] = {
    "log": _Table("log_records", (*_ORIGIN, "format", "level", "host", "service", "message", "template",
                                  "template_id", "category", "severity", "anomaly_score", "anomaly_reason",
                                  "fields", "entities", "redacted"), _log_row),
    "metric": _Table("metric_samples", (*_ORIGIN, "name", "series", "labels", "value", "anomaly_score",
                                        "anomaly_reason"), _metric_row),
    "event": _Table("user_events", (*_ORIGIN, "user_id", "event_type", "properties", "anomaly_score",
                                    "anomaly_reason"), _event_row),
}
ANOMALIES = _Table("anomalies", ("ts", "record_id", "kind", "subject", "score", "reason"), _anomaly_row)
ENTITIES = _Table("entities", ("ts", "record_id", "label", "text", "service", "host"), rows=entity_rows,
                  key=("record_id", "label", "text", "ts"))
DERIVED = (ANOMALIES, ENTITIES)  # tables of rows derived from records, beside TABLES


async def migrate(dsn: str) -> list[str]:
    """Apply pending `V<NNN>__name.sql` files in order, each in its own transaction."""
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("SELECT pg_advisory_lock(7171)")  # one migrator at a time
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations "
            "(version text PRIMARY KEY, applied_at timestamptz DEFAULT now())"
        )
        done = {row["version"] for row in await conn.fetch("SELECT version FROM schema_migrations")}
        applied = []
        for path in sorted(MIGRATIONS.glob("V*__*.sql")):
            version = path.name.split("__")[0]
            if version in done:
                continue
            async with conn.transaction():
                await conn.execute(path.read_text())
                await conn.execute("INSERT INTO schema_migrations (version) VALUES ($1)", version)
            applied.append(path.name)
        return applied
    finally:
        await conn.close()


def _month(ts: datetime) -> tuple[int, int]:
    return ts.year, ts.month


class PostgresSink:
    name = "postgres"

    def __init__(self, dsn: str, *, pool_size: int = 4, anomaly_threshold: float = ANOMALY_THRESHOLD) -> None:
        self._dsn, self._pool_size, self.anomaly_threshold = dsn, pool_size, anomaly_threshold
        self._pool: asyncpg.Pool | None = None
        self._months: set[tuple[str, int, int]] = set()

    @property
    def pool(self) -> asyncpg.Pool:
        if self._pool is None:
            raise RetriableError("postgres: not started")
        return self._pool

    async def start(self) -> None:
        try:
            await migrate(self._dsn)
            self._pool = await asyncpg.create_pool(self._dsn, min_size=1, max_size=self._pool_size,
                                                   init=_init_connection)
        except (OSError, asyncpg.PostgresError) as exc:
            raise RetriableError(f"postgres: cannot connect or migrate: {exc}") from exc

    async def _ensure_partitions(self, table: str, records: Sequence[EnrichedRecord]) -> None:
        for record in records:
            month = (table, *_month(record.timestamp))
            if month not in self._months:
                await self.pool.execute("SELECT polaris_ensure_partition($1, $2)", table, record.timestamp)
                self._months.add(month)

    async def _copy(self, conn: asyncpg.Connection, table: _Table, records: Sequence[EnrichedRecord]) -> None:
        rows = table.rows_of(records)
        if rows:
            await conn.copy_records_to_table(f"batch_{table.name}", records=rows, columns=table.columns)
        if table.rows is not None:  # even with no rows now: a record may have had some before
            stamps = [record.timestamp for record in records]
            await conn.execute(table.drop_stale, [record.record_id for record in records], stamps,
                               min(stamps), max(stamps))
        if rows:
            await conn.execute(table.upsert)
            await conn.execute(f"TRUNCATE batch_{table.name}")

    async def write_batch(self, batch: Batch) -> bool:
        try:
            by_table = _by_table(batch.records, self.anomaly_threshold)
            for table, records in by_table:
                await self._ensure_partitions(table.name, records)
            async with self.pool.acquire() as conn, conn.transaction():
                row = await conn.fetchrow(
                    "SELECT next_offset, epoch FROM sink_offsets WHERE sink = $1 AND topic = $2 AND partition = $3 "
                    "FOR UPDATE", self.name, batch.topic, batch.partition)
                stored = Position(row["next_offset"], row["epoch"]) if row else None
                if decide(stored, batch) is Decision.SKIP:
                    return False
                for table, records in by_table:
                    await self._copy(conn, table, records)
                await conn.execute(
                    "INSERT INTO sink_offsets (sink, topic, partition, next_offset, epoch) "
                    "VALUES ($1, $2, $3, $4, $5) "
                    "ON CONFLICT (sink, topic, partition) DO UPDATE SET next_offset = $4, updated_at = now()",
                    self.name, batch.topic, batch.partition, batch.next_offset, batch.epoch)
                return True
        except asyncpg.DataError as exc:
            raise RecordRejected(_rejected_id(exc, batch), f"postgres: {exc.__class__.__name__}: {exc}") from exc
        except STORE_ERRORS as exc:
            raise RetriableError(f"postgres: {exc.__class__.__name__}: {exc}") from exc

    async def committed_offsets(
        self, topic: str, partitions: Sequence[int], *, claim: bool = False
    ) -> dict[int, Position]:
        try:
            async with self.pool.acquire() as conn, conn.transaction():
                if claim:
                    rows = await conn.fetch(
                        "INSERT INTO sink_offsets (sink, topic, partition, epoch) "
                        "SELECT $1, $2, p, 1 FROM unnest($3::int[]) p "
                        "ON CONFLICT (sink, topic, partition) DO UPDATE SET epoch = sink_offsets.epoch + 1 "
                        "RETURNING partition, next_offset, epoch", self.name, topic, list(partitions))
                else:
                    rows = await conn.fetch(
                        "SELECT partition, next_offset, epoch FROM sink_offsets WHERE sink = $1 AND topic = $2 "
                        "AND partition = ANY($3::int[])", self.name, topic, list(partitions))
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            raise RetriableError(f"postgres: {exc}") from exc
        return {row["partition"]: Position(row["next_offset"], row["epoch"]) for row in rows}

    async def health(self) -> None:
        try:
            await self.pool.fetchval("SELECT 1 FROM sink_offsets LIMIT 1")
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            raise RetriableError(f"postgres: {exc}") from exc

    async def count_records(self) -> int:
        return int(await self.pool.fetchval("SELECT count(*) FROM log_records"))

    async def count_rows(self, table: str) -> int:
        if table not in {t.name for t in (*TABLES.values(), *DERIVED)}:
            raise ValueError(f"unknown table {table!r}")
        return int(await self.pool.fetchval(f"SELECT count(*) FROM {table}"))

    async def repair(self, records: Sequence[EnrichedRecord]) -> None:
        """`write_batch`'s upserts in one transaction, without the `sink_offsets` lock and update."""
        try:
            by_table = _by_table(records, self.anomaly_threshold)
            for table, rows in by_table:
                await self._ensure_partitions(table.name, rows)
            async with self.pool.acquire() as conn, conn.transaction():
                for table, rows in by_table:
                    await self._copy(conn, table, rows)
        except asyncpg.DataError as exc:
            one = records[0].record_id if len(records) == 1 else None
            raise RecordRejected(one, f"postgres: {exc.__class__.__name__}: {exc}") from exc
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            raise RetriableError(f"postgres: {exc.__class__.__name__}: {exc}") from exc

    async def close(self) -> None:
        if self._pool is not None:
            pool, self._pool = self._pool, None
            await pool.close()


async def _init_connection(conn: asyncpg.Connection) -> None:
    for table in (*TABLES.values(), *DERIVED):
        await conn.execute(f"CREATE TEMP TABLE IF NOT EXISTS batch_{table.name} (LIKE {table.name} INCLUDING DEFAULTS)")


def _by_table(records: Sequence[EnrichedRecord], threshold: float) -> list[tuple[_Table, list[EnrichedRecord]]]:
    # A record the process tier emitted twice can sit twice in one batch; an upsert may touch a
    # row only once per statement, and the copies are identical: keep one.
    records = list({record.record_id: record for record in records}.values())
    grouped: dict[str, list[EnrichedRecord]] = {}
    for record in records:
        grouped.setdefault(record.kind, []).append(record)
    tables = [(TABLES[kind], rows) for kind, rows in grouped.items()]
    anomalous = [record for record in records if record.anomaly_score >= threshold]
    if anomalous:
        tables.append((ANOMALIES, anomalous))
    if "log" in grouped:  # every log record, with entities or not: its earlier entity rows may go
        tables.append((ENTITIES, grouped["log"]))
    return tables


def _rejected_id(exc: Exception, batch: Batch) -> str | None:
    """A one-record batch names its record; otherwise the writer goes one by one."""
    return batch.records[0].record_id if len(batch.records) == 1 else None
