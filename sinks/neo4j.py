"""Neo4j sink: the operations graph of services, hosts, databases and errors.

What the graph holds (every name is a node keyed by a uniqueness constraint):

- ``(:LogRecord {record_id})-[:FROM]->(:Service {name})`` (service "unknown" when missing) and
  ``(:LogRecord)-[:OCCURS_ON]->(:Host)`` when the record names its host.
- ``(:Service)-[:RUNS_ON {count}]->(:Host)``: distinct records of the service on the host.
- ``(:Error {name})-[:OCCURS_ON {count, last_seen}]->(:Service)``: one Error per EXCEPTION or
  ERROR_CODE entity text; count = distinct records of the service mentioning it.
- ``(:Service)-[:CONNECTS_TO {count}]->(:Database | :Host)``: DATABASE entities, and HOST/IP
  entities other than the record's own host.
- ``(:Service)-[:DEPENDS_ON {count}]->(:Service)``: SERVICE entities other than its own service.
- ``(:Error)-[:CAUSED_BY {count}]->(:Error)``: a record's EXCEPTION entities in text order (a
  Java "Caused by:" chain), each caused by the next one.

Which edges a record yields is a pure function (`graph_rows`), so it is tested without Neo4j.

Guarantee: exactly once, relationship counters included. Atomicity: one explicit
transaction (not `execute_write`, whose own retries would nest inside the writer's) first
write-locks the partition's `SinkOffset` node, applies the shared fencing rule, MERGEs the
batch with UNWIND and moves the position. The fence stops replays at the same offsets; it
cannot stop a record the process tier re-emitted at new offsets after a crash. So a counter
moves only for a record whose `LogRecord` node this very write creates: the batch is deduped
by record_id in Python, the MERGE of the LogRecord nodes reports which ones it created, and
only those records feed the counter increments, in the same transaction. Creation is read
from MERGE itself (not from a prior read) because the record_id constraint makes a concurrent
MERGE of the same id wait for this transaction, so two writers never both see a record as new.
Increments read and write the counter in one SET, for which Cypher takes the write lock before
reading: no lost updates between partitions sharing an edge.

Parameters only: no Cypher is ever built from record text (labels and relationship types come
from the constants below). Idempotency key: record_id. Retriable: service unavailable, session
expired, transient errors (deadlocks included). Not retriable: a constraint or type error caused
by a record's content (dead-lettered).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Sequence
from datetime import UTC, datetime
from itertools import pairwise

from neo4j import AsyncDriver, AsyncGraphDatabase, AsyncTransaction
from neo4j.exceptions import (
    ClientError,
    DatabaseError,
    DriverError,
    Neo4jError,
    ServiceUnavailable,
    SessionExpired,
    TransientError,
)

from schemas.records import EnrichedRecord, LogRecord
from sinks.base import Batch, Decision, Position, RecordRejected, RetriableError, decide, log_records_of

CONSTRAINTS = (
    "CREATE CONSTRAINT service_name IF NOT EXISTS FOR (n:Service) REQUIRE n.name IS UNIQUE",
    "CREATE CONSTRAINT host_name IF NOT EXISTS FOR (n:Host) REQUIRE n.name IS UNIQUE",
    "CREATE CONSTRAINT database_name IF NOT EXISTS FOR (n:Database) REQUIRE n.name IS UNIQUE",
    "CREATE CONSTRAINT error_name IF NOT EXISTS FOR (n:Error) REQUIRE n.name IS UNIQUE",
    "CREATE CONSTRAINT log_record_id IF NOT EXISTS FOR (n:LogRecord) REQUIRE n.record_id IS UNIQUE",
    "CREATE CONSTRAINT sink_offset_key IF NOT EXISTS FOR (n:SinkOffset) REQUIRE n.key IS UNIQUE",
)

UNKNOWN_SERVICE = "unknown"
MAX_NAME_CHARS = 512  # entity texts become index keys; Neo4j refuses keys over ~8 KB
ERROR_LABELS = frozenset({"EXCEPTION", "ERROR_CODE"})
PEER_HOST_LABELS = frozenset({"HOST", "IP"})

# Edge kind -> (source label, relationship type, target label). Constants only: these are
# the sole pieces of Cypher text not written out literally below.
EDGES: dict[str, tuple[str, str, str]] = {
    "runs_on": ("Service", "RUNS_ON", "Host"),
    "error_on": ("Error", "OCCURS_ON", "Service"),
    "connects_db": ("Service", "CONNECTS_TO", "Database"),
    "connects_host": ("Service", "CONNECTS_TO", "Host"),
    "depends_on": ("Service", "DEPENDS_ON", "Service"),
    "caused_by": ("Error", "CAUSED_BY", "Error"),
}
LAST_SEEN_EDGES = frozenset({"error_on"})  # edges that also keep the newest record time

_LOCK_POSITION = (
    "MERGE (o:SinkOffset {key: $key}) "
    "ON CREATE SET o.next_offset = -1, o.epoch = 0 "
    "SET o.locked_at = timestamp() "  # a write takes the node's lock until commit
    "RETURN o.next_offset AS next_offset, o.epoch AS epoch"
)
# `_created` lives only inside this statement: set by ON CREATE, read, then removed, so the
# committed node never carries it and the statement returns exactly the ids it created.
_MERGE_RECORDS = """
UNWIND $rows AS r
MERGE (l:LogRecord {record_id: r.record_id})
ON CREATE SET l._created = true
WITH r, l, l._created IS NOT NULL AS is_new
REMOVE l._created
SET l.ts = datetime(r.ts), l.level = r.level, l.message = r.message, l.template_id = r.template_id,
    l.anomaly_score = r.anomaly_score
