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

import math
import re
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from functools import lru_cache
from typing import cast

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
    if not math.isfinite(value):
        return None  # "Infinity"/"NaN" (JSON 1e400) would never shrink below the bound
    # Magnitude tells the unit: s ~1e9, ms ~1e12, us ~1e15, ns ~1e18 (for years ~2000-2200).
    while abs(value) >= _EPOCH_SECONDS_MAX:
        value /= 1000.0
    try:
        return datetime.fromtimestamp(value, tz=UTC)
    except (OverflowError, OSError, ValueError):
        return None


@lru_cache(maxsize=8192)
def _parse_iso_naive_or_aware(text: str) -> datetime | None:
    try:
        return datetime.fromisoformat(text)  # 3.11 reads "Z", "," and nanoseconds itself
    except ValueError:
        pass
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


# strptime directives the fast decoder understands; a pattern with any other directive
# goes to datetime.strptime (correct, ~5x slower).
_FAST_DIRECTIVES = {
    "Y": r"(?P<Y>\d{4})", "y": r"(?P<y>\d\d)", "m": r"(?P<m>\d\d?)", "d": r"(?P<d>\d\d?)",
    "H": r"(?P<H>\d\d?)", "M": r"(?P<M>\d\d)", "S": r"(?P<S>\d\d)", "f": r"(?P<f>\d{1,6})",
    "b": r"(?P<b>[A-Za-z]{3})", "a": r"[A-Za-z]{3}", "z": r"(?P<z>[+-]\d\d:?\d\d|Z)",
}
_MONTHS = {name: number for number, name in enumerate(
    ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"), 1)}


@lru_cache(maxsize=64)
def _fast_pattern(pattern: str) -> re.Pattern[str] | None:
    """A strptime pattern as a regex with one group per field, or None if unsupported."""
    parts: list[str] = []
    index = 0
    while index < len(pattern):
        char = pattern[index]
        if char == "%":
            directive = _FAST_DIRECTIVES.get(pattern[index + 1:index + 2])
            if directive is None:
                return None
            parts.append(directive)
            index += 2
            continue
        # strptime lets one space in the pattern match any run of whitespace ("Jul  3")
        parts.append(r"\s+" if char.isspace() else re.escape(char))
        index += 1
    return re.compile("".join(parts))


def _fast_strptime(text: str, regex: re.Pattern[str]) -> datetime | None:
    match = regex.fullmatch(text)
    if match is None:
        return None
    groups = match.groupdict()
    if groups.get("Y") is not None:
        year = int(groups["Y"])
    else:
        short = int(groups.get("y") or 0)
        year = 2000 + short if short < 69 else 1900 + short  # strptime's %y pivot
    month = _MONTHS.get(groups["b"].lower(), 0) if groups.get("b") else int(groups.get("m") or 1)
    fraction = groups.get("f") or "0"
    zone: tzinfo | None = None
    if groups.get("z"):
        offset = groups["z"].replace(":", "")
        if offset == "Z":
            zone = UTC
        else:
            sign = -1 if offset[0] == "-" else 1
            delta = timedelta(hours=int(offset[1:3]), minutes=int(offset[3:5]))
            zone = timezone(sign * delta)
    return datetime(year, month, int(groups.get("d") or 1), int(groups.get("H") or 0),
                    int(groups.get("M") or 0), int(groups.get("S") or 0),
                    int(fraction.ljust(6, "0")), tzinfo=zone)


@lru_cache(maxsize=8192)
def _strptime_cached(text: str, pattern: str) -> datetime | None:
    try:
        fast = _fast_pattern(pattern)
        if fast is not None:
            return _fast_strptime(text, fast)
        return datetime.strptime(text, pattern)
    except ValueError:  # out-of-range fields, e.g. month 13 or Feb 30
        return None


# (text, pattern, zone) -> (reference year, lowest reference, reference bound, result) of a
# year-less timestamp: the result holds for every reference in the same local year with
# lowest <= reference < bound (see _yearless), so lines of one second decode once.
_YearlessHit = tuple[int, datetime, datetime | None, datetime]
_yearless_hits: dict[tuple[str, str, tzinfo], _YearlessHit] = {}
# (text, formats, zone) -> result, for format lists that do not use the reference time
_decoded: dict[tuple[str, tuple[str, ...], tzinfo], datetime | None] = {}
_reference_free: dict[tuple[str, ...], bool] = {}  # formats -> no year-less pattern in it
_MAX_CACHED = 16_384
_MISSING = object()


def _yearless(text: str, pattern: str, zone: tzinfo, reference: datetime) -> datetime | None:
    key = (text, pattern, zone)
    hit = _yearless_hits.get(key)
    if hit is not None:
        reference_local = reference.astimezone(zone)
        year, lowest, bound, result = hit
        # Both sides carry `zone` itself, so comparisons and differences are wall-clock ones,
        # as in the loop below: `candidate - reference <= tolerance` is
        # `reference >= candidate - tolerance`.
        if reference_local.year == year and reference_local >= lowest and (
                bound is None or reference_local < bound):
            return result
    # 2000 is a leap year, so "Feb 29" parses; the real year is set below.
    parsed = _strptime_cached(f"2000 {text}", f"%Y {pattern}")
    if parsed is None:
        return None
    reference_local = reference.astimezone(zone)
    bound = None  # the earliest reference at which a later year tried first would be taken
    for year in (reference_local.year, reference_local.year - 1, reference_local.year - 2):
        try:
            candidate = parsed.replace(year=year, tzinfo=zone)
        except ValueError:  # Feb 29 outside a leap year
            continue
        lowest = candidate - YEARLESS_FUTURE_TOLERANCE
        if candidate - reference_local <= YEARLESS_FUTURE_TOLERANCE:
            result = candidate.astimezone(UTC)
            if len(_yearless_hits) >= _MAX_CACHED:
                _yearless_hits.clear()
            _yearless_hits[key] = (reference_local.year, lowest, bound, result)
            return result
        bound = lowest if bound is None else min(bound, lowest)
    return None


def clear_caches() -> None:
    """Forget memoised timestamps (benchmarks measure cold decoding with this)."""
    _parse_iso_naive_or_aware.cache_clear()
    _strptime_cached.cache_clear()
    _yearless_hits.clear()
    _decoded.clear()


def parse_timestamp(
    text: str,
    formats: tuple[str, ...],
    zone: tzinfo = UTC,
    reference: datetime | None = None,
) -> datetime | None:
    """Decode ``text`` with the first of ``formats`` that fits; None when none does."""
    if not text:
        return None
    reference_free = _reference_free.get(formats)
    if reference_free is None:
        reference_free = _reference_free[formats] = not any(
            pattern.startswith("yearless:") for pattern in formats)
    if not reference_free:
        return _decode(text, formats, zone, reference)
    # Many lines share a timestamp (one second, one format): decode each text once.
    key = (text, formats, zone)
    decoded = _decoded.get(key, _MISSING)
    if decoded is _MISSING:
        decoded = _decode(text, formats, zone, None)
        if len(_decoded) >= _MAX_CACHED:
            _decoded.clear()
        _decoded[key] = decoded
    return cast("datetime | None", decoded)


def _decode(
    text: str, formats: tuple[str, ...], zone: tzinfo, reference: datetime | None
) -> datetime | None:
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
