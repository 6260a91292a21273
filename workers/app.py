"""The process tier: a Faust app with one agent per raw topic (logs, metrics, user events) that
takes raw records in batches and sends the enriched ones on to `records.enriched`.

Faust does little per record here: an agent takes up to `BATCH_SIZE` events, hands each
source partition's share to that partition's enricher (the pure pipeline), appends the
outputs to Kafka record batches (`OutputSender`: no await per record), and awaits all
deliveries before the batch is acknowledged, so a crash re-reads, never loses.

State. The stateful steps (template miner, anomaly scorers) keep one state per source
partition in a Faust table (`process-state` for logs, `metric-state`, `event-state`; changelog
topics partitioned like the input), so it moves with its partition on a rebalance and survives
a restart. The state carries the last raw offset it applied. A batch's outputs are delivered
first, then the state (at most once per `process_state_save_interval_s`), then the batch is
acked. After a crash or a rebalance the state may be behind or ahead of the committed offset:
records it already applied are dropped (their outputs went out before it was saved), and
records between it and the committed offset are re-read from Kafka (`offset_gaps`), so the
state applies every record exactly once and a re-sent output is identical to the first.

Faust's own exactly-once mode is off on purpose (ARCHITECTURE.md): records carry a
deterministic `record_id`, every sink upserts by it and fences by offset.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from abc import ABC, abstractmethod
from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import faust
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from schemas.records import EventRecord, LogRecord, MetricRecord, Origin
from schemas.topology import Topology, load_topology
from workers.dlq import dlq_headers, dlq_topic
from workers.logs import get_logger
from workers.metrics import (
    DEAD_LETTERS,
    NATIVE_FALLBACKS,
    RECORDS_IN,
    RECORDS_OUT,
    RECORDS_REFETCHED,
    RECORDS_REPLAYED,
    STAGE_BATCH_RECORDS,
    STAGE_BATCH_SECONDS,
)
from workers.pipeline import LogEnricher, RawLine, Rejected, not_applied, processing_error, settle_heap
from workers.pipeline_events import EventEnricher
from workers.pipeline_metrics import MetricEnricher
from workers.pipeline_native import EncodedLogRecord, NativeLogEnricher, Reference, require_native
from workers.settings import Settings
from workers.steps.entities import EntityExtractor
from workers.worker_registry import registered_metrics

BATCH_SIZE = 1000
BATCH_WITHIN_S = 0.2
LOG_STATE_TABLE = "process-state"
METRIC_STATE_TABLE = "metric-state"
EVENT_STATE_TABLE = "event-state"
log = get_logger(__name__)

Output = LogRecord | EncodedLogRecord | MetricRecord | EventRecord | Rejected


class Enricher(Protocol):
    def enrich(self, batch: Sequence[RawLine]) -> Sequence[Output]: ...


class PartitionEnrichers(ABC):
    """One enricher per source partition of one raw topic, restored from its state table on first use.

    Subclasses say how an enricher is made and how its state maps onto table keys; saving
    returns the changelog deliveries, which the agent awaits before it acks the batch.
    """

    def __init__(self, table: Any) -> None:
        self.table = table
        self._by_partition: dict[int, Any] = {}
        self._saved_at: dict[int, float] = {}
        self.save_interval_s = 0.0

    @abstractmethod
    def new(self) -> Any: ...

    @abstractmethod
    def restore(self, enricher: Any, partition: int) -> bool:
        """Load the saved state of `partition` into `enricher`; False when nothing is saved."""

    @abstractmethod
    def changes(self, enricher: Any, partition: int) -> dict[bytes, bytes | None]:
        """Table entries to write (None deletes) so the saved state equals the enricher's."""

    def get(self, partition: int) -> Any:
        enricher = self._by_partition.get(partition)
        if enricher is None:
            enricher = self.new()
            try:
                if self.restore(enricher, partition):
                    log.info("partition state restored", table=self.table.name, partition=partition,
                             last_offsets=enricher.last_offsets)
            except (ValueError, KeyError, TypeError) as exc:
                # An older or damaged state: learning restarts, records still flow.
                enricher = self.new()
                log.warning("partition state unusable; starting afresh", table=self.table.name,
                            partition=partition, error=str(exc)[:300])
            self._by_partition[partition] = enricher
        return enricher

    def forget(self, partitions: set[int]) -> None:
        """On revocation: the next owner continues from the table; so will we if it comes back."""
        for partition in partitions:
            self._by_partition.pop(partition, None)
            self._saved_at.pop(partition, None)

    def save(self, partition: int) -> list[Any]:
        """Write the partition's state to the changelog, at most once per `save_interval_s`.

        Saving less often than acking is safe: after a crash the state restores at an older
        offset than the committed one, and the agent re-reads the records in between
        (`offset_gaps`), so the state still applies every record once."""
        now = time.monotonic()
        if now - self._saved_at.get(partition, -1e9) < self.save_interval_s:
            return []
        self._saved_at[partition] = now
        deliveries = []
        for key, value in self.changes(self._by_partition[partition], partition).items():
            if value is None:
                self.table.data.pop(key, None)
            else:
                self.table.data[key] = value
            deliveries.append(self.table.send_changelog(partition, key, value,
                                                        key_serializer="raw", value_serializer="raw"))
        return deliveries


