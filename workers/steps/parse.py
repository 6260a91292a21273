"""Parse/normalise step: one raw log record in, one ParsedLine out.  Pure: no I/O after
the format file is loaded (once, at first use).

Formats are data (formats.yaml).  With ``source_format`` the named format is tried
first; otherwise, or when it does not fit, formats are detected in file order among
those whose ``first_chars`` prefilter admits the record's first character.

Contract:
- never raises on any input text and never drops a record: a record no format fits
  comes back as format "unknown" with the (stripped) text as message;
- surrounding whitespace is not part of a record (shippers add "\\n", some "\\r");
- a multi-line record (a traceback joined with "\\n") stays one record: its first line
  is the header, the following lines are appended to the message;
- ``level`` is one of NORMALISED_LEVELS or None; an unrecognised raw level is kept in
  ``fields["level_raw"]``;
- ``timestamp`` is timezone-aware UTC or None (see log_timestamps.py for zone and
  year rules).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from functools import lru_cache
from pathlib import Path

from workers.steps.log_formats import (
    DEFAULT_FORMATS_PATH,
    NORMALISED_LEVELS,
    FormatCatalog,
    LineFormat,
    load_catalog,
)
from workers.steps.log_timestamps import parse_timestamp
from workers.steps.structured_logs import decode_json_object, decode_logfmt

__all__ = ["NORMALISED_LEVELS", "UNKNOWN_FORMAT", "ParsedLine", "Parser", "parse_line"]

UNKNOWN_FORMAT = "unknown"

# RFC 5424 section 6.2.1: PRI = facility * 8 + severity.
SYSLOG_FACILITIES = (
    "kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news", "uucp", "cron",
    "authpriv", "ftp", "ntp", "security", "console", "solaris-cron",
    "local0", "local1", "local2", "local3", "local4", "local5", "local6", "local7",
)
SYSLOG_SEVERITIES = ("emerg", "alert", "crit", "err", "warning", "notice", "info", "debug")
SYSLOG_SEVERITY_LEVELS = ("FATAL", "CRITICAL", "CRITICAL", "ERROR", "WARN", "NOTICE", "INFO",
                          "DEBUG")
_MAX_PRI = len(SYSLOG_FACILITIES) * 8 - 1

_SD_ELEMENT = re.compile(r'\[([^\s\]=]+)((?:\s+[^\s=\]]+="(?:[^"\\]|\\.)*")*)\s*\]')
_SD_PARAM = re.compile(r'([^\s=\]]+)="((?:[^"\\]|\\.)*)"')
_SD_UNESCAPE = re.compile(r'\\([\\"\]])')


@dataclass(frozen=True, slots=True)
class ParsedLine:
    format: str                 # format name from formats.yaml, or "unknown"
    timestamp: datetime | None  # timezone-aware UTC
    level: str | None           # one of NORMALISED_LEVELS
    host: str | None
    service: str | None         # service / component / program / logger
    message: str
    fields: dict[str, str] = field(default_factory=dict)  # everything else parsed


def _utc_now() -> datetime:
    return datetime.now(UTC)


class Parser:
    """Compiled formats plus per-deployment settings; ``parse`` is thread-safe and pure."""

    def __init__(
        self,
        formats_path: Path = DEFAULT_FORMATS_PATH,
        zones: Mapping[str, tzinfo] | None = None,
        reference_time: Callable[[], datetime] = _utc_now,
    ) -> None:
        """``zones``: format name -> zone for its zone-less timestamps (default UTC).
        ``reference_time``: "now" for the year rule of year-less syslog timestamps."""
        self.catalog: FormatCatalog = load_catalog(formats_path, zones)
        self._reference_time = reference_time

    @property
    def format_names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.catalog.formats)

    def parse(self, line: str, source_format: str | None = None) -> ParsedLine:
        record = line.strip()
        if source_format is not None:
            named = self.catalog.by_name.get(source_format)
            if named is None:
                raise ValueError(
                    f"unknown source format {source_format!r}; known: {self.format_names}"
                )
            parsed = self._try_format(named, record)
            if parsed is not None:
                return parsed
            # A source sometimes emits lines of another shape (startup banners, stack
            # dumps): better detected than reported unknown.
        return self._detect(record, nested_allowed=True)

    def _detect(self, record: str, nested_allowed: bool) -> ParsedLine:
        if record:
            header, _, continuation = record.partition("\n")
            for candidate in self.catalog.candidates(record[0]):
                if candidate.nested and not nested_allowed:
                    continue
                if candidate.pattern is not None:
                    # Inline the cheap rejection: most candidates fail right here.
                    match = candidate.pattern.match(header)
                    if match is not None:
                        return self._from_match(candidate, match, continuation)
                    continue
                parsed = self._try_format(candidate, record)
                if parsed is not None:
                    return parsed
        return ParsedLine(UNKNOWN_FORMAT, None, None, None, None, record, {})

    def _try_format(self, line_format: LineFormat, record: str) -> ParsedLine | None:
        if line_format.kind == "json":
            return self._parse_structured(line_format, record, decode_json_object)
        if line_format.kind == "logfmt":
            return self._parse_structured(line_format, record, decode_logfmt)
        assert line_format.pattern is not None  # guaranteed by the loader for kind regex
        header, _, continuation = record.partition("\n")
        match = line_format.pattern.match(header)
        if match is None:
            return None
        return self._from_match(line_format, match, continuation)

    # -- regex formats -------------------------------------------------------------------

    def _from_match(
        self, line_format: LineFormat, match: re.Match[str], continuation: str
    ) -> ParsedLine:
        """Build the ParsedLine from a header match; ``continuation`` is the rest of a
        multi-line record (after the first "\\n"), appended to the message."""
        nil = line_format.nil_value
        groups = {
            name: value
            for name, value in match.groupdict().items()
            if value is not None and value != nil
        }
        for private in line_format.private_groups:
            groups.pop(private, None)
        message = groups.pop(line_format.message_group, "").rstrip()
        if continuation:
            message = f"{message}\n{continuation}"
        timestamp = None
        if line_format.timestamp_group is not None:
            timestamp = parse_timestamp(
                groups.pop(line_format.timestamp_group, ""),
                line_format.timestamp_formats,
                line_format.zone,
                self._reference_time() if line_format.yearless else None,
            )
        host = groups.pop(line_format.host_group, None) if line_format.host_group else None
        service = line_format.service_default
        if line_format.service_group is not None:
            service = groups.pop(line_format.service_group, service)
        level = None
        if line_format.level_group is not None:
            raw_level = groups.pop(line_format.level_group, None)
            if raw_level is not None:
                level = self._normalise_level(raw_level, line_format)
                if level is None:
                    groups["level_raw"] = raw_level
                elif line_format.level_by_first_char:
                    groups[line_format.level_group] = raw_level  # e.g. HTTP status stays
        if line_format.pri_group is not None and line_format.pri_group in groups:
            pri_level = _decode_pri(groups.pop(line_format.pri_group), groups)
            level = level or pri_level
        if line_format.structured_data_group is not None:
            _decode_structured_data(groups.pop(line_format.structured_data_group, ""), groups)
        parsed = ParsedLine(line_format.name, timestamp, level, host, service, message, groups)
        if line_format.nested:
            return self._merge_nested(parsed)
        return parsed

    def _merge_nested(self, outer: ParsedLine) -> ParsedLine:
        """A wrapper format (CRI) around an application line: take the inner line's
        meaning, keep the wrapper's fields and fall back to its timestamp."""
        inner = self._detect(outer.message, nested_allowed=False)
        if inner.format == UNKNOWN_FORMAT:
            return outer
        fields = {**outer.fields, **inner.fields, "inner_format": inner.format}
        return ParsedLine(
            outer.format,
            inner.timestamp or outer.timestamp,
            inner.level,
            inner.host or outer.host,
            inner.service or outer.service,
            inner.message,
            fields,
        )

    def _normalise_level(self, raw: str, line_format: LineFormat) -> str | None:
        if line_format.level_by_first_char:
            return line_format.level_by_first_char.get(raw[:1])
        key = raw.strip().lower()
        return (
            line_format.level_aliases.get(key)
            or self.catalog.level_aliases.get(key)
            or self.catalog.numeric_levels.get(key)
        )

    # -- structured formats --------------------------------------------------------------

    def _parse_structured(
        self,
        line_format: LineFormat,
        record: str,
        decode: Callable[[str], dict[str, str] | None],
    ) -> ParsedLine | None:
        continuation = ""
        decoded = decode(record)
        if decoded is None and "\n" in record:
            # One structured header line followed by a plain traceback.
            header, _, continuation = record.partition("\n")
            decoded = decode(header)
        if decoded is None:
            return None
        keys = self.catalog.structured_keys
        message = _pop_first(decoded, keys.message)
        raw_level = _pop_first(decoded, keys.level)
        raw_time = _pop_first(decoded, keys.timestamp)
        level = None
        if raw_level is not None:
            level = self._normalise_level(raw_level, line_format)
            if level is None:
                decoded["level_raw"] = raw_level
        timestamp = None
        if raw_time is not None:
            timestamp = parse_timestamp(raw_time, ("iso8601", "epoch"), line_format.zone)
            if timestamp is None:
                decoded["time_raw"] = raw_time
        host = _pop_first(decoded, keys.host)
        service = _pop_first(decoded, keys.service)
        if message is None:
            message = record if not continuation else record.partition("\n")[0]
        message = message.rstrip("\r\n")  # Docker json-file keeps the line's "\n" in "log"
        if continuation:
            message = f"{message}\n{continuation}"
        return ParsedLine(line_format.name, timestamp, level, host, service, message, decoded)


