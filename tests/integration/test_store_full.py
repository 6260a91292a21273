"""A store that refuses writes because it is full: the sink backs off and loses nothing.

Redis is made full for real (`maxmemory` below what it holds, with `noeviction`, the way a
memory-bound Redis or one that cannot persist to a full disk refuses writes). The writer must
neither crash nor dead-letter the records, nor move the position, and must write them all once
the store has room again.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

import pytest
import redis.asyncio as aioredis

from schemas.records import LogRecord, Origin, record_id_for
from sinks.redis import RedisSink, record_key
from sinks.writer import SinkWriter, WriterConfig
from workers.settings import Settings

pytestmark = pytest.mark.integration


def _records(run: str, count: int) -> list[LogRecord]:
    return [LogRecord(record_id=record_id_for(f"full-{run}", 0, offset),
                      origin=Origin(topic=f"full-{run}", partition=0, offset=offset),
                      timestamp=datetime.now(UTC), format="unknown", message=f"line {offset}",
                      service=f"svc-full-{run}", level="ERROR", anomaly_score=0.9)
            for offset in range(count)]


async def _scenario(settings: Settings) -> None:
    run = uuid.uuid4().hex[:8]
    topic = f"records.full.{run}"
    records = _records(run, 50)
    dead: list[str] = []

    async def dead_letter(record: LogRecord, reason: str) -> None:
        dead.append(record.record_id)

    sink = RedisSink(settings.redis_url)
    admin = aioredis.from_url(settings.redis_url)
    await sink.start()
    config = await admin.config_get("maxmemory")
    try:
        writer = SinkWriter(sink, topic, dead_letter, WriterConfig(max_age_s=0, min_age_s=0, backoff_initial_s=0.05,
                                                                  backoff_max_s=0.2))
        writer.assign(0, (await sink.committed_offsets(topic, [0], claim=True))[0].epoch)
        before = await sink.committed_offsets(topic, [0])
        for offset, record in enumerate(records):
            writer.add(0, offset, record)
        await admin.config_set("maxmemory", "1mb")  # far below what the stack's Redis holds
        for _ in range(5):
            await writer.flush(force=True)  # refused: backs off, raises nothing
            await asyncio.sleep(0.25)
        assert writer.stored_positions == {}
        assert await sink.committed_offsets(topic, [0]) == before, "the position moved while the store was full"
        assert dead == [], "a full store is not the records' fault: nothing is dead-lettered"
        assert await admin.exists(*(record_key(r.record_id) for r in records)) == 0

        await admin.config_set("maxmemory", config["maxmemory"])
        for _ in range(50):
            if not writer.blocked:
                await writer.flush(force=True)
            if writer.stored_positions.get(0) == len(records):
                break
            await asyncio.sleep(0.1)
        assert (await sink.committed_offsets(topic, [0]))[0].next_offset == len(records)
        assert await admin.exists(*(record_key(r.record_id) for r in records)) == len(records)
        assert dead == []
    finally:
        await admin.config_set("maxmemory", config["maxmemory"])
        ours = [key async for key in admin.scan_iter(match=f"*full*{run}*", count=1000)]
        await admin.delete(*(record_key(r.record_id) for r in records), *ours)
        await admin.aclose()
        await sink.close()


def test_a_full_redis_pauses_the_sink_and_loses_nothing(stack: Settings) -> None:
    asyncio.run(_scenario(stack))