class WholeStateEnrichers(PartitionEnrichers):
    """Small states (logs, events): one table entry per partition, rewritten after each batch."""

    def __init__(self, table: Any, new: Callable[[], Any]) -> None:
        super().__init__(table)
        self._new = new

    def new(self) -> Any:
        return self._new()

    def restore(self, enricher: Any, partition: int) -> bool:
        saved = self.table.data.get(str(partition).encode())
        if saved is None:
            return False
        enricher.restore(json.loads(saved))
        return True

    def changes(self, enricher: Any, partition: int) -> dict[bytes, bytes | None]:
        state_json = getattr(enricher, "state_json", None)  # the native chain writes its own
        return {str(partition).encode(): state_json() if state_json else json.dumps(enricher.state()).encode()}


class SeriesStateEnrichers(PartitionEnrichers):
    """Metrics: a detector per series is too large to rewrite whole, so the table holds a header
    (`"{partition}"`: offsets and LRU clock) and one entry per series
    (`"{partition}/{series}"`); a batch writes the header and the series it changed."""

    def new(self) -> MetricEnricher:
        return MetricEnricher()

    def restore(self, enricher: Any, partition: int) -> bool:
        header = self.table.data.get(str(partition).encode())
        if header is None:
            return False
        prefix = f"{partition}/".encode()
        series = {key[len(prefix):].decode(): json.loads(value)
                  for key, value in list(self.table.data.items()) if key.startswith(prefix)}
        enricher.restore(json.loads(header), series)
        return True

    def changes(self, enricher: Any, partition: int) -> dict[bytes, bytes | None]:
        prefix = f"{partition}/"
        entries: dict[bytes, bytes | None] = {
            (prefix + series).encode(): None for series in enricher.take_evicted_series()}
        for series, entry in enricher.take_dirty_series().items():
            entries[(prefix + series).encode()] = json.dumps(entry).encode()
        entries[str(partition).encode()] = json.dumps(enricher.state_header()).encode()
        return entries


def offset_gaps(last_applied: int | None, offsets: Sequence[int]) -> list[tuple[int, int]]:
    """Offset ranges [start, end) missing before or between a partition's batch offsets.

    faust-streaming acks, without yielding it, a record that arrives while its flow control is
    paused for a rebalance or recovery (`Stream._py_aiter`, "skipped_value"); when the offsets
    acked around it are committed, that record is never seen again. A raw topic written without
    transactions has no holes, so a gap here is such a skip. (Under transactional producers a
    gap may be a commit marker: re-reading it simply finds nothing.)
    """
    gaps: list[tuple[int, int]] = []
    expected = None if last_applied is None else last_applied + 1
    for offset in sorted(offsets):
        if expected is not None and offset > expected:
            gaps.append((expected, offset))
        if expected is None or offset >= expected:
            expected = offset + 1
    return gaps