def _pop_first(values: dict[str, str], keys: tuple[str, ...]) -> str | None:
    for key in keys:
        if key in values:
            return values.pop(key)
    return None


def _decode_pri(raw: str, fields: dict[str, str]) -> str | None:
    pri = int(raw)  # the regex admits digits only
    if pri > _MAX_PRI:
        fields["pri"] = raw
        return None
    fields["facility"] = SYSLOG_FACILITIES[pri // 8]
    fields["severity"] = SYSLOG_SEVERITIES[pri % 8]
    return SYSLOG_SEVERITY_LEVELS[pri % 8]


def _decode_structured_data(raw: str, fields: dict[str, str]) -> None:
    """RFC 5424 STRUCTURED-DATA -> fields "sd.<SD-ID>.<PARAM-NAME>"."""
    if not raw:
        return
    fields["structured_data"] = raw
    for element in _SD_ELEMENT.finditer(raw):
        sd_id = element.group(1)
        for param in _SD_PARAM.finditer(element.group(2)):
            fields[f"sd.{sd_id}.{param.group(1)}"] = _SD_UNESCAPE.sub(r"\1", param.group(2))


@lru_cache(maxsize=1)
def default_parser() -> Parser:
    return Parser()


def parse_line(line: str, source_format: str | None = None) -> ParsedLine:
    """Parse one record with the default formats (formats.yaml, UTC for zone-less)."""
    return default_parser().parse(line, source_format)
