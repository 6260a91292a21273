"""The log chain on the native hot path: `NativeLogEnricher`, a drop-in for `LogEnricher`.

`polaris_native.LogChain` (native/, Rust) runs a whole batch in one call: decode, parse,
redact, entities, template, classify and score, and writes each record as the JSON that
`LogRecord.model_dump_json()` gives, so no Python object is made per line. The Python steps
in workers/steps/ stay the specification: the native ones are tested for identical results
on the Loghub samples and the steps' own test inputs (tests/unit/test_native_*.py), the
saved state is the same document, and whatever the native steps cannot decide exactly
(a line the native parser defers, non-ASCII text for the redaction rules, a new entity shape
for spaCy, a new template class) is handed back to those Python steps by `Reference`.

The adapters here turn the Python steps' loaded configuration (formats.yaml with its zones,
redaction.yaml, the scorer's settings) into the JSON the native steps are built from, so the
files stay the single source of both.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from schemas.records import Origin
from workers.pipeline import STATE_VERSION, RawLine, Rejected
from workers.steps.classify import classify
from workers.steps.entities import EntityExtractor
from workers.steps.parse import Parser, default_parser
from workers.steps.redact import RedactionRules, default_rules
from workers.steps.score_logs import LogScorerConfig

try:
    import polaris_native
except ImportError:  # pragma: no cover - exercised only without the native build
    polaris_native = None  # type: ignore[assignment]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
_REGEX_FLAG_NAMES = {re.IGNORECASE: "IGNORECASE", re.DOTALL: "DOTALL", re.MULTILINE: "MULTILINE"}


class NativeUnavailable(RuntimeError):
    """The native module is not built into this environment."""


def require_native() -> Any:
    if polaris_native is None:
        raise NativeUnavailable(
            "polaris_native is not installed: run scripts/build-native (needs cargo), "
            "or set POLARIS_PROCESS_NATIVE=false to run the Python steps")
    return polaris_native


# --- configuration adapters ---------------------------------------------------------------


def _zone_spec(zone: tzinfo) -> str:
    if isinstance(zone, ZoneInfo):
        if zone.key is None:
            raise ValueError("a ZoneInfo without a key cannot be handed to the native parser")
        return zone.key
    if isinstance(zone, timezone):
        return f"fixed:{zone.utcoffset(None) // _MICROSECOND}"
    raise ValueError(f"zone {zone!r} is not supported by the native parser")


def _optional_str(value: object, what: str) -> str | None:
    if value is None or isinstance(value, str):
        return value
    raise ValueError(f"{what} {value!r} is not a string (not supported by the native parser)")


def native_catalog_json(parser: Parser) -> str:
    """What the native LineParser needs of a loaded format catalog, as JSON."""
    import _strptime  # the locale tables Python's strptime itself uses

    catalog = parser.catalog
    locale_time = _strptime._TimeRE_cache.locale_time
    formats = []
    for f in catalog.formats:
        formats.append({
            "name": f.name,
            "kind": f.kind,
            "pattern": f.pattern.pattern if f.pattern is not None else None,
            "pattern_flags": f.pattern.flags if f.pattern is not None else 0,
            "first_chars": sorted(f.first_chars) if f.first_chars is not None else None,
            "message_group": f.message_group,
            "host_group": _optional_str(f.host_group, f"{f.name}: host"),
            "service_group": _optional_str(f.service_group, f"{f.name}: service"),
            "service_default": _optional_str(f.service_default, f"{f.name}: service_default"),
            "timestamp_group": _optional_str(f.timestamp_group, f"{f.name}: timestamp group"),
            "timestamp_formats": list(f.timestamp_formats),
            "zone": _zone_spec(f.zone),
            "level_group": _optional_str(f.level_group, f"{f.name}: level group"),
            "level_aliases": list(f.level_aliases.items()),
            "level_by_first_char": list(f.level_by_first_char.items()),
            "pri_group": _optional_str(f.pri_group, f"{f.name}: pri"),
            "structured_data_group": _optional_str(f.structured_data_group, f"{f.name}: structured_data"),
            # A non-string nil never equals a group value: the same as none.
            "nil_value": f.nil_value if isinstance(f.nil_value, str) else None,
            "nested": f.nested,
            "private_groups": list(f.private_groups),
        })
    keys = catalog.structured_keys
    return json.dumps({
        "formats": formats,
        "level_aliases": list(catalog.level_aliases.items()),
        "numeric_levels": list(catalog.numeric_levels.items()),
        "structured_keys": {"timestamp": list(keys.timestamp), "level": list(keys.level),
                            "message": list(keys.message), "host": list(keys.host),
                            "service": list(keys.service)},
        "unicode_version": unicodedata.unidata_version,
        "strptime_locale": {
            "a_weekday": list(locale_time.a_weekday), "f_weekday": list(locale_time.f_weekday),
            "a_month": list(locale_time.a_month), "f_month": list(locale_time.f_month),
            "am_pm": list(locale_time.am_pm),
            "directive_regexes": dict(_strptime._TimeRE_cache),
        },
    })


def native_rules_json(rules: RedactionRules) -> str:
    """The redaction.yaml specs the compiled rules came from (VERBOSE is implied), as JSON."""
    return json.dumps({
        "rules": [{
            "name": rule.name,
            "kind": rule.kind,
            "trigger": list(rule.trigger_literals),
            "trigger_regex": rule.trigger_regex.pattern if rule.trigger_regex else None,
            "pattern": rule.pattern.pattern,
            "flags": [name for flag, name in _REGEX_FLAG_NAMES.items() if rule.pattern.flags & flag],
            "action": rule.action,
        } for rule in rules.rules],
        "field_names": [{"pattern": f.pattern.pattern, "kind": f.kind} for f in rules.field_names],
    })


def native_scorer_json(config: LogScorerConfig) -> str:
    return json.dumps(asdict(config))


# --- the chain ------------------------------------------------------------------------------


# `polaris_native.EncodedLogRecord`: an enriched log record already written as the bytes of
# `LogRecord.model_dump_json()`, with `origin`, `record_id` and `json`. The chain makes one
# per record without running any Python code.
if TYPE_CHECKING:
    from polaris_native import EncodedLogRecord as EncodedLogRecord
elif polaris_native is not None:
    EncodedLogRecord = polaris_native.EncodedLogRecord
else:  # pragma: no cover - without the native build nothing makes one

    class EncodedLogRecord:
        pass


@dataclass(frozen=True, slots=True)
class _Label:
    label: str


class Reference:
    """The Python steps, for what the native chain hands back (see the module docstring).

    `fallbacks` counts what was handed back, per step, since `take_fallbacks` last read it:
    a source whose lines keep leaving the native path runs at Python speed."""

    def __init__(self, parser: Parser, rules: RedactionRules, extractor: EntityExtractor) -> None:
        self.parser, self.rules, self.extractor = parser, rules, extractor
        self.deferred_lines = 0
        self.fallbacks: dict[str, int] = {}

    def take_fallbacks(self) -> dict[str, int]:
        taken, self.fallbacks = self.fallbacks, {}
        return taken

    def _count(self, step: str, items: int = 1) -> None:
        self.fallbacks[step] = self.fallbacks.get(step, 0) + items

    def parse(self, text: str) -> tuple[Any, ...]:
        self.deferred_lines += 1
        self._count("parse")
        line = self.parser.parse(text)
        micros = None if line.timestamp is None else (line.timestamp - _EPOCH) // _MICROSECOND
        fields = list(line.fields.items()) if line.fields else None
        return line.format, micros, line.level, line.host, line.service, line.message, fields

    def redact(self, text: str) -> tuple[str, tuple[str, ...]]:
        self._count("redact")
        return self.rules.redact(text)

    def secret_field_kind(self, name: str) -> str | None:
        self._count("field_kind")
        return self.rules.secret_field_kind(name)

    def plan(self, shapes: list[str]) -> list[Any]:
        """Entity candidates of new shapes, from the spaCy pipeline (as EntityExtractor._lookup)."""
        self._count("plan", len(shapes))
        extractor = self.extractor
        if extractor.cache_size <= 0:
            extractor.ruler_runs += len(shapes)
            docs = extractor.nlp.pipe(shapes, batch_size=extractor.batch_size)
            return [extractor._candidates(doc) for doc in docs]
        plans = extractor._plan(shapes)
        return [plans[shape].candidates for shape in shapes]

    def rejected(self, origin: Origin, reason: str, value: bytes | None) -> Rejected:
        return Rejected(origin, reason, value)

    def classify(self, template: str, level: str | None, labels: tuple[str, ...]) -> tuple[str, int]:
        self._count("classify")
        found = classify(template, level, [_Label(label) for label in labels])
        return found.category, found.severity


@dataclass
class NativeLogEnricher:
    """`LogEnricher` on the native chain: the same records (as JSON), state and offsets."""

    redaction: RedactionRules = field(default_factory=default_rules)
    parser: Parser = field(default_factory=default_parser)
    scorer_config: LogScorerConfig = field(default_factory=LogScorerConfig)
    word_values: int = 4
    extractor: EntityExtractor | None = None  # built lazily: spaCy costs a second to load
    last_offsets: dict[str, int] = field(default_factory=dict)  # "topic/partition" -> last applied
    _chain: Any = None
    reference: Reference | None = None

    @property
    def chain(self) -> Any:
        if self._chain is None:
            native = require_native()
            if self.extractor is None:
                self.extractor = EntityExtractor()
            self.reference = Reference(self.parser, self.redaction, self.extractor)
            self._chain = native.LogChain(
                native_catalog_json(self.parser), native_rules_json(self.redaction),
                native_scorer_json(self.scorer_config), self.word_values,
                self.extractor._priority, self.extractor.cache_size, self.reference)
        return self._chain

    def enrich(self, batch: Sequence[RawLine], *, now: datetime | None = None) -> list[EncodedLogRecord | Rejected]:
        """As `LogEnricher.enrich`: replayed raws skipped, `last_offsets` moved to each
        partition's last record. The whole batch, even one mixing partitions, is one call."""
        received_us = ((now or datetime.now(UTC)) - _EPOCH) // _MICROSECOND
        raws = batch if isinstance(batch, list) else list(batch)
        results: list[EncodedLogRecord | Rejected] = self.chain.enrich(raws, received_us, self.last_offsets)
        return results

    def state(self) -> dict[str, Any]:
        """The same document as `LogEnricher.state()`."""
        state: dict[str, Any] = json.loads(self.state_json())
        return state

    def state_json(self) -> bytes:
        """`json.dumps(state())`, made without building the state in Python."""
        return b"".join((
            b'{"version": ', str(STATE_VERSION).encode(), b', "miner": ', self.chain.miner_json().encode(),
            b', "scorer": ', self.chain.scorer_json().encode(),
            b', "last_offsets": ', json.dumps(self.last_offsets).encode(), b"}"))

    def restore(self, state: dict[str, Any]) -> None:
        if state.get("version") != STATE_VERSION:
            raise ValueError(f"unknown process state version {state.get('version')!r}")
        self.chain.restore(json.dumps(state["miner"]), json.dumps(state["scorer"]))
        self.last_offsets = {key: int(offset) for key, offset in state["last_offsets"].items()}
