"""The Neo4j sink's operations graph on the real Neo4j: exact counters under duplicates.

Records are built here and written straight through `Neo4jSink.write_batch` on a topic of
this test's own (fresh SinkOffset keys), with names of their own (a uuid suffix), so nothing
shared is read or cleaned up. Duplicates come three ways: inside one batch, the same
record_ids at new offsets (a process-tier re-emission, which the fence cannot catch), and a
replay at the same offsets (which the fence skips). Counters must count each record once.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta

import pytest

from schemas.records import Entity, LogRecord, Origin
from sinks.base import Batch, Position
from sinks.neo4j import EDGES, Neo4jSink, graph_rows_for_counting, stored_edge_counts
from workers.settings import Settings

T0 = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
Edges = dict[tuple[str, str, str], int]


@pytest.fixture
async def sink(stack: Settings) -> AsyncIterator[Neo4jSink]:
    sink = Neo4jSink(stack.neo4j_uri, stack.neo4j_user, stack.neo4j_password.get_secret_value())
    await sink.start()
    try:
        yield sink
    finally:
        await sink.close()


class Names:
    """Node names unique to one test run."""

    def __init__(self) -> None:
        s = uuid.uuid4().hex[:12]
        self.topic = f"test.neo4j-graph.{s}"
        self.svc_a, self.svc_b = f"svc-a-{s}", f"svc-b-{s}"
        self.host1, self.host2, self.db = f"host1-{s}", f"host2-{s}", f"db-{s}"
        self.outer, self.inner = f"org.test.Outer{s}Exception", f"java.io.Inner{s}Exception"
        self.code = f"E-{s}"
        self.ids = [f"r-graph-{s}-{i}" for i in range(6)]

    def all(self) -> list[str]:
        return [self.svc_a, self.svc_b, self.host1, self.host2, self.db, self.outer, self.inner, self.code]


def log(record_id: str, service: str | None, host: str | None, *entities: tuple[str, str],
        at: datetime = T0) -> LogRecord:
    return LogRecord(
        record_id=record_id, origin=Origin(topic="logs.raw", partition=0, offset=0), timestamp=at,
        format="json", service=service, host=host, message=f"test line {record_id}",
        entities=tuple(Entity(label=label, text=text) for label, text in entities),
    )


def batch(topic: str, partition: int, start: int, records: Sequence[LogRecord]) -> Batch:
    return Batch(topic=topic, partition=partition, start_offset=start, next_offset=start + len(records),
                 epoch=1, records=list(records))


async def edges_among(sink: Neo4jSink, names: list[str]) -> Edges:
    records, _, _ = await sink.driver.execute_query(
        "MATCH (a)-[e:RUNS_ON|OCCURS_ON|CONNECTS_TO|DEPENDS_ON|CAUSED_BY]->(b) "
        "WHERE a.name IN $names AND b.name IN $names "
        "RETURN type(e) AS type, a.name AS a, b.name AS b, e.count AS n", names=names)
    edges: Edges = {}
    for r in records:
        edge = (r["type"], r["a"], r["b"])
        assert edge not in edges, f"two {edge[0]} relationships from {edge[1]} to {edge[2]}"
        edges[edge] = r["n"]
    return edges


def records_of(n: Names) -> dict[str, LogRecord]:
    """r1..r3 as in the expected counts of the test below."""
    return {
        "r1": log(n.ids[1], n.svc_a, n.host1,
                  ("EXCEPTION", n.outer), ("EXCEPTION", n.inner), ("DATABASE", n.db), ("SERVICE", n.svc_b),
                  ("HOST", n.host2), ("IP", n.host1), ("SERVICE", n.svc_a), at=T0),
        "r2": log(n.ids[2], n.svc_a, n.host1, ("EXCEPTION", n.outer), ("ERROR_CODE", n.code),
                  ("EXCEPTION", n.outer), at=T0 + timedelta(minutes=5)),
        "r3": log(n.ids[3], n.svc_b, n.host2, ("DATABASE", n.db), ("SERVICE", n.svc_a), ("EXCEPTION", n.inner),
                  at=T0 + timedelta(minutes=1)),
    }


async def test_counters_count_each_record_once(sink: Neo4jSink, stack: Settings) -> None:
    n = Names()
    r = records_of(n)

    # Offsets 0-2: r2 twice inside one batch. Offsets 3-4: r3 new, r1 re-emitted at a new offset.
    assert await sink.write_batch(batch(n.topic, 0, 0, [r["r1"], r["r2"], r["r2"]]))
    assert await sink.write_batch(batch(n.topic, 0, 3, [r["r3"], r["r1"]]))

    expected: Edges = {
        ("RUNS_ON", n.svc_a, n.host1): 2, ("RUNS_ON", n.svc_b, n.host2): 1,
        ("OCCURS_ON", n.outer, n.svc_a): 2, ("OCCURS_ON", n.inner, n.svc_a): 1,
        ("OCCURS_ON", n.code, n.svc_a): 1, ("OCCURS_ON", n.inner, n.svc_b): 1,
        ("CONNECTS_TO", n.svc_a, n.db): 1, ("CONNECTS_TO", n.svc_b, n.db): 1,
        ("CONNECTS_TO", n.svc_a, n.host2): 1,  # r1's own host (as IP) is no connection
        ("DEPENDS_ON", n.svc_a, n.svc_b): 1, ("DEPENDS_ON", n.svc_b, n.svc_a): 1,
        ("CAUSED_BY", n.outer, n.inner): 1,
    }
    assert await edges_among(sink, n.all()) == expected

    # The same records again: replayed at the same offsets (fenced), then at new offsets of
    # the same partition and of another partition (not fenced: only the record_ids match).
    assert not await sink.write_batch(batch(n.topic, 0, 0, [r["r1"], r["r2"], r["r2"]]))
    assert await sink.write_batch(batch(n.topic, 0, 5, [r["r2"], r["r3"]]))
    assert await sink.write_batch(batch(n.topic, 1, 0, [r["r3"], r["r2"], r["r1"]]))
    assert await edges_among(sink, n.all()) == expected, "a second write of the same records changed counters"

    assert await sink.committed_offsets(n.topic, [0, 1]) == {0: Position(7, 1), 1: Position(3, 1)}
    found, _, _ = await sink.driver.execute_query(
        "MATCH (l:LogRecord)-[:FROM]->(s:Service) WHERE l.record_id IN $ids "
        "OPTIONAL MATCH (l)-[:OCCURS_ON]->(h:Host) RETURN l.record_id AS id, s.name AS s, h.name AS h, "
        "keys(l) AS keys", ids=n.ids)
    assert sorted((f["id"], f["s"], f["h"]) for f in found) == [
        (n.ids[1], n.svc_a, n.host1), (n.ids[2], n.svc_a, n.host1), (n.ids[3], n.svc_b, n.host2)]
    assert all("_created" not in f["keys"] for f in found), "the creation marker must not be committed"

    seen, _, _ = await sink.driver.execute_query(
        "MATCH (e:Error {name: $outer})-[o:OCCURS_ON]->(:Service {name: $svc}) "
        "RETURN o.last_seen AS rel, e.last_seen AS node", outer=n.outer, svc=n.svc_a)
    latest = T0 + timedelta(minutes=5)  # r2's time, later than r1's
    assert seen[0]["rel"].to_native() == latest and seen[0]["node"].to_native() == latest

    # What the chaos check compares: the pure mapping summed over distinct records vs the store.
    truth: Edges = {}
    for rec in r.values():
        for edge in graph_rows_for_counting(rec):
            truth[edge] = truth.get(edge, 0) + 1
    stored = await stored_edge_counts(stack.neo4j_uri, stack.neo4j_user, stack.neo4j_password.get_secret_value(),
                                      prefix=n.svc_a)
    assert stored == {(kind, a, b): v for (kind, a, b), v in truth.items() if n.svc_a in (a, b)}
    assert {(EDGES[kind][1], a, b) for kind, a, b in truth} == set(expected)

    totals = await sink.relationship_counts()
    assert set(totals) == {"RUNS_ON", "OCCURS_ON", "CONNECTS_TO", "DEPENDS_ON", "CAUSED_BY"}
    for rel_type in totals:  # other writers may share the database: ours are a lower bound
        assert totals[rel_type] >= sum(v for (t, _, _), v in expected.items() if t == rel_type)


async def test_concurrent_writers_count_each_record_once(sink: Neo4jSink) -> None:
    """Two partitions' transactions at once: the same new record in both (only one of them may
    count it), plus a record of its own in one, sharing every edge (no lost increment, and no
    second relationship when both create the edge)."""
    n = Names()
    rounds = 3
    for i in range(rounds):
        shared, own = (log(f"{n.ids[0]}-{i}-{k}", n.svc_b, n.host2, ("EXCEPTION", n.outer), ("EXCEPTION", n.inner))
                       for k in ("shared", "own"))
        written = await asyncio.gather(sink.write_batch(batch(n.topic, 0, i, [shared])),
                                       sink.write_batch(batch(n.topic, 1, 2 * i, [own, shared])))
        assert all(written), "both partitions apply their batch: only the counters dedupe"
    count = 2 * rounds  # distinct records
    assert await edges_among(sink, n.all()) == {
        ("RUNS_ON", n.svc_b, n.host2): count, ("OCCURS_ON", n.outer, n.svc_b): count,
        ("OCCURS_ON", n.inner, n.svc_b): count, ("CAUSED_BY", n.outer, n.inner): count,
    }
