"""Offsets the stream skipped: found from the partition's last applied offset and the batch."""

from __future__ import annotations

from workers.app import offset_gaps


def test_no_gap_in_a_contiguous_batch_or_a_replay() -> None:
    assert offset_gaps(329, [330, 331, 332]) == []
    assert offset_gaps(400, [395, 396, 401]) == []  # a replay overlapping what was applied
    assert offset_gaps(None, [17, 18]) == []  # nothing applied yet: nothing to compare with


def test_gaps_before_and_inside_a_batch() -> None:
    assert offset_gaps(329, [330, 331, 333, 334]) == [(332, 333)]
    assert offset_gaps(329, [335, 336]) == [(330, 335)]
    assert offset_gaps(10, [14, 12, 11]) == [(13, 14)]  # unordered input
    assert offset_gaps(None, [5, 9]) == [(6, 9)]


def test_records_the_state_already_applied_are_dropped_wherever_they_sit_in_a_batch() -> None:
    from schemas.records import Origin
    from workers.pipeline import RawLine, not_applied

    def raw(offset: int) -> RawLine:
        return RawLine(Origin(topic="logs.raw", partition=1, offset=offset), b"x", None)

    last_offsets = {"logs.raw/1": 2359}
    # faust-streaming can hand a prefetched record over ahead of older ones after a rebalance
    batch = sorted([raw(2400), raw(2358), raw(2360), raw(2359), raw(2360)], key=lambda r: r.origin.offset)
    assert [r.origin.offset for r in not_applied(last_offsets, batch)] == [2360, 2400]  # one copy of each
    assert [r.origin.offset for r in not_applied({}, batch)] == [
        2358, 2359, 2360, 2400]
