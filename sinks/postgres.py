"""PostgreSQL sink (asyncpg).

Guarantee: exactly once. Atomicity: one transaction locks the partition's row in
`sink_offsets` (FOR UPDATE), applies the fencing rule, COPYs the batch into a temporary
table, upserts it into `log_records` keyed by (ts, record_id) and moves the position.
Idempotency key: record_id. Retriable: connection loss, timeouts, serialization failures,
the server shutting down. Not retriable (dead-lettered): data errors such as a value the
column types refuse.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

import asyncpg

from schemas.records import LogRecord
from sinks.base import Batch, Decision, Position, RecordRejected, RetriableError, decide

MIGRATIONS = Path(__file__).resolve().parents[1] / "schemas" / "migrations"

_COLUMNS = (
    "ts", "record_id", "origin_topic", "origin_partition", "origin_offset", "format", "level", "host",
    "service", "message", "template", "template_id", "category", "severity", "anomaly_score",
    "anomaly_reason", "fields", "entities", "redacted",
)
_UPDATES = ", ".join(f"{column} = EXCLUDED.{column}" for column in _COLUMNS[2:])
_UPSERT = (
    f"INSERT INTO log_records ({', '.join(_COLUMNS)}) SELECT {', '.join(_COLUMNS)} FROM batch_log_records "
    f"ON CONFLICT (ts, record_id) DO UPDATE SET {_UPDATES}, written_at = now()"
)


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


def _row(record: LogRecord) -> tuple[object, ...]:
    # NUL is the one character PostgreSQL text cannot hold; it is never meaningful in a log line.
    def text(value: str | None) -> str | None:
        return value.replace("\x00", "\ufffd") if value else value

    return (
        record.timestamp, record.record_id, record.origin.topic, record.origin.partition, record.origin.offset,
        record.format, record.level, text(record.host), text(record.service), text(record.message),
        text(record.template), record.template_id, record.category, record.severity, record.anomaly_score,
        record.anomaly_reason, json.dumps(record.fields).replace("\\u0000", "\\ufffd"),
        json.dumps([entity.model_dump() for entity in record.entities]).replace("\\u0000", "\\ufffd"),
        list(record.redacted),
    )


def _month(ts: datetime) -> tuple[int, int]:
    return ts.year, ts.month


class PostgresSink:
    name = "postgres"

    def __init__(self, dsn: str, *, pool_size: int = 4) -> None:
        self._dsn, self._pool_size = dsn, pool_size
        self._pool: asyncpg.Pool | None = None
        self._months: set[tuple[int, int]] = set()

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

    async def _ensure_partitions(self, records: Sequence[LogRecord]) -> None:
        for month in {_month(record.timestamp) for record in records} - self._months:
            first = records[[_month(r.timestamp) for r in records].index(month)].timestamp
            await self.pool.execute("SELECT polaris_ensure_month_partition($1)", first)
            self._months.add(month)

    async def write_batch(self, batch: Batch) -> bool:
        try:
            if batch.records:
                await self._ensure_partitions(batch.records)
            async with self.pool.acquire() as conn, conn.transaction():
                row = await conn.fetchrow(
                    "SELECT next_offset, epoch FROM sink_offsets WHERE sink = $1 AND topic = $2 AND partition = $3 "
                    "FOR UPDATE", self.name, batch.topic, batch.partition)
                stored = Position(row["next_offset"], row["epoch"]) if row else None
                if decide(stored, batch) is Decision.SKIP:
                    return False
                if batch.records:
                    await conn.copy_records_to_table("batch_log_records", records=[_row(r) for r in batch.records],
                                                     columns=_COLUMNS)
                    await conn.execute(_UPSERT)
                    await conn.execute("TRUNCATE batch_log_records")
                await conn.execute(
                    "INSERT INTO sink_offsets (sink, topic, partition, next_offset, epoch) "
                    "VALUES ($1, $2, $3, $4, $5) "
                    "ON CONFLICT (sink, topic, partition) DO UPDATE SET next_offset = $4, updated_at = now()",
                    self.name, batch.topic, batch.partition, batch.next_offset, batch.epoch)
                return True
        except asyncpg.DataError as exc:
            raise RecordRejected(_rejected_id(exc, batch), f"postgres: {exc.__class__.__name__}: {exc}") from exc
        except (OSError, asyncpg.PostgresConnectionError, asyncpg.InterfaceError,
                asyncpg.exceptions.OperatorInterventionError, asyncpg.exceptions.SerializationError,
                asyncpg.exceptions.DeadlockDetectedError, asyncpg.exceptions.CannotConnectNowError) as exc:
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

    async def close(self) -> None:
        if self._pool is not None:
            pool, self._pool = self._pool, None
            await pool.close()


async def _init_connection(conn: asyncpg.Connection) -> None:
    await conn.execute(
        "CREATE TEMP TABLE IF NOT EXISTS batch_log_records (LIKE log_records INCLUDING DEFAULTS)")


def _rejected_id(exc: Exception, batch: Batch) -> str | None:
    """A one-record batch names its record; otherwise the writer goes one by one."""
    return batch.records[0].record_id if len(batch.records) == 1 else None
