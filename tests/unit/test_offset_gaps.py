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
