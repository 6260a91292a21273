"""`polaris verify` against the real stores: a private enriched topic, records written through
the sinks with one left out of PostgreSQL and one out of Neo4j; verify names exactly those,
`--repair` writes them without moving any stored position, and verify then finds no drift."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from itertools import pairwise

import asyncpg
import pytest
import redis.asyncio as aioredis
import weaviate
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from neo4j import AsyncGraphDatabase
from weaviate.util import generate_uuid5

from schemas.records import EnrichedRecord, EventRecord, LogRecord, MetricRecord, Origin
from schemas.topology import load_topology
from sinks.base import Batch, Position
from sinks.redis import record_key
from sinks.weaviate import COLLECTION, POSITIONS, object_uuid
from workers.settings import Settings
from workers.stores import STORES, find_record
from workers.verify import StoreReport, VerifyError, bucket_of, close_sinks, expected_stores, open_sinks, verify

pytestmark = pytest.mark.integration
PARTITIONS = 2
# Record times in a month nobody else writes, so the bucket counts of these records are exact.
BASE = datetime(2001, 1, 1, tzinfo=UTC)


class Scenario:
    def __init__(self, left_out: dict[str, int]) -> None:
        self.run = uuid.uuid4().hex[:12]
        self.topic = f"verify-test-{self.run}"
        self.service, self.host = f"verify-svc-{self.run}", f"verify-host-{self.run}"
        self.series, self.user = f"verify_metric_{self.run}", f"verify-user-{self.run}"
        at = BASE + timedelta(hours=int(self.run, 16) % 500)
        raw = f"verify-raw-{self.run}"
        offsets = iter(range(100))  # origin offsets rise in emission order, as the process tier's do

        def origin() -> Origin:
            return Origin(topic=raw, partition=0, offset=next(offsets))

        def log(i: int, hours: int = 0) -> LogRecord:
            return LogRecord(record_id=f"verify-{self.run}-log-{i}", origin=origin(), format="json", level="INFO",
                             timestamp=at + timedelta(hours=hours, minutes=i), message=f"verify probe {i}",
                             service=self.service, host=self.host)

        self.logs = [log(0), log(1), log(2, hours=1), log(3, hours=1)]
        self.metric = MetricRecord(record_id=f"verify-{self.run}-metric", origin=origin(), timestamp=at,
                                   name=self.series, series=self.series, value=1.5)
        self.event = EventRecord(record_id=f"verify-{self.run}-event", origin=origin(), timestamp=at,
                                 user_id=self.user, event_type="login")
        # Partition 0 ends with a second copy of log 0, as a process-tier crash replay leaves it.
        self.layout: dict[int, list[EnrichedRecord]] = {
            0: [self.logs[0], self.logs[1], self.metric, self.logs[0]],
            1: [self.logs[2], self.logs[3], self.event],
        }
        self.left_out = {store: self.logs[i].record_id for store, i in left_out.items()}  # store -> record_id

    @property
    def records(self) -> list[EnrichedRecord]:
        return [*self.logs, self.metric, self.event]

    @property
    def ids(self) -> list[str]:
        return [r.record_id for r in self.records]


async def _create_topic(settings: Settings, topic: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, PARTITIONS, 1)])
    finally:
        await admin.close()


async def _delete_topic(settings: Settings, topic: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    try:
        await admin.delete_topics([topic])
    finally:
        await admin.close()


async def _produce(settings: Settings, scenario: Scenario) -> dict[int, int]:
    """Publish the layout; returns each partition's end offset."""
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all", enable_idempotence=True)
    await producer.start()
    ends: dict[int, int] = {}
    try:
        for partition, records in scenario.layout.items():
            for record in records:
                sent = await producer.send_and_wait(scenario.topic, record.model_dump_json().encode(),
                                                    partition=partition)
                ends[partition] = sent.offset + 1
    finally:
        await producer.stop()
    return ends


async def _write_through_sinks(settings: Settings, scenario: Scenario, ends: dict[int, int]) -> None:
    """What the sink runners would do, minus the left-out records: claim, then one batch per partition."""
    topology = load_topology(settings.topology_file)
    sinks = await open_sinks(settings)
    try:
        for name, sink in sinks.items():
            claimed = await sink.committed_offsets(scenario.topic, list(range(PARTITIONS)), claim=True)
            for partition, records in scenario.layout.items():
                assert ends[partition] == len(records), "a fresh topic: offsets are the list indexes"
                # Partition 0's replayed copy comes in a batch of its own, as after an earlier flush.
                cuts = [0, len(records) - 1, len(records)] if partition == 0 else [0, len(records)]
                for start, end in pairwise(cuts):
                    batch = [r for r in records[start:end] if name in expected_stores(r, topology)
                             and r.record_id != scenario.left_out.get(name)]
                    written = await sink.write_batch(
                        Batch(scenario.topic, partition, start, end, claimed[partition].epoch, batch))
                    assert written, f"{name} skipped a fresh batch"
    finally:
        await close_sinks(sinks)


async def _positions(settings: Settings, topic: str) -> dict[str, dict[int, Position]]:
    sinks = await open_sinks(settings)
    try:
        return {name: await sink.committed_offsets(topic, list(range(PARTITIONS))) for name, sink in sinks.items()}
    finally:
        await close_sinks(sinks)