async def read_range(bootstrap: str, topic: str, partition: int, start: int, end: int) -> list[RawLine]:
    """The raw records at offsets [start, end) of one partition, read directly (no group)."""
    tp = TopicPartition(topic, partition)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                                auto_offset_reset="earliest", max_partition_fetch_bytes=16 << 20)
    await consumer.start()
    try:
        consumer.assign([tp])
        consumer.seek(tp, start)
        lines: list[RawLine] = []
        while await consumer.position(tp) < end:
            fetched = (await consumer.getmany(tp, timeout_ms=2000)).get(tp, [])
            if not fetched:
                break  # nothing more there (retention, or a transaction marker)
            lines += [RawLine(Origin(topic=m.topic, partition=m.partition, offset=m.offset), m.value,
                              m.timestamp if m.timestamp and m.timestamp > 0 else None)
                      for m in fetched if start <= m.offset < end]
        return lines
    finally:
        await consumer.stop()


def report_native_fallbacks(stage: str, enricher: Any) -> None:
    """What the native chain handed back to the Python steps since the last batch."""
    reference = getattr(enricher, "reference", None)
    if isinstance(reference, Reference):
        for step, count in reference.take_fallbacks().items():
            NATIVE_FALLBACKS.labels(stage, step).inc(count)


def enrich_safely(enricher: Enricher, batch: list[RawLine]) -> list[Output]:
    """A batch that fails is redone record by record, so one poison line costs only itself.

    The enrichers dead-letter a record that fails once the state has moved for it, so what
    raises here failed before any state moved (in decoding, parsing or entity extraction) and
    the batch can be redone without applying a record twice."""
    try:
        return list(enricher.enrich(batch))
    except Exception:
        results: list[Output] = []
        for raw in batch:
            try:
                results += enricher.enrich([raw])
            except Exception as exc:
                results.append(Rejected(raw.origin, processing_error(exc), raw.value))
        return results


def state_tables(topology: Topology) -> dict[str, str]:
    """Raw topic -> the name of the table holding its per-partition state."""
    tables = {topology.log_topic: LOG_STATE_TABLE}
    if topology.metric_topic:
        tables[topology.metric_topic] = METRIC_STATE_TABLE
    if topology.event_topic:
        tables[topology.event_topic] = EVENT_STATE_TABLE
    return tables


def build_app(settings: Settings) -> faust.App:
    topology = load_topology(settings.topology_file)
    app = faust.App(
        settings.process_app_id,
        broker=f"kafka://{settings.kafka_bootstrap.split(',')[0]}",
        store="memory://",
        datadir=str(settings.stack_home / "faust" / settings.process_app_id),
        web_enabled=False,
        topic_allow_declare=False,  # topics come from the topology (`polaris stack up`)
        topic_disable_leader=True,
        producer_acks=-1,
        consumer_auto_offset_reset="earliest",
        broker_commit_every=settings.process_commit_every,
        broker_commit_interval=settings.process_commit_interval_s,
        broker_session_timeout=10.0,  # a killed worker's partitions move on within seconds
        broker_heartbeat_interval=2.0,
        key_serializer="raw",
        value_serializer="raw",
        producer_max_request_size=16 << 20,  # a partition's state is one message (~0.5 MB)
    )
    sender = OutputSender(settings.kafka_bootstrap)  # one producer for every agent's outputs
    by_topic: dict[str, PartitionEnrichers] = {}
    kinds: dict[str, tuple[str, Callable[[Any], PartitionEnrichers]]] = {
        LOG_STATE_TABLE: ("logs", lambda table: WholeStateEnrichers(
            table, _log_enricher_factory(settings.process_native))),
        METRIC_STATE_TABLE: ("metrics", SeriesStateEnrichers),
        EVENT_STATE_TABLE: ("events", lambda table: WholeStateEnrichers(table, EventEnricher)),
    }
    for topic, table_name in state_tables(topology).items():
        kind, make = kinds[table_name]
        table = app.Table(table_name, partitions=topology.raw_topics[topic].partitions,
                          key_type=bytes, value_type=bytes)
        by_topic[topic] = enrichers = make(table)
        enrichers.save_interval_s = settings.process_state_save_interval_s
        agent = _agent(f"process.{kind}", enrichers, sender, topology.enriched_topic, dlq_topic(topic),
                       settings.kafka_bootstrap)
        app.agent(app.topic(topic, key_serializer="raw", value_serializer="raw"), name=f"process_{kind}")(agent)

    @app.on_partitions_revoked.connect  # type: ignore[arg-type]
    async def forget_revoked(sender: Any, revoked: set[Any], **kwargs: Any) -> None:
        for topic, enrichers in by_topic.items():
            enrichers.forget({tp.partition for tp in revoked if tp.topic == topic})

    return app


