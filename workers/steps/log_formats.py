"""Load formats.yaml into compiled, immutable format specs (once, not per line)."""

from __future__ import annotations

import re
import string
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, tzinfo
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import yaml

DEFAULT_FORMATS_PATH = Path(__file__).with_name("formats.yaml")
NORMALISED_LEVELS = ("TRACE", "DEBUG", "INFO", "NOTICE", "WARN", "ERROR", "CRITICAL", "FATAL")
KINDS = ("regex", "json", "logfmt")

# Named character classes usable in `first_chars`.
_CHAR_CLASSES: dict[str, str] = {
    "digit": string.digits,
    "upper": string.ascii_uppercase,
    "lower": string.ascii_lowercase,
    "alpha": string.ascii_letters,
}


class FormatConfigError(ValueError):
    """formats.yaml is malformed; raised at load time, never while parsing lines."""


@dataclass(frozen=True, slots=True)
class LineFormat:
    name: str
    kind: str
    pattern: re.Pattern[str] | None
    first_chars: frozenset[str] | None  # None: any first character
    message_group: str = "msg"
    host_group: str | None = None
    service_group: str | None = None
    service_default: str | None = None
    timestamp_group: str | None = None
    timestamp_formats: tuple[str, ...] = ()
    zone: tzinfo = UTC
    level_group: str | None = None
    level_aliases: Mapping[str, str] = field(default_factory=dict)
    level_by_first_char: Mapping[str, str] = field(default_factory=dict)
    pri_group: str | None = None
    structured_data_group: str | None = None
    nil_value: str | None = None
    nested: bool = False
    yearless: bool = False  # a timestamp format needs the reference time (year rule)
    private_groups: tuple[str, ...] = ()  # groups named "_..." are matched, not reported


@dataclass(frozen=True, slots=True)
class StructuredKeys:
    """Key conventions for JSON and logfmt records, in priority order."""

    timestamp: tuple[str, ...]
    level: tuple[str, ...]
    message: tuple[str, ...]
    host: tuple[str, ...]
    service: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class FormatCatalog:
    formats: tuple[LineFormat, ...]
    by_name: Mapping[str, LineFormat]
    # first character -> formats to try, in detection order (prefilter index)
    candidates_by_first_char: Mapping[str, tuple[LineFormat, ...]]
    candidates_any: tuple[LineFormat, ...]  # for characters not in the index
    level_aliases: Mapping[str, str]
    numeric_levels: Mapping[str, str]
    structured_keys: StructuredKeys

    def candidates(self, first_char: str) -> tuple[LineFormat, ...]:
        return self.candidates_by_first_char.get(first_char, self.candidates_any)


def _first_chars(spec: Any) -> frozenset[str] | None:
    if spec is None or spec == "any":
        return None
    chars = "".join(_CHAR_CLASSES.get(part, part) for part in str(spec).split("|"))
    return frozenset(chars)


def _level_map(raw: Mapping[str, Any] | None, name: str) -> dict[str, str]:
    mapping = {str(k).lower(): str(v) for k, v in (raw or {}).items()}
    unknown = set(mapping.values()) - set(NORMALISED_LEVELS)
    if unknown:
        raise FormatConfigError(f"{name}: levels {sorted(unknown)} not in {NORMALISED_LEVELS}")
    return mapping


def _build_format(entry: Mapping[str, Any], zones: Mapping[str, tzinfo]) -> LineFormat:
    name = str(entry["name"])
    kind = str(entry.get("kind", "regex"))
    if kind not in KINDS:
        raise FormatConfigError(f"{name}: kind {kind!r} not in {KINDS}")
    pattern = None
    if kind == "regex":
        try:
            # VERBOSE: the YAML may fold a long regex over lines; literal spaces are "[ ]".
            pattern = re.compile(str(entry["regex"]), re.VERBOSE)
        except (KeyError, re.error) as exc:
            raise FormatConfigError(f"{name}: bad or missing regex: {exc}") from exc
    timestamp = entry.get("timestamp") or {}
    level = entry.get("level") or {}
    zone: tzinfo = ZoneInfo(str(timestamp["zone"])) if "zone" in timestamp else UTC
    zone = zones.get(name, zone)
    line_format = LineFormat(
        name=name,
        kind=kind,
        pattern=pattern,
        first_chars=_first_chars(entry.get("first_chars")),
        message_group=str(entry.get("message", "msg")),
        host_group=entry.get("host"),
        service_group=entry.get("service"),
        service_default=entry.get("service_default"),
        timestamp_group=timestamp.get("group"),
        timestamp_formats=tuple(str(f) for f in timestamp.get("formats", ())),
        zone=zone,
        level_group=level.get("group"),
        level_aliases=_level_map(level.get("map"), name),
        level_by_first_char=_level_map(level.get("by_first_char"), name),
        pri_group=entry.get("pri"),
        structured_data_group=entry.get("structured_data"),
        nil_value=entry.get("nil"),
        nested=bool(entry.get("nested", False)),
        yearless=any(str(f).startswith("yearless:") for f in timestamp.get("formats", ())),
        private_groups=tuple(g for g in (pattern.groupindex if pattern else ()) if g[0] == "_"),
    )
    if pattern is not None:
        groups = set(pattern.groupindex)
        used = (line_format.message_group, line_format.host_group, line_format.service_group,
                line_format.timestamp_group, line_format.level_group, line_format.pri_group,
                line_format.structured_data_group)
        missing = {g for g in used if g is not None and g not in groups}
        if missing:
            raise FormatConfigError(f"{name}: regex lacks groups {sorted(missing)}")
    return line_format


def load_catalog(
    path: Path = DEFAULT_FORMATS_PATH, zones: Mapping[str, tzinfo] | None = None
) -> FormatCatalog:
    """Read and compile a formats file; ``zones`` overrides the zone of named formats."""
    with path.open(encoding="utf-8") as handle:
        document = yaml.safe_load(handle)
    if not isinstance(document, dict) or not isinstance(document.get("formats"), list):
        raise FormatConfigError(f"{path}: expected a mapping with a 'formats' list")
    formats = tuple(_build_format(entry, zones or {}) for entry in document["formats"])
    names = [f.name for f in formats]
    if len(set(names)) != len(names):
        raise FormatConfigError(f"{path}: duplicate format names")
    indexed_chars = set().union(*(f.first_chars or set() for f in formats))
    by_char = {
        char: tuple(f for f in formats if f.first_chars is None or char in f.first_chars)
        for char in indexed_chars
    }
    keys = document.get("structured_keys") or {}
    return FormatCatalog(
        formats=formats,
        by_name={f.name: f for f in formats},
        candidates_by_first_char=by_char,
        candidates_any=tuple(f for f in formats if f.first_chars is None),
        level_aliases=_level_map(document.get("levels"), "levels"),
        numeric_levels=_level_map(document.get("numeric_levels"), "numeric_levels"),
        structured_keys=StructuredKeys(
            timestamp=tuple(keys.get("timestamp", ())),
            level=tuple(keys.get("level", ())),
            message=tuple(keys.get("message", ())),
            host=tuple(keys.get("host", ())),
            service=tuple(keys.get("service", ())),
        ),
    )