async def _cleanup(settings: Settings, scenario: Scenario) -> None:
    """Remove the scenario's records and positions, so later verify runs do not see them."""
    ids, topic = scenario.ids, scenario.topic
    conn = await asyncpg.connect(settings.postgres_dsn.get_secret_value())
    try:
        for table in ("log_records", "metric_samples", "user_events", "anomalies"):
            await conn.execute(f"DELETE FROM {table} WHERE record_id = ANY($1::text[])", ids)
        await conn.execute("DELETE FROM sink_offsets WHERE topic = $1", topic)
    finally:
        await conn.close()
    driver = AsyncGraphDatabase.driver(
        settings.neo4j_uri, auth=(settings.neo4j_user, settings.neo4j_password.get_secret_value()))
    try:
        await driver.execute_query("MATCH (l:LogRecord) WHERE l.record_id IN $ids DETACH DELETE l", ids=ids)
        await driver.execute_query("MATCH (n) WHERE (n:Service AND n.name = $service) OR (n:Host AND n.name = $host) "
                                   "DETACH DELETE n", service=scenario.service, host=scenario.host)
        await driver.execute_query("MATCH (o:SinkOffset) WHERE o.key STARTS WITH $prefix DETACH DELETE o",
                                   prefix=f"neo4j/{topic}/")
    finally:
        await driver.close()
    client = aioredis.from_url(settings.redis_url)
    try:
        keys = [record_key(i) for i in ids] + [
            f"polaris:{kind}:redis:{topic}:{p}" for kind in ("offsets", "origins") for p in range(PARTITIONS)] + [
            f"polaris:service:{scenario.service}:latest", f"polaris:service:{scenario.service}:levels",
            f"polaris:host:{scenario.host}:latest", f"polaris:metric:{scenario.series}:latest",
            f"polaris:user:{scenario.user}:latest", f"polaris:user:{scenario.user}:events"]
        await client.delete(*keys)
    finally:
        await client.aclose()
    host, port = settings.weaviate_http.rsplit(":", 1)
    wv = weaviate.use_async_with_local(host=host, port=int(port), grpc_port=settings.port_of(settings.weaviate_grpc))
    await wv.connect()
    try:
        for record_id in ids:
            await wv.collections.get(COLLECTION).data.delete_by_id(object_uuid(record_id))
        for p in range(PARTITIONS):
            await wv.collections.get(POSITIONS).data.delete_by_id(str(generate_uuid5(f"weaviate/{topic}/{p}")))
    finally:
        await wv.close()


def _missing(stores: Sequence[StoreReport]) -> dict[str, list[str]]:
    return {s.store: s.missing for s in stores}


async def _scenario(settings: Settings, left_out: dict[str, int]) -> None:
    scenario = Scenario(left_out)
    await _create_topic(settings, scenario.topic)
    try:
        ends = await _produce(settings, scenario)
        await _write_through_sinks(settings, scenario, ends)

        first = (await verify(settings, topic=scenario.topic, sample=6)).before
        assert (first.messages, first.records, first.unreadable) == (7, 6, 0), "the replayed copy counts once"
        assert _missing(first.stores) == {store: [scenario.left_out[store]] if store in left_out else []
                                          for store in STORES}
        expected = {s.store: (s.expected, s.pending, s.expired) for s in first.stores}
        assert expected == {"postgres": (6, 0, 0), "weaviate": (4, 0, 0), "neo4j": (4, 0, 0), "redis": (4, 0, 0)}
        assert first.drift
        # Each left-out record's hour is one short in its store, and no other of our hours differs.
        ours = {bucket_of(r.timestamp, 60) for r in scenario.records}
        gaps = {(s.store, b.bucket, b.kafka - b.store) for s in first.stores for b in s.buckets if b.bucket in ours}
        assert gaps == {(store, bucket_of(scenario.logs[i].timestamp, 60), 1) for store, i in left_out.items()}
        assert {s.store for s in first.stores if s.sample_missing} <= set(left_out)

        positions = await _positions(settings, scenario.topic)
        repaired = await verify(settings, topic=scenario.topic, sample=6, repair=True)
        assert _missing(repaired.before.stores) == _missing(first.stores)
        assert repaired.repair is not None and repaired.repair.written == dict.fromkeys(left_out, 1)
        assert repaired.repair.rejected == {}
        assert repaired.after is not None
        assert not repaired.after.drift, repaired.after.to_json()
        assert all(not s.missing for s in repaired.after.stores)
        assert await _positions(settings, scenario.topic) == positions, "repair must not move a stored position"

        for record_id in scenario.left_out.values():
            found = await find_record(settings, record_id)
            assert all(found[store] for store in STORES), f"{record_id} still missing: {found}"
        again = (await verify(settings, topic=scenario.topic)).before
        assert not again.drift
        assert [(s.store, b) for s in again.stores for b in s.buckets if b.bucket in ours] == []
    finally:
        await _cleanup(settings, scenario)
        await _delete_topic(settings, scenario.topic)


def test_verify_finds_the_missing_records_and_repair_writes_them(stack: Settings) -> None:
    asyncio.run(_scenario(stack, {"postgres": 1, "neo4j": 2}))  # index into Scenario.logs


def test_repair_of_weaviate_and_redis(stack: Settings) -> None:
    # Log 0 has a replayed copy on the topic: missing at both offsets, repaired once.
    asyncio.run(_scenario(stack, {"weaviate": 3, "redis": 0}))


def test_verify_refuses_a_topic_that_does_not_exist(stack: Settings) -> None:
    with pytest.raises(VerifyError, match="does not exist"):
        asyncio.run(verify(stack, topic=f"verify-absent-{uuid.uuid4().hex[:12]}"))
