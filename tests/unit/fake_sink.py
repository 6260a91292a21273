"""An in-memory Sink for unit tests: the same contract as the real stores, with faults on demand."""

from __future__ import annotations

from collections.abc import Sequence

from schemas.records import EnrichedRecord
from sinks.base import Batch, Decision, Position, RecordRejected, RetriableError, decide


class FakeSink:
    name = "fake"

    def __init__(self) -> None:
        self.rows: dict[str, int] = {}  # record_id -> times applied (must stay 1)
        self.counter = 0  # a counter like the Neo4j/Redis ones: exact only with the fence
        self.positions: dict[int, Position] = {}
        self.poison: set[str] = set()
        self.poison_named = True
        self.down = False
        self.fail_after_commit = False

    async def start(self) -> None:
        return None

    async def write_batch(self, batch: Batch) -> bool:
        if self.down:
            raise RetriableError("fake: down")
        if decide(self.positions.get(batch.partition), batch) is Decision.SKIP:
            return False
        for record in batch.records:
            if record.record_id in self.poison:
                raise RecordRejected(record.record_id if self.poison_named else None, "fake: refused content")
        for record in batch.records:
            self.rows[record.record_id] = self.rows.get(record.record_id, 0) + 1
            self.counter += 1
        self.positions[batch.partition] = Position(batch.next_offset, batch.epoch)
        if self.fail_after_commit:
            self.fail_after_commit = False
            raise RetriableError("fake: timed out after commit")  # ambiguous: it was applied
        return True

    async def committed_offsets(
        self, topic: str, partitions: Sequence[int], *, claim: bool = False
    ) -> dict[int, Position]:
        for partition in partitions:
            stored = self.positions.get(partition, Position(0, 0))
            if claim:
                self.positions[partition] = Position(stored.next_offset, stored.epoch + 1)
        return {p: self.positions[p] for p in partitions if p in self.positions}

    async def health(self) -> None:
        if self.down:
            raise RetriableError("fake: down")

    async def close(self) -> None:
        return None

    async def count_records(self) -> int:
        return len(self.rows)

    async def repair(self, records: Sequence[EnrichedRecord]) -> None:
        for record in records:
            if record.record_id not in self.rows:
                self.rows[record.record_id] = 1
                self.counter += 1
