"""Timestamp decoding for the parse step: text in, timezone-aware UTC datetime out.

Timestamp "formats" named in formats.yaml are either strptime patterns or one of
the special names below:

- ``iso8601``  RFC 3339 / ISO 8601 (``T`` or space, ``,`` or ``.`` fraction, up to
               nanoseconds, ``Z``/``+hh:mm``/``+hhmm``/none, trailing Go zone
               abbreviation like ``-0400 EST`` ignored).
- ``epoch``    seconds, milliseconds, microseconds or nanoseconds since 1970,
               told apart by magnitude.
- ``yearless:<strptime>``  a pattern without a year (BSD syslog ``%b %d %H:%M:%S``).

Year rule for year-less timestamps (the rule rsyslog and Logstash use): take the
year of the reference time; if that puts the timestamp more than
``YEARLESS_FUTURE_TOLERANCE`` after the reference time, it belongs to the previous
year (a December line read in January).  The reference time is "now" unless the
caller passes one (tests, replays).

A timestamp without a zone is read in the zone configured for the format
(``UTC`` unless configured otherwise).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, tzinfo
from functools import lru_cache

YEARLESS_FUTURE_TOLERANCE = timedelta(days=7)
# seconds-since-epoch below this are plausible seconds; above, a finer unit
_EPOCH_SECONDS_MAX = 1e11

_ISO_FRACTION = re.compile(r"([.,]\d{6})\d+")
_TRAILING_ZONE_NAME = re.compile(r"\s+[A-Z]{2,5}$")
_COMPACT_OFFSET = re.compile(r"\s*([+-]\d\d):?(\d\d)$")


def parse_epoch(text: str) -> datetime | None:
    try:
        value = float(text)
    except ValueError:
        return None
    # Magnitude tells the unit: s ~1e9, ms ~1e12, us ~1e15, ns ~1e18 (for years ~2000-2200).
    while abs(value) >= _EPOCH_SECONDS_MAX:
        value /= 1000.0
    try:
        return datetime.fromtimestamp(value, tz=UTC)
    except (OverflowError, OSError, ValueError):
        return None


@lru_cache(maxsize=8192)
def _parse_iso_naive_or_aware(text: str) -> datetime | None:
    candidate = text.strip()
    if candidate.endswith(("Z", "z")):
        candidate = candidate[:-1] + "+00:00"
    candidate = _TRAILING_ZONE_NAME.sub("", candidate)  # Go's "-0400 EST"
    candidate = _COMPACT_OFFSET.sub(r"\1:\2", candidate) if _has_offset(candidate) else candidate
    candidate = _ISO_FRACTION.sub(r"\1", candidate)
    try:
        return datetime.fromisoformat(candidate)
    except ValueError:
        return None


def _has_offset(candidate: str) -> bool:
    # An offset follows the time part, so look only past the date (which has '-' too).
    tail = candidate[10:]
    return "+" in tail or "-" in tail


@lru_cache(maxsize=8192)
def _strptime_cached(text: str, pattern: str) -> datetime | None:
    try:
        return datetime.strptime(text, pattern)
    except ValueError:
        return None


def _yearless(text: str, pattern: str, zone: tzinfo, reference: datetime) -> datetime | None:
    # 2000 is a leap year, so "Feb 29" parses; the real year is set below.
    parsed = _strptime_cached(f"2000 {text}", f"%Y {pattern}")
    if parsed is None:
        return None
    reference_local = reference.astimezone(zone)
    for year in (reference_local.year, reference_local.year - 1, reference_local.year - 2):
        try:
            candidate = parsed.replace(year=year, tzinfo=zone)
        except ValueError:  # Feb 29 outside a leap year
            continue
        if candidate - reference_local <= YEARLESS_FUTURE_TOLERANCE:
            return candidate.astimezone(UTC)
    return None


def parse_timestamp(
    text: str,
    formats: tuple[str, ...],
    zone: tzinfo = UTC,
    reference: datetime | None = None,
) -> datetime | None:
    """Decode ``text`` with the first of ``formats`` that fits; None when none does."""
    if not text:
        return None
    for pattern in formats:
        parsed: datetime | None
        if pattern == "iso8601":
            parsed = _parse_iso_naive_or_aware(text)
        elif pattern == "epoch":
            parsed = parse_epoch(text)
        elif pattern.startswith("yearless:"):
            parsed = _yearless(text, pattern[9:], zone, reference or datetime.now(UTC))
        else:
            parsed = _strptime_cached(text, pattern)
        if parsed is not None:
            if parsed.tzinfo is None:
                parsed = parsed.replace(tzinfo=zone)
            return parsed.astimezone(UTC)
    return None
