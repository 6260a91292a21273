"""The process tier: a Faust app whose agents take raw records in batches and send them on.

Faust does little per record here: an agent takes up to `BATCH_SIZE` events, hands them to
the pure pipeline (`workers.pipeline`), sends every output without awaiting each send, and
awaits all deliveries before the batch is acknowledged. The source offsets are committed
only after that (Faust acks the batch when the loop body returns), so a crash re-reads,
never loses. Faust's own exactly-once mode is off on purpose (ARCHITECTURE.md): records
carry a deterministic `record_id` and every sink upserts by it and fences by offset.
"""

from __future__ import annotations

import asyncio
from typing import Any

import faust

from schemas.records import LogRecord, Origin
from schemas.topology import load_topology
from workers.dlq import dlq_headers, dlq_topic
from workers.logs import get_logger
from workers.metrics import DEAD_LETTERS, RECORDS_IN, RECORDS_OUT
from workers.pipeline import LogEnricher, RawLine, Rejected
from workers.settings import Settings
from workers.worker_registry import registered_metrics

BATCH_SIZE = 1000
BATCH_WITHIN_S = 0.2
STAGE = "process.logs"
log = get_logger(__name__)


def build_app(settings: Settings) -> faust.App:
    topology = load_topology(settings.topology_file)
    app = faust.App(
        "polaris-process",
        broker=f"kafka://{settings.kafka_bootstrap.split(',')[0]}",
        store="memory://",
        datadir=str(settings.stack_home / "faust"),
        web_enabled=False,
        topic_allow_declare=False,  # topics come from the topology (`polaris stack up`)
        topic_disable_leader=True,
        producer_acks=-1,
        consumer_auto_offset_reset="earliest",
        broker_commit_every=1000,
        broker_commit_interval=1.0,
    )
    raw = app.topic("logs.raw", key_serializer="raw", value_serializer="raw")
    enriched = app.topic(topology.enriched_topic, key_serializer="raw", value_serializer="raw")
    dead = app.topic(dlq_topic("logs.raw"), key_serializer="raw", value_serializer="raw")
    enricher = LogEnricher()

    async def process_logs(stream: Any) -> None:
        async for events in stream.take_events(BATCH_SIZE, within=BATCH_WITHIN_S):
            batch = [RawLine(Origin(topic=e.message.topic, partition=e.message.partition, offset=e.message.offset),
                             e.message.value, e.message.timestamp and int(e.message.timestamp * 1000))
                     for e in events]
            RECORDS_IN.labels(STAGE).inc(len(batch))
            deliveries = [await _send(enriched, dead, result) for result in enricher.enrich(batch)]
            await asyncio.gather(*deliveries)  # every output delivered before the batch is acked

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
    app = build_app(settings)
    with registered_metrics(settings, "process"):
        worker = faust.Worker(app, loglevel="WARNING", quiet=True)
        worker.execute_from_commandline()
    return 0
