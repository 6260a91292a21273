"""The process tier's work on metric samples, free of Kafka and Faust: raw lines in, records out.

One message (a "line") holds one or several samples, in either format:

* JSON: an object ``{"name": ..., "value": 1.5, "labels": {...}, "timestamp": ...}`` (name also
  as ``metric`` / ``__name__``, timestamp also as ``ts`` / ``time``: ISO-8601, epoch seconds or
  epoch milliseconds), or an array of such objects.
* Prometheus text exposition: ``name{a="b",c="d"} 1.5 [timestamp_ms]``, one sample per line;
  ``#`` lines (HELP, TYPE, comments) are skipped, so a line of only comments gives no sample.

A line with any bad sample is rejected whole (the DLQ keeps the raw line, so it is fixed and
replayed as one). A label with an empty value is dropped: Prometheus treats it as absent.

Record ids: sample 0 of a line gets ``record_id_for(topic, partition, offset)``, as a log line
would; sample ``i > 0`` gets that id suffixed with ``.i``. Deterministic on every replay and
distinct within and across lines.

State: one `MetricDetector` per series (~20 KB each), at most `max_series` per enricher, least
recently updated evicted first (an evicted series that comes back starts learning afresh).
Because the detectors are large the state is saved incrementally: `state_header()` (offsets and
the LRU clock) plus `take_dirty_series()` (only series updated since the last call);
`take_evicted_series()` names entries to delete. Those writes are not one transaction: a crash
between them can leave series entries newer than the header. Each entry therefore carries the
position (offset, sample index) it has applied up to, and a replay skips a series' samples up
to it: they were applied, and their records delivered, before the entry was written.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, NamedTuple

from schemas.records import MetricRecord, record_id_for
from workers.pipeline import RawLine, Rejected, decode, not_applied, processing_error
from workers.steps.log_timestamps import parse_epoch, parse_timestamp
from workers.steps.score_metrics import MetricDetector, MetricScore

STATE_VERSION = 1  # of state_header() and the take_dirty_series() values
MAX_SERIES = 5_000  # detectors per enricher: ~100 MB at ~20 KB each
MAX_NAME = 200  # MetricRecord.name allows no more

_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
# one `name="value"` pair of an exposition label set, then a comma or the closing brace
_LABEL_PAIR = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"((?:[^"\\\n]|\\.)*)"\s*(?:,|(?=\}))')
_HEAD = re.compile(r"[^\s{]*")
_ESCAPE = re.compile(r"\\(.)")
_UNESCAPE = {"\\": "\\", '"': '"', "n": "\n"}
_FLOAT = re.compile(r"[+-]?(?:\d+\.?\d*(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?|[iI]nf(?:inity)?|NaN|nan)")
_NAME_KEYS = ("name", "metric", "__name__")
_TIME_KEYS = ("timestamp", "ts", "time")


class MetricSample(NamedTuple):
    name: str
    labels: dict[str, str]
    value: float
    timestamp: datetime | None  # None: the caller supplies one (Kafka time or now)


def metric_record_id(topic: str, partition: int, offset: int, index: int = 0) -> str:
    """Id of sample `index` of the line at a raw position: the log id for 0, suffixed otherwise."""
    base = record_id_for(topic, partition, offset)
    return base if index == 0 else f"{base}.{index}"


def series_key(name: str, labels: Mapping[str, str]) -> str:
    """Canonical series text: `name{k="v",...}`, labels sorted, values escaped as in exposition."""
    if not labels:
        return name
    pairs = ",".join(f'{k}="{_escape(labels[k])}"' for k in sorted(labels))
    return f"{name}{{{pairs}}}"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def parse_time(value: object) -> datetime | str | None:
    """ISO-8601 text or epoch seconds / milliseconds (number or numeric text) as UTC; None when
    absent; a str is the reason it is unreadable."""
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return f"invalid_timestamp: {value!r:.80} is neither ISO-8601 text nor epoch seconds/milliseconds"
    text = str(value).strip()
    parsed = parse_epoch(text) if _FLOAT.fullmatch(text) else parse_timestamp(text, ("iso8601",))
    if parsed is None:
        return f"invalid_timestamp: {value!r:.80} is neither ISO-8601 text nor epoch seconds/milliseconds"
    return parsed


def parse_metric_line(text: str) -> list[MetricSample] | str:
    """The samples of one message, or the reason (`kind: detail`) it is rejected."""
    stripped = text.strip()
    if stripped[:1] in ("[", "{"):
        try:
            data = json.loads(stripped)
        except ValueError as exc:
            # `{__name__="x"} 1` is exposition, not broken JSON
            if not (stripped[0] == "{" and stripped[1:].lstrip()[:1] not in ('"', "}")):
                return f"invalid_json: {exc}"
        else:
            return _json_samples(data)
    samples = []
    lines = [(n, line.strip()) for n, line in enumerate(stripped.splitlines(), 1)]
    exposition = [(n, line) for n, line in lines if line and not line.startswith("#")]
    for number, line in exposition:
        sample = _exposition_sample(line)
        if isinstance(sample, str):
            return sample if len(exposition) == 1 else f"{sample} (line {number})"
        samples.append(sample)
    return samples


def _json_samples(data: object) -> list[MetricSample] | str:
    if isinstance(data, dict):
        one = _json_sample(data)
        return one if isinstance(one, str) else [one]
    if not isinstance(data, list) or not data:
        return "invalid_sample: expected a JSON object or a non-empty array of objects"
    samples = []
    for index, item in enumerate(data):
        sample = _json_sample(item)
        if isinstance(sample, str):
            return f"{sample} (sample {index})"
        samples.append(sample)
    return samples


def _json_sample(item: object) -> MetricSample | str:
    if not isinstance(item, dict):
        return "invalid_sample: a sample must be a JSON object"
    raw_labels = item.get("labels") or {}
    if not isinstance(raw_labels, dict):
        return "invalid_labels: labels must be a JSON object"
    labels = {str(k): v if isinstance(v, str) else json.dumps(v, sort_keys=True, separators=(",", ":"))
              for k, v in raw_labels.items() if v is not None}
    in_labels = labels.pop("__name__", None)  # the name as Prometheus stores it, among the labels
    name = next((item[k] for k in _NAME_KEYS if item.get(k) is not None), in_labels)
    if not isinstance(name, str):
        return "missing_name: no name, metric or __name__" if name is None else "invalid_name: not a string"
    raw_value = item.get("value")
    if raw_value is None:
        return "missing_value: no value"
    if isinstance(raw_value, bool) or not isinstance(raw_value, int | float | str):
        return f"invalid_value: {raw_value!r:.80} is not a number"
    timestamp = parse_time(next((item[k] for k in _TIME_KEYS if item.get(k) is not None), None))
    if isinstance(timestamp, str):
        return timestamp
    return _checked(name, labels, str(raw_value).strip(), timestamp)


def _exposition_sample(line: str) -> MetricSample | str:
    """`name{a="b"} value [timestamp_ms]`; `{__name__="name",a="b"} value` too."""
    head = _HEAD.match(line)
    name = head.group() if head else ""
    rest = line[len(name):]
    labels: dict[str, str] = {}
    if rest.lstrip().startswith("{"):
        parsed = _exposition_labels(line, len(line) - len(rest.lstrip()) + 1)
        if isinstance(parsed, str):
            return parsed
        labels, end = parsed
        rest = line[end:]
        if not name:
            name = labels.pop("__name__", "")
    fields = rest.split()
    if not fields:
        return f"missing_value: no value after {name or 'the labels'}"
    if len(fields) > 2:
        return f"invalid_sample: unexpected {' '.join(fields[2:])!r:.80} after the timestamp"
    timestamp = None
    if len(fields) == 2:  # the exposition format's timestamp is integer milliseconds
        try:
            if not re.fullmatch(r"-?\d+", fields[1]):
                raise ValueError
            timestamp = datetime.fromtimestamp(int(fields[1]) / 1000, UTC)
        except (ValueError, OverflowError, OSError):  # not an integer, or beyond year 9999
            return f"invalid_timestamp: {fields[1]!r:.80} is not integer epoch milliseconds"
    return _checked(name, labels, fields[0], timestamp)


def _exposition_labels(line: str, pos: int) -> tuple[dict[str, str], int] | str:
    """Labels from just after `{` to just after `}`: (labels, end) or the reason."""
    labels: dict[str, str] = {}
    while True:
        while pos < len(line) and line[pos].isspace():
            pos += 1
        if line.startswith("}", pos):
            return labels, pos + 1
        match = _LABEL_PAIR.match(line, pos)
        if match is None:
            return f"invalid_labels: expected name=\"value\" or }} at column {pos + 1}"
        label, escaped = match.group(1), match.group(2)
        bad = next((e for e in _ESCAPE.findall(escaped) if e not in _UNESCAPE), None)
        if bad is not None:
            return f"invalid_labels: unknown escape \\{bad} in the value of {label}"
        if label in labels:
            return f"invalid_labels: {label} given twice"
        labels[label] = _ESCAPE.sub(lambda m: _UNESCAPE[m.group(1)], escaped)
        pos = match.end()


def _checked(name: str, labels: dict[str, str], value_text: str, timestamp: datetime | None) -> MetricSample | str:
    if not name:
        return "missing_name: no metric name"
    if len(name) > MAX_NAME or not _NAME.fullmatch(name):
        return f"invalid_name: {name!r:.80} does not match [a-zA-Z_:][a-zA-Z0-9_:]* (at most {MAX_NAME})"
    bad_label = next((k for k in labels if not _LABEL_NAME.fullmatch(k) or k == "__name__"), None)
    if bad_label is not None:
        return f"invalid_labels: label name {bad_label!r:.80} does not match [a-zA-Z_][a-zA-Z0-9_]*"
    if not _FLOAT.fullmatch(value_text):
        return f"invalid_value: {value_text!r:.80} is not a number"
    value = float(value_text)
    if not math.isfinite(value):
        return f"non_finite: value {value_text} is not a finite number"
    return MetricSample(name, {k: v for k, v in labels.items() if v != ""}, value, timestamp)


_UNITS = {
    "spike": "x the usual step", "shift": "sd from its usual level", "day_shift": "sd off its time-of-day shape",
    "week_shift": "sd off its day-of-week shape", "rare_level": "sd, a rarely seen level",
    "novelty": "sd beyond the range seen so far", "flatline": "x the longest flat run before",
    "shape": "x the usual step from the nearest past shape",
}


def explain(score: MetricScore, value: float) -> str:
    """One line on why a sample scored: which sub-detector, against what, by how much."""
    expected = "" if score.baseline is None else f" vs expected {score.baseline:.6g}"
    unit = _UNITS.get(score.detector, "")
    return f"{score.detector}: {value:.6g}{expected} ({score.deviation:+.3g} {unit}; p~1e-{score.surprise:.0f})"


@dataclass(slots=True)
class _Series:
    detector: MetricDetector
    used: int  # enricher tick of its latest update: restores the LRU order exactly
    # (raw offset, sample index) of the latest sample applied; a saved entry can be ahead of
    # the saved header (a crash between their changelog writes), and then the samples up to it
    # were applied and their records delivered already: a replay must skip them
    applied: tuple[int, int] = (-1, -1)


@dataclass
class MetricEnricher:
    """Parse and score the metric samples of one source partition, one detector per series."""

    max_series: int = MAX_SERIES
    last_offsets: dict[str, int] = field(default_factory=dict)  # "topic/partition" -> last applied
    _series: dict[str, _Series] = field(default_factory=dict)  # least recently updated first
    _dirty: set[str] = field(default_factory=set)
    _evicted: set[str] = field(default_factory=set)
    _tick: int = 0

    def enrich(self, batch: Sequence[RawLine], *, now: datetime | None = None) -> list[MetricRecord | Rejected]:
        received = now or datetime.now(UTC)
        out: list[MetricRecord | Rejected] = []
        # A replay of what this state has applied is skipped: its outputs went out the first time.
        for raw in not_applied(self.last_offsets, batch):
            text = decode(raw)
            samples = text if isinstance(text, Rejected) else parse_metric_line(text)
            if isinstance(samples, Rejected):
                out.append(samples)
            elif isinstance(samples, str):
                out.append(Rejected(raw.origin, samples, raw.value))
            else:
                try:
                    out.extend(self._records(raw, samples, received))
                except Exception as exc:  # this line alone is dead-lettered, not the batch
                    out.append(Rejected(raw.origin, processing_error(exc), raw.value))
        return out

    def _records(self, raw: RawLine, samples: list[MetricSample], received: datetime) -> list[MetricRecord]:
        origin = raw.origin
        if raw.timestamp_ms is not None and raw.timestamp_ms > 0:
            fallback = datetime.fromtimestamp(raw.timestamp_ms / 1000, UTC)
        else:
            fallback = received
        records: list[MetricRecord] = []
        for index, sample in enumerate(samples):
            timestamp = sample.timestamp or fallback
            series = series_key(sample.name, sample.labels)
            position = (origin.offset, index)
            saved = self._series.get(series)
            if saved is not None and position <= saved.applied:
                continue  # applied before the crash (its entry was saved ahead of the header)
            entry = self._entry(series)
            entry.applied = position
            result = entry.detector.update(timestamp.timestamp(), sample.value)
            score = round(result.score, 4)
            reason = explain(result, sample.value) if result.score > 0 else None
            records.append(MetricRecord(
                record_id=metric_record_id(origin.topic, origin.partition, origin.offset, index), origin=origin,
                timestamp=timestamp, name=sample.name, labels=sample.labels, series=series, value=sample.value,
                anomaly_score=score, anomaly_reason=reason))
        self.last_offsets[f"{origin.topic}/{origin.partition}"] = origin.offset
        return records

    def _entry(self, series: str) -> _Series:
        entry = self._series.pop(series, None)  # re-inserted below: moves it to the young end
        if entry is None:
            entry = _Series(MetricDetector(), 0)
            self._evicted.discard(series)
            while self._series and len(self._series) >= self.max_series:
                oldest = next(iter(self._series))
                del self._series[oldest]
                self._dirty.discard(oldest)
                self._evicted.add(oldest)
        self._tick += 1
        entry.used = self._tick
        self._series[series] = entry
        self._dirty.add(series)
        return entry

    @property
    def series(self) -> list[str]:
        """Series with a detector, least recently updated first."""
        return list(self._series)

    def state_header(self) -> dict[str, Any]:
        """JSON-safe offsets and LRU clock; small, saved with every commit."""
        return {"version": STATE_VERSION, "tick": self._tick, "last_offsets": dict(self.last_offsets)}

    def take_dirty_series(self) -> dict[str, dict[str, Any]]:
        """series -> {"used": tick, "applied": [offset, index], "detector": MetricDetector.to_dict()}
        for every series updated
        since the last call (JSON-safe); clears the set. Save with the header of the same moment."""
        taken = {s: {"used": self._series[s].used, "applied": list(self._series[s].applied),
                     "detector": self._series[s].detector.to_dict()}
                 for s in sorted(self._dirty)}
        self._dirty.clear()
        return taken

    def take_evicted_series(self) -> list[str]:
        """Series dropped since the last call, whose saved entries may be deleted; clears the set."""
        taken = sorted(self._evicted)
        self._evicted.clear()
        return taken

    def restore(self, header: Mapping[str, Any], series: Mapping[str, Mapping[str, Any]]) -> None:
        """Continue from a header and the latest saved entry of each series. Entries the caller did
        not delete after an eviction are harmless: only the `max_series` most recent are kept."""
        if header.get("version") != STATE_VERSION:
            raise ValueError(f"unknown metric state version {header.get('version')!r}")
        ranked = sorted(series.items(), key=lambda item: int(item[1]["used"]))
        keep = ranked[-self.max_series:] if self.max_series > 0 else []
        self._evicted = {key for key, _ in ranked[: len(ranked) - len(keep)]}
        self._series = {key: _Series(MetricDetector.from_dict(dict(entry["detector"])), int(entry["used"]),
                                     _applied(entry.get("applied")))
                        for key, entry in keep}
        self._dirty = set()
        self._tick = max([int(header["tick"]), *(s.used for s in self._series.values())])
        # Headers of older releases also hold a "recent" memory of results: no longer needed.
        self.last_offsets = {key: int(offset) for key, offset in header["last_offsets"].items()}


def _applied(saved: object) -> tuple[int, int]:
    """A saved entry's latest applied (offset, index); entries of older releases have none."""
    if isinstance(saved, list | tuple) and len(saved) == 2:
        return int(saved[0]), int(saved[1])
    return (-1, -1)
