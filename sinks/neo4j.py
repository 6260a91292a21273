"""Neo4j sink: the graph of services, hosts and the log records that mention them.

Guarantee: exactly once, relationship counters included. Atomicity: one explicit
transaction (not `execute_write`, whose own retries would nest inside the writer's) first
write-locks the partition's `SinkOffset` node, applies the shared fencing rule, MERGEs the
batch with UNWIND and moves the position. Parameters only: no Cypher is ever built from
record text. Idempotency key: record_id (`LogRecord` nodes) and the fence (counters).
Retriable: service unavailable, session expired, transient errors. Not retriable: a
constraint or type error caused by a record's content (dead-lettered).
"""

from __future__ import annotations

from collections.abc import Sequence

from neo4j import AsyncDriver, AsyncGraphDatabase
from neo4j.exceptions import ClientError, DriverError, Neo4jError, ServiceUnavailable, SessionExpired, TransientError

from schemas.records import LogRecord
from sinks.base import Batch, Decision, Position, RecordRejected, RetriableError, decide, log_records_of

CONSTRAINTS = (
    "CREATE CONSTRAINT service_name IF NOT EXISTS FOR (n:Service) REQUIRE n.name IS UNIQUE",
    "CREATE CONSTRAINT host_name IF NOT EXISTS FOR (n:Host) REQUIRE n.name IS UNIQUE",
    "CREATE CONSTRAINT database_name IF NOT EXISTS FOR (n:Database) REQUIRE n.name IS UNIQUE",
    "CREATE CONSTRAINT error_name IF NOT EXISTS FOR (n:Error) REQUIRE n.name IS UNIQUE",
    "CREATE CONSTRAINT log_record_id IF NOT EXISTS FOR (n:LogRecord) REQUIRE n.record_id IS UNIQUE",
    "CREATE CONSTRAINT sink_offset_key IF NOT EXISTS FOR (n:SinkOffset) REQUIRE n.key IS UNIQUE",
)

_LOCK_POSITION = (
    "MERGE (o:SinkOffset {key: $key}) "
    "ON CREATE SET o.next_offset = -1, o.epoch = 0 "
    "SET o.locked_at = timestamp() "  # a write takes the node's lock until commit
    "RETURN o.next_offset AS next_offset, o.epoch AS epoch"
)
_MERGE_RECORDS = """
UNWIND $rows AS r
MERGE (l:LogRecord {record_id: r.record_id})
SET l.ts = datetime(r.ts), l.level = r.level, l.message = r.message, l.template_id = r.template_id,
    l.anomaly_score = r.anomaly_score
MERGE (s:Service {name: r.service})
MERGE (l)-[:FROM]->(s)
FOREACH (_ IN CASE WHEN r.host IS NULL THEN [] ELSE [1] END |
  MERGE (h:Host {name: r.host})
  MERGE (l)-[:OCCURS_ON]->(h)
  MERGE (s)-[run:RUNS_ON]->(h)
  ON CREATE SET run.count = 0
  SET run.count = run.count + 1)
"""
_SET_POSITION = "MATCH (o:SinkOffset {key: $key}) SET o.next_offset = $next_offset, o.epoch = $epoch"


def _row(record: LogRecord) -> dict[str, object]:
    return {
        "record_id": record.record_id, "ts": record.timestamp.isoformat(), "level": record.level,
        "message": record.message[:4096], "template_id": record.template_id,
        "anomaly_score": record.anomaly_score, "service": record.service or "unknown", "host": record.host,
    }


class Neo4jSink:
    name = "neo4j"

    def __init__(self, uri: str, user: str, password: str) -> None:
        self._uri, self._auth = uri, (user, password)
        self._driver: AsyncDriver | None = None

    @property
    def driver(self) -> AsyncDriver:
        if self._driver is None:
            raise RetriableError("neo4j: not started")
        return self._driver

    def _key(self, topic: str, partition: int) -> str:
        return f"{self.name}/{topic}/{partition}"

    async def start(self) -> None:
        self._driver = AsyncGraphDatabase.driver(self._uri, auth=self._auth)
        try:
            for statement in CONSTRAINTS:
                await self.driver.execute_query(statement)
        except (ServiceUnavailable, SessionExpired, OSError) as exc:
            raise RetriableError(f"neo4j: {exc}") from exc

    async def write_batch(self, batch: Batch) -> bool:
        key = self._key(batch.topic, batch.partition)
        records = log_records_of(batch, self.name)
        try:
            async with self.driver.session() as session:
                tx = await session.begin_transaction()
                try:
                    row = await (await tx.run(_LOCK_POSITION, key=key)).single()
                    assert row is not None
                    stored = Position(max(row["next_offset"], 0), row["epoch"])
                    if decide(stored, batch) is Decision.SKIP:
                        await tx.rollback()
                        return False
                    if records:
                        await tx.run(_MERGE_RECORDS, rows=[_row(r) for r in records])
                    await tx.run(_SET_POSITION, key=key, next_offset=batch.next_offset, epoch=batch.epoch)
                    await tx.commit()
                    return True
                finally:
                    if not tx.closed():
                        await tx.close()
        except (ServiceUnavailable, SessionExpired, TransientError, DriverError, OSError) as exc:
            raise RetriableError(f"neo4j: {exc.__class__.__name__}: {exc}") from exc
        except ClientError as exc:
            one = batch.records[0].record_id if len(batch.records) == 1 else None
            raise RecordRejected(one, f"neo4j: {exc.code}: {exc.message}") from exc

    async def committed_offsets(
        self, topic: str, partitions: Sequence[int], *, claim: bool = False
    ) -> dict[int, Position]:
        positions: dict[int, Position] = {}
        query = (
            "MERGE (o:SinkOffset {key: $key}) ON CREATE SET o.next_offset = -1, o.epoch = 0 "
            "SET o.epoch = o.epoch + 1 RETURN o.next_offset AS next_offset, o.epoch AS epoch"
            if claim else
            "MATCH (o:SinkOffset {key: $key}) RETURN o.next_offset AS next_offset, o.epoch AS epoch"
        )
        try:
            for partition in partitions:
                records, _, _ = await self.driver.execute_query(query, key=self._key(topic, partition))
                if records:
                    positions[partition] = Position(max(records[0]["next_offset"], 0), records[0]["epoch"])
        except (Neo4jError, DriverError, OSError) as exc:
            raise RetriableError(f"neo4j: {exc}") from exc
        return positions

    async def health(self) -> None:
        try:
            await self.driver.verify_connectivity()
        except (Neo4jError, DriverError, OSError) as exc:
            raise RetriableError(f"neo4j: {exc}") from exc

    async def count_records(self) -> int:
        records, _, _ = await self.driver.execute_query("MATCH (l:LogRecord) RETURN count(l) AS n")
        return int(records[0]["n"])

    async def close(self) -> None:
        if self._driver is not None:
            driver, self._driver = self._driver, None
            await driver.close()
