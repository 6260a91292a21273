"""Memoised timestamp decoding (log_timestamps.py) gives what decoding afresh gives."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo

import pytest

from workers.steps.log_timestamps import YEARLESS_FUTURE_TOLERANCE, clear_caches, parse_timestamp

SYSLOG = ("yearless:%b %d %H:%M:%S",)


def plain_year_rule(text: str, zone: tzinfo, reference: datetime) -> datetime | None:
    """The year rule, decoded afresh every time (the oracle for the memoised one)."""
    parsed = datetime.strptime(f"2000 {text}", "%Y %b %d %H:%M:%S")
    local = reference.astimezone(zone)
    for year in (local.year, local.year - 1, local.year - 2):
        try:
            candidate = parsed.replace(year=year, tzinfo=zone)
        except ValueError:
            continue
        if candidate - local <= YEARLESS_FUTURE_TOLERANCE:
            return candidate.astimezone(UTC)
    return None


@pytest.mark.parametrize("zone", [UTC, ZoneInfo("America/Los_Angeles"), ZoneInfo("Pacific/Kiritimati")])
def test_memoised_year_rule_matches_the_plain_rule_for_any_reference(zone: tzinfo) -> None:
    # New year, the 7-day tolerance edge, Feb 29, a DST fold and a DST gap.
    texts = ["Dec 31 23:59:59", "Jan  1 00:00:00", "Jan  7 12:00:00", "Feb 29 12:00:00",
             "Nov  1 01:30:00", "Mar  8 02:30:00", "Jul  4 08:00:00"]
    start = datetime(2023, 11, 1, tzinfo=UTC)
    # References moving forward (as "now" does), then jumping about (replays, tests).
    references = [start + timedelta(hours=7 * i) for i in range(4000)]
    jumbled = references[:]
    random.Random(3).shuffle(jumbled)
    edges = [datetime(2025, 1, 1, tzinfo=zone) + timedelta(days=days, microseconds=micro)
             for days in (-366, -7, -1, 0, 1, 7, 358, 359) for micro in (-1, 0, 1)]
    clear_caches()
    for reference in [*references, *jumbled, *edges]:
        for text in texts:
            expected = plain_year_rule(text, zone, reference)
            assert parse_timestamp(text, SYSLOG, zone, reference) == expected, (text, reference)


def test_decoded_timestamps_are_shared_and_clear_caches_forgets_them() -> None:
    clear_caches()
    first = parse_timestamp("081109 203615", ("%y%m%d %H%M%S",))
    assert first == datetime(2008, 11, 9, 20, 36, 15, tzinfo=UTC)
    assert parse_timestamp("081109 203615", ("%y%m%d %H%M%S",)) is first
    assert parse_timestamp("not a time", ("iso8601", "epoch")) is None
    assert parse_timestamp("not a time", ("iso8601", "epoch")) is None  # a miss is remembered too
    clear_caches()
    again = parse_timestamp("081109 203615", ("%y%m%d %H%M%S",))
    assert again == first and again is not first
