"""SinkWriter: buffering, deadlines, retries with jittered backoff, poison isolation, DLQ.

Written once, around any `Sink`. The error sequence follows Kafka Connect's: a retriable
failure blocks the writer until a backoff expires (the runner keeps polling with its
partitions paused, so the consumer stays in its group); a record the store rejects for its
content is dead-lettered and the rest of the batch is written with the same offsets, so the
stored position moves past the poison record and it never blocks its partition.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from schemas.records import EnrichedRecord
from sinks.base import Batch, FencedError, RecordRejected, RetriableError, Sink
from workers.logs import get_logger
from workers.metrics import SINK_FLUSH_SECONDS, SINK_RECORDS, SINK_RETRIES, SINK_SKIPPED, SINK_UP

log = get_logger(__name__)

DeadLetter = Callable[[EnrichedRecord, str], Awaitable[None]]


@dataclass(slots=True)
class _Buffer:
    start_offset: int
    next_offset: int
    records: list[EnrichedRecord] = field(default_factory=list)
    offsets: list[int] = field(default_factory=list)
    opened_at: float = field(default_factory=time.monotonic)


@dataclass
class WriterConfig:
    max_records: int = 2000
    max_age_s: float = 0.5  # the longest a record waits in a buffer ...
    min_age_s: float = 0.05  # ... and the shortest: in between, it follows the store's flush time
    attempt_timeout_s: float = 30.0
    backoff_initial_s: float = 0.2
    backoff_max_s: float = 20.0


class SinkWriter:
    def __init__(self, sink: Sink, topic: str, dead_letter: DeadLetter, config: WriterConfig | None = None) -> None:
        self.sink, self.topic, self.dead_letter = sink, topic, dead_letter
        self.config = config or WriterConfig()
        self.epochs: dict[int, int] = {}
        self._buffers: dict[int, _Buffer] = {}
        # partition -> position the store now holds, for the runner's advisory Kafka commit
        self.stored_positions: dict[int, int] = {}
        self.fenced: set[int] = set()  # partitions another owner claimed; the runner decides
        self._failures = 0
        self.blocked_until = 0.0
        self.flush_ewma_s = 0.0  # recent time per batch write

    def linger_s(self) -> float:
        """How old a buffer may grow before it is written: about one flush time. A fast store gets
        small, prompt batches (low latency); a slow one gets fewer, larger batches, so per-batch
        costs (a transaction, a lock, a round trip) shrink as a share of the work."""
        return min(self.config.max_age_s, max(self.config.min_age_s, self.flush_ewma_s))

    # --- ownership -------------------------------------------------------------------
    def assign(self, partition: int, epoch: int) -> None:
        """Own a partition from its stored position on: anything buffered before is re-read."""
        self._buffers.pop(partition, None)
        self.epochs[partition] = epoch

    def revoke(self, partition: int) -> None:
        """Drop unwritten records: their offsets are not stored, so the next owner re-reads them."""
        self.epochs.pop(partition, None)
        self._buffers.pop(partition, None)

    # --- buffering -------------------------------------------------------------------
    def add(self, partition: int, offset: int, record: EnrichedRecord | None) -> None:
        """Buffer a record, or just advance the position (record None: filtered or dead-lettered)."""
        buffer = self._buffers.get(partition)
        if buffer is not None and offset < buffer.next_offset:
            buffer = None  # the consumer went back (a seek): the buffered records come again
        if buffer is None:
            buffer = self._buffers[partition] = _Buffer(start_offset=offset, next_offset=offset + 1)
        buffer.next_offset = offset + 1
        if record is not None:
            buffer.records.append(record)
            buffer.offsets.append(offset)

    def buffered(self) -> int:
        return sum(len(buffer.records) for buffer in self._buffers.values())

    @property
    def blocked(self) -> bool:
        return time.monotonic() < self.blocked_until

    # --- flushing --------------------------------------------------------------------
    async def flush(self, *, force: bool = False) -> None:
        """Write every full or old buffer. Raises nothing retriable: on failure it backs off."""
        if self.blocked:
            return
        now, linger = time.monotonic(), self.linger_s()
        for partition, buffer in list(self._buffers.items()):
            due = len(buffer.records) >= self.config.max_records or now - buffer.opened_at >= linger
            if not (force or due) or partition not in self.epochs:
                continue
            try:
                await self._write_isolating_poison(partition, buffer)
            except RetriableError as exc:
                self._back_off(exc)
                return
            except FencedError as exc:
                log.warning("partition fenced; dropping it", sink=self.sink.name, partition=partition, error=str(exc))
                self.revoke(partition)
                self.fenced.add(partition)
                continue
            self._buffers.pop(partition, None)
            self._failures = 0
            SINK_UP.labels(self.sink.name).set(1)

    def _back_off(self, exc: Exception) -> None:
        self._failures += 1
        SINK_RETRIES.labels(self.sink.name).inc()
        SINK_UP.labels(self.sink.name).set(0)
        cap = min(self.config.backoff_max_s, self.config.backoff_initial_s * 2 ** min(self._failures, 16))
        delay = random.uniform(0, cap)  # full jitter: replicas do not retry in lockstep
        self.blocked_until = time.monotonic() + delay
        log.warning("sink write failed; retrying", sink=self.sink.name, attempt=self._failures,
                    retry_in_s=round(delay, 2), error=str(exc)[:300])

    async def _write_isolating_poison(self, partition: int, buffer: _Buffer) -> None:
        while True:
            try:
                await self._write_prefix(partition, buffer, len(buffer.records))
                return
            except RecordRejected as exc:
                index = _index_of(buffer.records, exc.record_id)
                if index is None:
                    break  # the store did not say which record: go one by one
                await self._dead_letter(buffer, index, exc.reason)
        # One record per batch (Kafka Connect's fallback): each success moves the position.
        while buffer.records:
            try:
                await self._write_prefix(partition, buffer, 1)
            except RecordRejected as exc:
                await self._dead_letter(buffer, 0, exc.reason)
        await self._write_prefix(partition, buffer, 0)

    async def _dead_letter(self, buffer: _Buffer, index: int, reason: str) -> None:
        # Sent (and acknowledged) before the position moves past the record: nothing is lost.
        await self.dead_letter(buffer.records[index], reason)
        log.warning("record dead-lettered", sink=self.sink.name, record_id=buffer.records[index].record_id,
                    reason=reason[:200])
        del buffer.records[index]
        del buffer.offsets[index]

    async def _write_prefix(self, partition: int, buffer: _Buffer, count: int) -> None:
        """Write the first `count` buffered records as one batch, then trim them from the buffer."""
        end = buffer.offsets[count] if count < len(buffer.offsets) else buffer.next_offset
        records = buffer.records[:count]
        batch = Batch(self.topic, partition, buffer.start_offset, end, self.epochs[partition], records)
        started = time.monotonic()
        try:
            async with asyncio.timeout(self.config.attempt_timeout_s):
                written = await self.sink.write_batch(batch)
        except TimeoutError as exc:
            raise RetriableError(f"{self.sink.name}: write timed out after {self.config.attempt_timeout_s}s") from exc
        took = time.monotonic() - started
        SINK_FLUSH_SECONDS.labels(self.sink.name).observe(took)
        self.flush_ewma_s += 0.2 * (took - self.flush_ewma_s)
        (SINK_RECORDS if written else SINK_SKIPPED).labels(self.sink.name).inc(len(records))
        buffer.start_offset = end
        self.stored_positions[partition] = end
        del buffer.records[:count]
        del buffer.offsets[:count]


def _index_of(records: Sequence[EnrichedRecord], record_id: str | None) -> int | None:
    for index, record in enumerate(records):
        if record.record_id == record_id:
            return index
    return None
