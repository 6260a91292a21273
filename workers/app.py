"""The process tier: a Faust app whose agent takes raw log lines in batches and sends them on.

Faust does little per record here: the agent takes up to `BATCH_SIZE` events, hands each
source partition's share to that partition's `LogEnricher` (the pure pipeline), sends every
output without awaiting each send, and awaits all deliveries before the batch is
acknowledged, so a crash re-reads, never loses.

State. The stateful steps (template miner, anomaly scorer) keep one state per source
partition in the Faust table `process-state` (changelog topic, partitioned like the input),
so it moves with its partition on a rebalance and survives a restart. After each batch the
partition's state — with the last offset it applied and the results of its latest records —
is written to the changelog, and that write is awaited before the batch is acked: the state
on the changelog is never behind the committed offset, and a replayed record is answered
from the remembered results instead of moving the state twice.

Faust's own exactly-once mode is off on purpose (ARCHITECTURE.md): records carry a
deterministic `record_id`, every sink upserts by it and fences by offset.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections import defaultdict
from typing import Any

import faust

from schemas.records import LogRecord, Origin
from schemas.topology import load_topology
from workers.dlq import dlq_headers, dlq_topic
from workers.logs import get_logger
from workers.metrics import DEAD_LETTERS, RECORDS_IN, RECORDS_OUT
from workers.pipeline import LogEnricher, RawLine, Rejected
from workers.settings import Settings
from workers.steps.entities import EntityExtractor
from workers.worker_registry import registered_metrics

BATCH_SIZE = 1000
BATCH_WITHIN_S = 0.2
STAGE = "process.logs"
STATE_TABLE = "process-state"
log = get_logger(__name__)


class PartitionEnrichers:
    """One LogEnricher per source partition, restored from the state table on first use."""

    def __init__(self, table: Any, remember: int) -> None:
        self.table, self.remember = table, remember
        self.extractor: EntityExtractor | None = None  # shared: it holds no per-partition state
        self._by_partition: dict[int, LogEnricher] = {}

    def get(self, partition: int) -> LogEnricher:
        enricher = self._by_partition.get(partition)
        if enricher is None:
            if self.extractor is None:
                self.extractor = EntityExtractor()
            enricher = LogEnricher(extractor=self.extractor, remember=self.remember)
            saved = self.table.data.get(str(partition).encode())
            if saved is not None:
                try:
                    enricher.restore(json.loads(saved))
                    log.info("partition state restored", partition=partition, last_offsets=enricher.last_offsets)
                except (ValueError, KeyError, TypeError) as exc:
                    # An older or damaged state: learning restarts, records still flow.
                    enricher = LogEnricher(extractor=self.extractor, remember=self.remember)
                    log.warning("partition state unusable; starting afresh", partition=partition, error=str(exc))
            self._by_partition[partition] = enricher
        return enricher

    def forget(self, partitions: set[int]) -> None:
        """On revocation: the next owner continues from the table; so will we if it comes back."""
        for partition in partitions:
            self._by_partition.pop(partition, None)

    def save(self, partition: int) -> Any:
        key, value = str(partition).encode(), json.dumps(self._by_partition[partition].state()).encode()
        self.table.data[key] = value
        return self.table.send_changelog(partition, key, value, key_serializer="raw", value_serializer="raw")


def enrich_safely(enricher: LogEnricher, batch: list[RawLine]) -> list[LogRecord | Rejected]:
    """A batch that fails is redone record by record, so one poison line costs only itself."""
    try:
        return enricher.enrich(batch)
    except Exception:
        results: list[LogRecord | Rejected] = []
        for raw in batch:
            try:
                results += enricher.enrich([raw])
            except Exception as exc:
                results.append(Rejected(raw.origin, f"processing_error: {exc.__class__.__name__}: {exc}"[:500],
                                        raw.value))
        return results


def build_app(settings: Settings) -> faust.App:
    topology = load_topology(settings.topology_file)
    partitions = topology.raw_topics[topology.log_topic].partitions
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
    raw = app.topic(topology.log_topic, key_serializer="raw", value_serializer="raw")
    enriched = app.topic(topology.enriched_topic, key_serializer="raw", value_serializer="raw")
    dead = app.topic(dlq_topic(topology.log_topic), key_serializer="raw", value_serializer="raw")
    table = app.Table(STATE_TABLE, partitions=partitions, key_type=bytes, value_type=bytes)
    # A replay can reach back as far as the commit lag: remember at least that many results.
    enrichers = PartitionEnrichers(table, remember=max(3000, 2 * settings.process_commit_every))

    @app.on_partitions_revoked.connect  # type: ignore[arg-type]
    async def forget_revoked(sender: Any, revoked: set[Any], **kwargs: Any) -> None:
        enrichers.forget({tp.partition for tp in revoked if tp.topic == topology.log_topic})

    async def process_logs(stream: Any) -> None:
        try:
            await _process_log_batches(stream)
        except Exception as exc:
            # Faust would log the crash and keep the worker alive without this agent: exit
            # instead, so the supervisor restarts it (crash-only: nothing acked is lost).
            log.error("process agent crashed; exiting for a restart", error=repr(exc)[:500])
            os._exit(70)

    async def _process_log_batches(stream: Any) -> None:
        async for events in stream.take_events(BATCH_SIZE, within=BATCH_WITHIN_S):
            by_partition: dict[int, list[RawLine]] = defaultdict(list)
            for e in events:
                message = e.message
                by_partition[message.partition].append(RawLine(
                    Origin(topic=message.topic, partition=message.partition, offset=message.offset),
                    message.value, int(message.timestamp * 1000) if message.timestamp else None))
            RECORDS_IN.labels(STAGE).inc(len(events))
            deliveries = []
            for partition, batch in by_partition.items():
                for result in enrich_safely(enrichers.get(partition), batch):
                    deliveries.append(await _send(enriched, dead, result))
                deliveries.append(enrichers.save(partition))
            # Outputs and state delivered before the batch is acked (when this body returns).
            await asyncio.gather(*deliveries)

    app.agent(raw, name="process_logs")(process_logs)
    return app


async def _send(enriched: Any, dead: Any, result: LogRecord | Rejected) -> Any:
    if isinstance(result, Rejected):
        DEAD_LETTERS.labels(STAGE, result.reason.split(":")[0]).inc()
        log.warning("raw record dead-lettered", reason=result.reason, topic=result.origin.topic,
                    partition=result.origin.partition, offset=result.origin.offset)
        return await dead.send(key=None, value=result.value or b"", partition=result.origin.partition,
                               headers=dlq_headers(result.origin, STAGE, result.reason))
    RECORDS_OUT.labels(STAGE).inc()
    return await enriched.send(key=result.record_id.encode(), value=result.model_dump_json().encode(),
                               partition=result.origin.partition)


def run_process_worker(settings: Settings) -> int:
    from workers.topics import ensure_state_topic

    topology = load_topology(settings.topology_file)
    ensure_state_topic(settings, f"{settings.process_app_id}-{STATE_TABLE}-changelog",
                       topology.raw_topics[topology.log_topic].partitions)
    app = build_app(settings)
    with registered_metrics(settings, "process"):
        worker = faust.Worker(app, loglevel="WARNING", quiet=True, redirect_stdouts=False)
        worker.execute_from_commandline()
    return 0
