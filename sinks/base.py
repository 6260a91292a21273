"""The sink contract: four methods, and one shared rule for fencing.

A sink stores the records of one partition *and* that partition's next offset as one
atomic unit (each store does it its own way; see each module's docstring). Everything else
— buffering, deadlines, retries with backoff, bisecting a poison record, the DLQ — lives
once in `sinks.writer`, around this interface.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from schemas.records import EnrichedRecord, LogRecord

ANOMALY_THRESHOLD = 0.75  # a record scored at or above this becomes an anomaly event in the stores


@dataclass(frozen=True, slots=True)
class Position:
    """What a store holds for one input partition: the next offset to apply and the owner epoch."""

    next_offset: int
    epoch: int


@dataclass(frozen=True, slots=True)
class Batch:
    """Records of one input partition covering offsets [start_offset, next_offset)."""

    topic: str
    partition: int
    start_offset: int
    next_offset: int
    epoch: int
    records: Sequence[EnrichedRecord]


class Decision(enum.Enum):
    WRITE = "write"
    SKIP = "skip"  # already applied: a replay, or a retry after an ambiguous timeout


class FencedError(RuntimeError):
    """A newer owner claimed the partition: this writer must drop it and never retry."""


class RetriableError(RuntimeError):
    """The store is unavailable or timed out; the same batch may be retried later."""


class RecordRejected(RuntimeError):
    """The store refused a record for its content (not retriable): dead-letter it.

    `record_id` names the record when the store tells which one; None makes the writer
    write the batch one record at a time to find it.
    """

    def __init__(self, record_id: str | None, reason: str) -> None:
        super().__init__(f"record {record_id} rejected: {reason}")
        self.record_id, self.reason = record_id, reason


def log_records_of(batch: Batch, sink: str) -> list[LogRecord]:
    """The batch's records for a store that holds log records only; anything else is refused
    (dead-lettered with the reason) — topology validation keeps such routes from existing."""
    for record in batch.records:
        if not isinstance(record, LogRecord):
            raise RecordRejected(record.record_id, f"{sink}: stores log records only (got kind {record.kind!r})")
    return list(batch.records)  # type: ignore[arg-type]


def decide(stored: Position | None, batch: Batch) -> Decision:
    """The one fencing rule, evaluated under the store's lock in the write transaction.

    Holes are normal (transaction markers and compaction leave gaps in offsets), so a stored
    position at or before the batch start means "write". A batch straddling the stored
    position can only come from a bug or a zombie: refuse it.
    """
    if stored is None:
        return Decision.WRITE
    if stored.epoch > batch.epoch:
        raise FencedError(f"{batch.topic}[{batch.partition}] owned by epoch {stored.epoch} > {batch.epoch}")
    if stored.next_offset <= batch.start_offset:
        return Decision.WRITE
    if stored.next_offset >= batch.next_offset:
        return Decision.SKIP
    raise FencedError(
        f"{batch.topic}[{batch.partition}] batch [{batch.start_offset}, {batch.next_offset}) overlaps "
        f"stored position {stored.next_offset}: refusing a partial rewrite"
    )


class Sink(Protocol):
    """What every store implements. Methods raise RetriableError / RecordRejected / FencedError."""

    name: str

    async def start(self) -> None:
        """Connect and create what the store needs (tables, constraints, collections)."""

    async def write_batch(self, batch: Batch) -> bool:
        """Atomically apply the batch and move the stored position; False if it was already applied."""

    async def committed_offsets(
        self, topic: str, partitions: Sequence[int], *, claim: bool = False
    ) -> dict[int, Position]:
        """Stored positions; claim=True bumps each partition's epoch to fence older owners."""

    async def health(self) -> None:
        """A cheap probe on the real write path; raises RetriableError when unhealthy."""

    async def close(self) -> None:
        """Idempotent."""

    async def count_records(self) -> int:
        """How many records the store holds (for verification and tests)."""
