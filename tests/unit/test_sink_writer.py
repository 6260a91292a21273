"""The sink contract and the writer around it, on an in-memory sink."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from schemas.records import LogRecord, Origin, record_id_for
from sinks.base import Batch, Decision, FencedError, Position, decide
from sinks.writer import SinkWriter, WriterConfig
from tests.unit.fake_sink import FakeSink

TOPIC = "records.enriched"


def _record(offset: int, partition: int = 0) -> LogRecord:
    return LogRecord(record_id=record_id_for("logs.raw", partition, offset),
                     origin=Origin(topic="logs.raw", partition=partition, offset=offset),
                     timestamp=datetime(2026, 1, 1, tzinfo=UTC), format="unknown", message=f"line {offset}")


def _batch(start: int, end: int, epoch: int = 1) -> Batch:
    return Batch(TOPIC, 0, start, end, epoch, [])


def test_fencing_rule() -> None:
    assert decide(None, _batch(0, 5)) is Decision.WRITE
    assert decide(Position(5, 1), _batch(5, 9)) is Decision.WRITE
    assert decide(Position(5, 1), _batch(7, 9)) is Decision.WRITE  # a hole (tx markers, compaction)
    assert decide(Position(9, 1), _batch(5, 9)) is Decision.SKIP  # a replay
    with pytest.raises(FencedError):
        decide(Position(5, 2), _batch(5, 9, epoch=1))  # an older owner
    with pytest.raises(FencedError):
        decide(Position(7, 1), _batch(5, 9))  # straddles the position: refuse


def _writer(sink: FakeSink, dead: list[tuple[str, str]] | None = None) -> SinkWriter:
    async def dead_letter(record: LogRecord, reason: str) -> None:
        if dead is not None:
            dead.append((record.record_id, reason))

    writer = SinkWriter(sink, TOPIC, dead_letter, WriterConfig(max_records=100, max_age_s=0, backoff_initial_s=0))
    return writer


async def _feed(writer: SinkWriter, offsets: range, partition: int = 0) -> None:
    for offset in offsets:
        writer.add(partition, offset, _record(offset, partition))
    await writer.flush(force=True)


async def test_replay_after_a_crash_applies_nothing_twice() -> None:
    sink = FakeSink()
    writer = _writer(sink)
    writer.assign(0, (await sink.committed_offsets(TOPIC, [0], claim=True))[0].epoch)
    await _feed(writer, range(0, 10))
    # A restarted worker re-reads from an older Kafka offset: the stored position skips it.
    restarted = _writer(sink)
    restarted.assign(0, (await sink.committed_offsets(TOPIC, [0], claim=True))[0].epoch)
    await _feed(restarted, range(0, 10))
    await _feed(restarted, range(10, 15))
    assert sink.counter == 15 and set(sink.rows.values()) == {1}
    assert sink.positions[0].next_offset == 15


async def test_timeout_after_commit_is_retried_safely() -> None:
    sink = FakeSink()
    writer = _writer(sink)
    writer.assign(0, 1)
    sink.fail_after_commit = True
    await _feed(writer, range(0, 5))
    assert writer.blocked_until > 0  # backed off
    writer.blocked_until = 0
    await writer.flush(force=True)  # the retry finds the batch applied and skips it
    assert sink.counter == 5 and writer.buffered() == 0


async def test_store_down_keeps_the_batch_until_it_returns() -> None:
    sink = FakeSink()
    writer = _writer(sink)
    writer.assign(0, 1)
    sink.down = True
    await _feed(writer, range(0, 5))
    assert writer.buffered() == 5 and sink.counter == 0
    sink.down = False
    writer.blocked_until = 0
    await writer.flush(force=True)
    assert sink.counter == 5 and sink.positions[0].next_offset == 5


@pytest.mark.parametrize("named", [True, False])
async def test_poison_record_is_dead_lettered_and_the_partition_moves_on(named: bool) -> None:
    sink = FakeSink()
    sink.poison = {record_id_for("logs.raw", 0, 3)}
    sink.poison_named = named
    dead: list[tuple[str, str]] = []
    writer = _writer(sink, dead)
    writer.assign(0, 1)
    await _feed(writer, range(0, 8))
    assert dead == [(record_id_for("logs.raw", 0, 3), "fake: refused content")]
    assert sink.counter == 7 and record_id_for("logs.raw", 0, 3) not in sink.rows
    assert sink.positions[0].next_offset == 8


async def test_zombie_owner_is_fenced_and_writes_nothing() -> None:
    sink = FakeSink()
    zombie = _writer(sink)
    zombie.assign(0, (await sink.committed_offsets(TOPIC, [0], claim=True))[0].epoch)
    successor = _writer(sink)
    successor.assign(0, (await sink.committed_offsets(TOPIC, [0], claim=True))[0].epoch)
    await _feed(successor, range(0, 4))
    await _feed(zombie, range(4, 8))
    assert sink.counter == 4 and zombie.fenced == {0}
    assert sink.positions[0].next_offset == 4


async def test_filtered_records_still_move_the_position() -> None:
    sink = FakeSink()
    writer = _writer(sink)
    writer.assign(0, 1)
    writer.add(0, 0, _record(0))
    writer.add(0, 1, None)  # routed elsewhere
    writer.add(0, 2, None)
    await writer.flush(force=True)
    assert sink.counter == 1 and sink.positions[0].next_offset == 3


async def test_a_seek_back_drops_the_buffer() -> None:
    sink = FakeSink()
    writer = _writer(sink)
    writer.assign(0, 1)
    writer.add(0, 0, _record(0))
    writer.add(0, 1, _record(1))
    writer.add(0, 0, _record(0))  # the consumer was sent back to offset 0
    writer.add(0, 1, _record(1))
    await writer.flush(force=True)
    assert sink.counter == 2


def test_first_emissions_drops_records_the_process_tier_sent_twice() -> None:
    from schemas.records import MetricRecord
    from sinks.base import first_emissions

    first = [_record(0), _record(1), _record(2), _record(0, partition=1)]
    fresh, marks = first_emissions(first, {})
    assert fresh == first and marks == {"logs.raw/0": (2, 0), "logs.raw/1": (0, 0)}
    # After a process-tier crash it re-sends from its last commit: offsets 1..2 again, then 3.
    again = [_record(1), _record(2), _record(3)]
    fresh, marks = first_emissions(again, marks)
    assert [r.origin.offset for r in fresh] == [3] and marks["logs.raw/0"] == (3, 0)
    # Samples of one metric line share the raw offset; a line split across batches still counts once each.
    def sample(index: int) -> MetricRecord:
        rid = record_id_for("metrics.raw", 0, 7) + (f".{index}" if index else "")
        return MetricRecord(record_id=rid, origin=Origin(topic="metrics.raw", partition=0, offset=7),
                            timestamp=datetime(2026, 1, 1, tzinfo=UTC), name="m", series="m", value=1.0)
    fresh, marks = first_emissions([sample(0), sample(1)], marks)
    fresh2, marks = first_emissions([sample(1), sample(2)], marks)
    assert len(fresh) == 2 and [r.record_id for r in fresh2] == [sample(2).record_id]
    assert marks["metrics.raw/0"] == (7, 2)


async def test_linger_follows_the_store_flush_time_within_bounds() -> None:
    import asyncio

    class SlowSink(FakeSink):
        delay = 0.0

        async def write_batch(self, batch: Batch) -> bool:
            await asyncio.sleep(self.delay)
            return await super().write_batch(batch)

    sink = SlowSink()

    async def dead_letter(record: LogRecord, reason: str) -> None:
        return None

    writer = SinkWriter(sink, TOPIC, dead_letter, WriterConfig(max_records=1000, max_age_s=0.3, min_age_s=0.02))
    writer.assign(0, (await sink.committed_offsets(TOPIC, [0], claim=True))[0].epoch)
    assert writer.linger_s() == 0.02  # nothing measured yet: prompt
    sink.delay = 0.1
    for start in range(0, 100, 10):
        await _feed(writer, range(start, start + 10))
    assert 0.08 < writer.linger_s() <= 0.1  # a slower store: larger batches
    sink.delay = 1.0
    await _feed(writer, range(100, 110))
    await _feed(writer, range(110, 120))
    assert writer.linger_s() == 0.3  # never past the bound on a record's wait
    assert sum(sink.rows.values()) == 120