def _log_enricher_factory(native: bool) -> Callable[[], LogEnricher | NativeLogEnricher]:
    if native:
        require_native()  # fail at start, naming the fix, not at the first record
    extractor: list[EntityExtractor] = []  # shared by partitions: it holds no per-partition state

    def new() -> LogEnricher | NativeLogEnricher:
        if not extractor:
            extractor.append(EntityExtractor())
            settle_heap()
        if native:
            return NativeLogEnricher(extractor=extractor[0])
        return LogEnricher(extractor=extractor[0])
    return new


def _agent(stage: str, enrichers: PartitionEnrichers, sender: OutputSender, enriched: str, dead: str,
           bootstrap: str) -> Callable[[Any], Any]:
    async def process(stream: Any) -> None:
        try:
            await _process_batches(stream)
        except Exception as exc:
            # Faust would log the crash and keep the worker alive without this agent: exit
            # instead, so the supervisor restarts it (crash-only: nothing acked is lost).
            log.error("process agent crashed; exiting for a restart", stage=stage, error=repr(exc)[:500])
            os._exit(70)

    async def _process_batches(stream: Any) -> None:
        async for events in stream.take_events(BATCH_SIZE, within=BATCH_WITHIN_S):
            by_partition: dict[int, list[RawLine]] = defaultdict(list)
            for e in events:
                message = e.message
                by_partition[message.partition].append(RawLine(
                    Origin(topic=message.topic, partition=message.partition, offset=message.offset),
                    message.value, int(message.timestamp * 1000) if message.timestamp else None))
            RECORDS_IN.labels(stage).inc(len(events))
            STAGE_BATCH_RECORDS.labels(stage).observe(len(events))
            started = time.perf_counter()
            deliveries, saves = [], []
            for partition, batch in by_partition.items():
                enricher = enrichers.get(partition)
                # After a rebalance faust-streaming may hand over prefetched records ahead of
                # older ones (its issue #221): the state must see a partition in offset order.
                batch.sort(key=lambda raw: raw.origin.offset)
                batch = await _with_skipped(bootstrap, stage, enricher, batch)
                fresh = not_applied(enricher.last_offsets, batch)
                if len(fresh) < len(batch):
                    RECORDS_REPLAYED.labels(stage).inc(len(batch) - len(fresh))
                deliveries += await _send_all(stage, sender, enriched, dead, partition,
                                              enrich_safely(enricher, fresh))
                report_native_fallbacks(stage, enricher)
                if fresh:  # dead-lettered lines are handled too: a gap after them is no gap
                    key = f"{fresh[-1].origin.topic}/{partition}"
                    enricher.last_offsets[key] = max(enricher.last_offsets.get(key, -1), fresh[-1].origin.offset)
                saves.append(partition)
            # Outputs first, then the state that says they were applied, all before the batch is
            # acked (when this body returns): a saved state never covers an undelivered output.
            enriched_at = time.perf_counter()
            await asyncio.gather(*deliveries)
            delivered_at = time.perf_counter()
            await asyncio.gather(*(delivery for partition in saves for delivery in enrichers.save(partition)))
            STAGE_BATCH_SECONDS.labels(stage, "enrich").observe(enriched_at - started)
            STAGE_BATCH_SECONDS.labels(stage, "deliver").observe(delivered_at - enriched_at)
            STAGE_BATCH_SECONDS.labels(stage, "save_state").observe(time.perf_counter() - delivered_at)

    return process


