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


def log_records_of(batch: Batch | Sequence[EnrichedRecord], sink: str) -> list[LogRecord]:
    """The batch's records for a store that holds log records only; anything else is refused
    (dead-lettered with the reason) — topology validation keeps such routes from existing."""
    records = batch.records if isinstance(batch, Batch) else batch  # a plain sequence: `repair`
    for record in records:
        if not isinstance(record, LogRecord):
            raise RecordRejected(record.record_id, f"{sink}: stores log records only (got kind {record.kind!r})")
    return list(records)  # type: ignore[arg-type]


OriginMarks = dict[str, tuple[int, int]]  # "raw topic/partition" -> (offset, sample index) last applied


def origin_mark(record: EnrichedRecord) -> tuple[str, tuple[int, int]]:
    """Where a record stands in its raw partition: (raw offset, sample index within the line).
    Only metric lines hold several samples; their record ids end in `.index` (index > 0)."""
    _, dot, suffix = record.record_id.rpartition(".")
    index = int(suffix) if dot and suffix.isdigit() else 0
    return f"{record.origin.topic}/{record.origin.partition}", (record.origin.offset, index)


def first_emissions(records: Sequence[EnrichedRecord], marks: OriginMarks) -> tuple[list[EnrichedRecord], OriginMarks]:
    """The records not emitted before, and the marks after them.

    Offset fencing catches a batch replayed at the same offsets, not a record the process tier
    emitted twice (after its crash, it re-sends from its last commit: same record, new offset
    in `records.enriched`). The process tier sends each raw partition's records in order, so a
    record at or behind its raw partition's mark is such a re-emission. Stores whose writes are
    not idempotent (counters) apply only first emissions and keep the marks with their position.
    """
    marks = dict(marks)
    fresh: list[EnrichedRecord] = []
    for record in records:
        key, mark = origin_mark(record)
        if key not in marks or mark > marks[key]:
            marks[key] = mark
            fresh.append(record)
    return fresh, marks


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

    async def repair(self, records: Sequence[EnrichedRecord]) -> None:
        """Upsert records the store is missing (`polaris verify --repair`) through the write path
        of `write_batch`, without reading or moving any stored position: the records come from
        behind the position, so the fence must neither refuse nor advance them."""