MERGE (s:Service {name: r.service})
MERGE (l)-[:FROM]->(s)
FOREACH (_ IN CASE WHEN r.host IS NULL THEN [] ELSE [1] END |
  MERGE (h:Host {name: r.host})
  MERGE (l)-[:OCCURS_ON]->(h))
WITH r, is_new WHERE is_new
RETURN r.record_id AS record_id
"""
_SET_POSITION = "MATCH (o:SinkOffset {key: $key}) SET o.next_offset = $next_offset, o.epoch = $epoch"
_LATER = (  # the newer of the stored and the row's time: replays never move it back
    "CASE WHEN {x}.last_seen IS NULL OR {x}.last_seen < datetime(r.last_seen) THEN datetime(r.last_seen) "
    "ELSE {x}.last_seen END"
)


def _increment(kind: str) -> str:
    source, rel_type, target = EDGES[kind]
    # `coalesce(e.count, 0) + r.n` reads and writes in one SET: Cypher locks e before reading.
    sets = ["e.count = coalesce(e.count, 0) + r.n"]
    if kind in LAST_SEEN_EDGES:
        sets += [f"e.last_seen = {_LATER.format(x='e')}", f"a.last_seen = {_LATER.format(x='a')}"]
    return (
        f"UNWIND $rows AS r MERGE (a:{source} {{name: r.source}}) MERGE (b:{target} {{name: r.target}}) "
        f"MERGE (a)-[e:{rel_type}]->(b) SET {', '.join(sets)}"
    )


_INCREMENTS = {kind: _increment(kind) for kind in EDGES}
_HELD_PAGE = (
    "MATCH (l:LogRecord) WHERE l.record_id > $after WITH l ORDER BY l.record_id LIMIT $page "
    "RETURN collect([l.record_id, l.ts.epochMillis]) AS rows"
)
_RELATIONSHIP_COUNTS = " UNION ALL ".join(
    f"MATCH (:{source})-[e:{rel_type}]->(:{target}) RETURN '{rel_type}' AS type, sum(e.count) AS n"
    for source, rel_type, target in EDGES.values()
)


def _row(record: LogRecord) -> dict[str, object]:
    return {
        "record_id": record.record_id, "ts": record.timestamp.isoformat(), "level": record.level,
        "message": record.message[:4096], "template_id": record.template_id,
        "anomaly_score": record.anomaly_score, "service": record.service or UNKNOWN_SERVICE, "host": record.host,
    }


def _names(record: LogRecord, labels: frozenset[str]) -> list[str]:
    """Distinct entity texts with one of `labels`, in text order (first mention wins)."""
    names: dict[str, None] = {}
    for entity in record.entities:
        name = entity.text.strip()[:MAX_NAME_CHARS]
        if entity.label in labels and name:
            names.setdefault(name)
    return list(names)


def graph_rows(record: LogRecord) -> dict[str, list[dict[str, str]]]:
    """The counted edges one record yields, per kind of `EDGES`: {source, target} rows.

    Each edge appears at most once per record, so summing over records counts distinct
    records. Pure: the sink decides which records count (the new ones) and adds them up.
    """
    service = record.service or UNKNOWN_SERVICE
    edges: dict[str, list[dict[str, str]]] = {kind: [] for kind in EDGES}
    if record.host is not None:
        edges["runs_on"].append({"source": service, "target": record.host})
    edges["error_on"] = [{"source": error, "target": service} for error in _names(record, ERROR_LABELS)]
    edges["connects_db"] = [{"source": service, "target": db} for db in _names(record, frozenset({"DATABASE"}))]
    edges["connects_host"] = [{"source": service, "target": host}
                              for host in _names(record, PEER_HOST_LABELS) if host != record.host]
    edges["depends_on"] = [{"source": service, "target": other}
                           for other in _names(record, frozenset({"SERVICE"})) if other != service]
    chain = _names(record, frozenset({"EXCEPTION"}))  # distinct, so no self-loops and no repeated pair
    edges["caused_by"] = [{"source": effect, "target": cause} for effect, cause in pairwise(chain)]
    return edges


def counter_rows(records: Iterable[LogRecord]) -> dict[str, list[dict[str, object]]]:
    """Increments per edge over `records` (each counted once): {source, target, n[, last_seen]}.

    Rows are sorted so concurrent writers lock shared edges in the same order (fewer deadlocks).
    """
    counts: dict[str, dict[tuple[str, str], int]] = {kind: {} for kind in EDGES}
    last_seen: dict[tuple[str, str], datetime] = {}
    for record in records:
        for kind, rows in graph_rows(record).items():
            for row in rows:
                edge = (row["source"], row["target"])
                counts[kind][edge] = counts[kind].get(edge, 0) + 1
                if kind in LAST_SEEN_EDGES:
                    seen = last_seen.get(edge)
                    last_seen[edge] = record.timestamp if seen is None else max(seen, record.timestamp)
    result: dict[str, list[dict[str, object]]] = {}
    for kind, edges in counts.items():
        result[kind] = [
            {"source": source, "target": target, "n": n,
             **({"last_seen": last_seen[(source, target)].isoformat()} if kind in LAST_SEEN_EDGES else {})}
            for (source, target), n in sorted(edges.items())
        ]
    return result


def graph_rows_for_counting(record: LogRecord) -> list[tuple[str, str, str]]:
    """`graph_rows` flattened to (kind, source, target): summed over the distinct records
    written, the exact counts the store must hold (see `stored_edge_counts`)."""
    return [(kind, row["source"], row["target"]) for kind, rows in graph_rows(record).items() for row in rows]


def distinct_records(records: Iterable[LogRecord]) -> list[LogRecord]:
    """One record per record_id (the first), sorted by it so writers lock nodes in one order."""
    first: dict[str, LogRecord] = {}
    for record in records:
        first.setdefault(record.record_id, record)
    return [first[record_id] for record_id in sorted(first)]


_EDGE_COUNTS = " UNION ALL ".join(
    f"MATCH (a:{source})-[e:{rel_type}]->(b:{target}) WHERE a.name STARTS WITH $prefix OR b.name STARTS WITH $prefix "
    f"RETURN '{kind}' AS kind, a.name AS source, b.name AS target, e.count AS n"
    for kind, (source, rel_type, target) in EDGES.items()
)


async def stored_edge_counts(uri: str, user: str, password: str, prefix: str) -> dict[tuple[str, str, str], int]:
    """Stored `count` per (kind, source, target) for the edges with an end named `prefix...`.

    Every counted edge but CAUSED_BY has a Service end, so prefixed service names select
    exactly their edges; CAUSED_BY links Error nodes, whose names are shared by all services,
    so it is selected only when an error name itself carries the prefix.
    """
    driver = AsyncGraphDatabase.driver(uri, auth=(user, password))
    try:
        records, _, _ = await driver.execute_query(_EDGE_COUNTS, prefix=prefix)
    finally:
        await driver.close()
    return {(r["kind"], r["source"], r["target"]): int(r["n"] or 0) for r in records}


async def _merge(tx: AsyncTransaction, records: Sequence[LogRecord]) -> None:
    """MERGE the records and their graph; counters move only for the LogRecord nodes created here."""
    if not records:
        return
    created = set(await (await tx.run(_MERGE_RECORDS, rows=[_row(r) for r in records])).value())
    for kind, rows in counter_rows(r for r in records if r.record_id in created).items():
        if rows:
            await (await tx.run(_INCREMENTS[kind], rows=rows)).consume()


def _as_sink_error(exc: Exception, records: Sequence[EnrichedRecord]) -> Exception:
    """The writer's view of a driver error: retriable (the store), rejected (a record's content)."""
    # DatabaseError is the server failing (a full disk among its causes), not the records
    if isinstance(exc, (ServiceUnavailable, SessionExpired, TransientError, DatabaseError, DriverError, OSError)):
        return RetriableError(f"neo4j: {exc.__class__.__name__}: {exc}")
    if isinstance(exc, ClientError):
        one = records[0].record_id if len(records) == 1 else None
        return RecordRejected(one, f"neo4j: {exc.code}: {exc.message}")
    return exc


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
        records = distinct_records(log_records_of(batch, self.name))
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
                    await _merge(tx, records)
                    await tx.run(_SET_POSITION, key=key, next_offset=batch.next_offset, epoch=batch.epoch)
                    await tx.commit()
                    return True
                finally:
                    if not tx.closed():
                        await tx.close()
        except Exception as exc:
            error = _as_sink_error(exc, batch.records)
            if error is exc:
                raise
            raise error from exc

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

    async def held_records(self, page: int = 50_000) -> AsyncIterator[tuple[str, datetime | None]]:
        """(record_id, timestamp) of every LogRecord node, in record_id order (`polaris verify`).

        A page comes back as one collected list: the driver spends ~100 µs of CPU per returned
        row, and a list of 50,000 pairs decodes in milliseconds. Paging by the record_id key
        uses the constraint's index, so a page costs the same at any depth."""
        after = ""
        while True:
            rows, _, _ = await self.driver.execute_query(_HELD_PAGE, after=after, page=page)
            pairs = rows[0]["rows"]
            for record_id, millis in pairs:
                yield str(record_id), None if millis is None else datetime.fromtimestamp(millis / 1000, UTC)
            if len(pairs) < page:
                return
            after = str(pairs[-1][0])

    async def duplicate_records(self) -> int:
        """LogRecord nodes beyond one per record_id (the constraint should keep this 0)."""
        rows, _, _ = await self.driver.execute_query(
            "MATCH (l:LogRecord) RETURN count(l.record_id) - count(DISTINCT l.record_id) AS n")
        return int(rows[0]["n"])

    async def relationship_counts(self) -> dict[str, int]:
        """Sum of `count` per counted relationship type (OCCURS_ON: Error->Service only)."""
        records, _, _ = await self.driver.execute_query(_RELATIONSHIP_COUNTS)
        totals = {rel_type: 0 for _, rel_type, _ in EDGES.values()}
        for record in records:
            totals[record["type"]] += int(record["n"] or 0)
        return totals

    async def close(self) -> None:
        if self._driver is not None:
            driver, self._driver = self._driver, None
            await driver.close()

    async def repair(self, records: Sequence[EnrichedRecord]) -> None:
        """`write_batch`'s record MERGE and counter increments (for the nodes it creates) in one
        transaction, without the SinkOffset lock and update (`polaris verify --repair`)."""
        logs = distinct_records(log_records_of(records, self.name))
        if not logs:
            return
        try:
            async with self.driver.session() as session:
                tx = await session.begin_transaction()
                try:
                    await _merge(tx, logs)
                    await tx.commit()
                finally:
                    if not tx.closed():
                        await tx.close()
        except Exception as exc:
            error = _as_sink_error(exc, logs)
            if error is exc:
                raise
            raise error from exc
