"""One sink's worker: a consumer group of its own, reading `records.enriched` into one store.

The store holds the position (ARCHITECTURE.md, "fenced offsets"): on assignment the runner
claims each partition in the store (bumping its epoch, which fences any older owner) and
seeks to the stored position; Kafka offsets are committed too, after the store commit,
but only so that lag is visible to tools. While the store is down the writer backs off and
the runner pauses its partitions but keeps polling, so it stays in the group.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Awaitable, Callable, Sequence

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from pydantic import ValidationError

from schemas.records import ENRICHED_RECORD, EnrichedRecord, LogRecord, Origin
from schemas.topology import Topology, load_topology
from sinks.base import RetriableError, Sink
from sinks.writer import SinkWriter
from workers.dlq import dlq_headers, dlq_topic
from workers.logs import get_logger
from workers.metrics import DEAD_LETTERS, RECORDS_IN
from workers.settings import Settings
from workers.worker_registry import registered_metrics

log = get_logger(__name__)


def build_sink(settings: Settings, name: str) -> Sink:
    if name == "postgres":
        from sinks.postgres import PostgresSink

        return PostgresSink(settings.postgres_dsn.get_secret_value())
    if name == "redis":
        from sinks.redis import RedisSink

        return RedisSink(settings.redis_url)
    if name == "neo4j":
        from sinks.neo4j import Neo4jSink

        return Neo4jSink(settings.neo4j_uri, settings.neo4j_user, settings.neo4j_password.get_secret_value())
    if name == "weaviate":
        from sinks.weaviate import WeaviateSink

        return WeaviateSink(settings.weaviate_http, settings.weaviate_grpc, vectorize=cached_vectorizer(settings))
    raise ValueError(f"unknown sink {name!r}; expected postgres, redis, neo4j or weaviate")


def cached_vectorizer(settings: Settings) -> Callable[[Sequence[str]], Awaitable[Sequence[Sequence[float]]]]:
    """Vectors through the Redis cache (one lookup per repeated template); straight from the
    model when Redis is unreachable, so a cache outage slows Weaviate down but never stops it."""
    import redis.asyncio as aioredis
    from redis.exceptions import RedisError

    from workers.embedding_cache import EmbeddingCache
    from workers.steps.embed import SentenceEmbedder

    embedder = SentenceEmbedder()
    cache = EmbeddingCache(aioredis.from_url(settings.redis_url, socket_timeout=5), embedder)

    async def vectorize(texts: Sequence[str]) -> Sequence[Sequence[float]]:
        try:
            return list(await cache.vectors_for(texts))
        except (RedisError, OSError) as exc:
            log.warning("embedding cache unavailable; embedding directly", error=str(exc)[:200])
            return list(await asyncio.to_thread(embedder.embed, texts))

    return vectorize


class _Claims(ConsumerRebalanceListener):  # type: ignore[misc]
    """Claims partitions in the store on assignment; partitions it could not claim stay paused."""

    def __init__(self, runner: SinkRunner) -> None:
        self.runner = runner

    async def on_partitions_revoked(self, revoked: Sequence[TopicPartition]) -> None:
        for tp in revoked:
            self.runner.writer.revoke(tp.partition)
            self.runner.unclaimed.discard(tp)

    async def on_partitions_assigned(self, assigned: Sequence[TopicPartition]) -> None:
        self.runner.unclaimed.update(assigned)
        await self.runner.claim()


class SinkRunner:
    def __init__(self, settings: Settings, sink: Sink, topology: Topology) -> None:
        self.settings, self.sink, self.topology = settings, sink, topology
        self.topic = topology.enriched_topic
        self.stage = f"sink.{sink.name}"
        self.consumer = AIOKafkaConsumer(
            bootstrap_servers=settings.kafka_bootstrap, group_id=f"{settings.sink_group_prefix}-{sink.name}",
            enable_auto_commit=False, auto_offset_reset="earliest", isolation_level="read_committed",
            max_poll_records=5000, fetch_max_bytes=16 << 20, max_partition_fetch_bytes=8 << 20,
        )
        self.producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all",
                                         enable_idempotence=True)
        self.writer = SinkWriter(sink, self.topic, self._dead_letter_record)
        self.unclaimed: set[TopicPartition] = set()
        self.stopping = asyncio.Event()
        self._claim_lock = asyncio.Lock()

    async def claim(self) -> None:
        # One claim at a time: the rebalance listener and the poll loop both call this, and two
        # interleaved claims would leave the writer holding the older of two epochs.
        async with self._claim_lock:
            await self._claim_unclaimed()

    async def _claim_unclaimed(self) -> None:
        for partition in self.writer.fenced:  # fenced but still assigned: Kafka says it is ours
            self.unclaimed.add(TopicPartition(self.topic, partition))
        self.writer.fenced.clear()
        self.unclaimed &= self.consumer.assignment()
        if not self.unclaimed:
            return
        partitions = sorted(self.unclaimed, key=lambda tp: tp.partition)
        try:
            positions = await self.sink.committed_offsets(self.topic, [tp.partition for tp in partitions], claim=True)
        except RetriableError as exc:
            log.warning("cannot claim partitions yet; paused", sink=self.sink.name, error=str(exc)[:200])
            self.consumer.pause(*partitions)
            return
        for tp in partitions:
            position = positions[tp.partition]
            self.writer.assign(tp.partition, position.epoch)
            self.consumer.seek(tp, position.next_offset)
            self.consumer.resume(tp)
            self.unclaimed.discard(tp)
        log.info("partitions claimed", sink=self.sink.name,
                 positions={tp.partition: positions[tp.partition].next_offset for tp in partitions})

    async def _dead_letter_record(self, record: EnrichedRecord, reason: str) -> None:
        await self._dead_letter(record.origin, record.model_dump_json().encode(), reason)

    async def _dead_letter(self, origin: Origin, value: bytes, reason: str) -> None:
        DEAD_LETTERS.labels(self.stage, reason.split(":")[0][:40]).inc()
        await self.producer.send_and_wait(dlq_topic(self.topic), value, partition=origin.partition,
                                          headers=dlq_headers(origin, self.stage, reason))

    async def _accept(self, tp: TopicPartition, offset: int, value: bytes | None) -> None:
        origin = Origin(topic=tp.topic, partition=tp.partition, offset=offset)
        try:
            record = ENRICHED_RECORD.validate_json(value or b"")
        except ValidationError as exc:
            await self._dead_letter(origin, value or b"", f"invalid_record: {exc.errors()[0]['msg']}")
            self.writer.add(tp.partition, offset, None)
            return
        level, service = (record.level, record.service) if isinstance(record, LogRecord) else (None, None)
        wanted = self.sink.name in self.topology.sinks_for(record.kind, level, service)
        self.writer.add(tp.partition, offset, record if wanted else None)

    async def run(self) -> None:
        await self._start_sink()
        await self.producer.start()
        await self.consumer.start()
        self.consumer.subscribe([self.topic], listener=_Claims(self))
        try:
            while not self.stopping.is_set():
                await self._poll_once()
            await self.writer.flush(force=True)
        finally:
            await self.consumer.stop()
            await self.producer.stop()
            await self.sink.close()

    async def _start_sink(self) -> None:
        delay = 0.5
        while not self.stopping.is_set():
            try:
                await self.sink.start()
                return
            except RetriableError as exc:
                log.warning("store not reachable; retrying", sink=self.sink.name, error=str(exc)[:200])
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10)

    async def _poll_once(self) -> None:
        assigned = self.consumer.assignment()
        if self.writer.blocked or self.writer.buffered() >= 4 * self.writer.config.max_records:
            self.consumer.pause(*assigned)  # backpressure: stop fetching, keep the group membership
        else:
            self.consumer.resume(*(assigned - self.unclaimed))
        await self.claim()
        batches = await self.consumer.getmany(timeout_ms=100, max_records=5000)
        for tp, messages in batches.items():
            RECORDS_IN.labels(self.stage).inc(len(messages))
            for message in messages:
                await self._accept(tp, message.offset, message.value)
        await self.writer.flush()
        await self._commit_kafka_offsets()

    async def _commit_kafka_offsets(self) -> None:
        # Advisory only (lag dashboards): the store's position is the one that counts.
        committed = {TopicPartition(self.topic, p): o for p, o in self.writer.stored_positions.items()}
        if committed:
            self.writer.stored_positions.clear()
            try:
                await self.consumer.commit(committed)
            except Exception as exc:
                log.info("advisory offset commit failed", error=str(exc)[:200])


def run_sink_worker(settings: Settings, name: str) -> int:
    topology = load_topology(settings.topology_file)

    async def main() -> None:
        runner = SinkRunner(settings, build_sink(settings, name), topology)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, runner.stopping.set)
        with registered_metrics(settings, name):
            log.info("sink worker starting", sink=name, topic=runner.topic)
            await runner.run()

    asyncio.run(main())
    return 0