async def _with_skipped(bootstrap: str, stage: str, enricher: Any, batch: list[RawLine]) -> list[RawLine]:
    """The batch with any records the stream skipped before or inside it, in offset order."""
    origin = batch[0].origin
    last = enricher.last_offsets.get(f"{origin.topic}/{origin.partition}")
    gaps = offset_gaps(last, [raw.origin.offset for raw in batch])
    if not gaps:
        return batch
    refetched = [raw for start, end in gaps
                 for raw in await read_range(bootstrap, origin.topic, origin.partition, start, end)]
    RECORDS_REFETCHED.labels(stage).inc(len(refetched))
    log.warning("stream skipped raw records; re-read them from Kafka", stage=stage, topic=origin.topic,
                partition=origin.partition, gaps=gaps[:10], refetched=len(refetched))
    return sorted([*batch, *refetched], key=lambda raw: raw.origin.offset)


class OutputSender:
    """Sends a batch's outputs as Kafka record batches (aiokafka's batch API): one append per
    record and one request per topic-partition, instead of one awaited send per record."""

    MAX_BATCH_BYTES = 1 << 20

    def __init__(self, bootstrap: str) -> None:
        self._bootstrap = bootstrap
        self._producer: AIOKafkaProducer | None = None

    async def producer(self) -> AIOKafkaProducer:
        if self._producer is None:
            producer = AIOKafkaProducer(bootstrap_servers=self._bootstrap, acks="all", enable_idempotence=True,
                                        max_batch_size=self.MAX_BATCH_BYTES, max_request_size=16 << 20)
            await producer.start()
            self._producer = producer
        return self._producer

    async def send(self, topic: str, partition: int,
                   messages: Sequence[tuple[bytes | None, bytes, list[tuple[str, bytes]]]]) -> list[Any]:
        """Queue the messages in order; returns the futures of their deliveries."""
        producer = await self.producer()
        deliveries: list[Any] = []
        batch = producer.create_batch()
        for key, value, headers in messages:
            if batch.append(key=key, value=value, timestamp=None, headers=headers) is not None:
                continue
            if batch.record_count():
                deliveries.append(await producer.send_batch(batch, topic, partition=partition))
                batch = producer.create_batch()
                if batch.append(key=key, value=value, timestamp=None, headers=headers) is not None:
                    continue
            # larger than a batch: on its own
            deliveries.append(await producer.send(topic, value, key=key, partition=partition, headers=headers))
        if batch.record_count():
            deliveries.append(await producer.send_batch(batch, topic, partition=partition))
        return deliveries


async def _send_all(stage: str, sender: OutputSender, enriched: str, dead: str, partition: int,
                    results: Sequence[Output]) -> list[Any]:
    records: list[tuple[bytes | None, bytes, list[tuple[str, bytes]]]] = []
    rejected: list[tuple[bytes | None, bytes, list[tuple[str, bytes]]]] = []
    for result in results:
        if isinstance(result, Rejected):
            DEAD_LETTERS.labels(stage, result.reason.split(":")[0]).inc()
            log.warning("raw record dead-lettered", reason=result.reason, topic=result.origin.topic,
                        partition=result.origin.partition, offset=result.origin.offset)
            rejected.append((None, result.value or b"", dlq_headers(result.origin, stage, result.reason)))
        elif isinstance(result, EncodedLogRecord):
            records.append((result.record_id.encode(), result.json, []))
        else:
            records.append((result.record_id.encode(), result.model_dump_json().encode(), []))
    RECORDS_OUT.labels(stage).inc(len(records))
    return [*await sender.send(enriched, partition, records), *await sender.send(dead, partition, rejected)]


def run_process_worker(settings: Settings) -> int:
    from workers.topics import ensure_state_topic

    topology = load_topology(settings.topology_file)
    (settings.stack_home / "faust").mkdir(parents=True, exist_ok=True)  # Faust makes only the last level
    for topic, table in state_tables(topology).items():
        ensure_state_topic(settings, f"{settings.process_app_id}-{table}-changelog",
                           topology.raw_topics[topic].partitions)
    app = build_app(settings)
    with registered_metrics(settings, "process"):
        worker = faust.Worker(app, loglevel="WARNING", quiet=True, redirect_stdouts=False)
        worker.execute_from_commandline()
    return 0
