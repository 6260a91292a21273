"""Streaming, unsupervised log anomaly scoring keyed per (service, template).

`LogAnomalyScorer.update(...)` takes one parsed log line and returns a `LogScore`: a score in
[0, 1] and the reasons behind it. Evidence, each a strength in [0, 1]:

- new template: never seen for this service (scaled by how much of the service we have seen,
  so the first lines of a fresh service are not all alarms);
- rare template: normalised surprisal of its decayed frequency within the service;
- template burst: its short-window count against what its own long-window rate predicts;
- error-rate burst: the service's error-level lines, short window against their own baseline;
- error content: words such as fatal/exception/failed/panic in the message;
- severe level: the line's own level (FATAL/ERROR/...).

The first four say how *unusual* the line is, the last two how *bad* it looks; the score
gates one by the other (see `_fuse`), so what is new and bad ranks above what is only new or
only routinely bad. No labels anywhere. State is bounded (per-service template cap,
service cap, decayed counters) and round-trips through a JSON-safe dict.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, field
from typing import Any

from workers.steps.anomaly_common import (
    LN2,
    AnomalyScore,
    Reason,
    decay,
    noisy_or,
    poisson_excess_nats,
    saturate,
)

STATE_VERSION = 1

NEW_TEMPLATE = "new_template"
RARE_TEMPLATE = "rare_template"
TEMPLATE_BURST = "template_burst"
ERROR_RATE_BURST = "error_rate_burst"
ERROR_CONTENT = "error_content"
SEVERE_LEVEL = "severe_level"

# Level name -> severity. Names from syslog, log4j/logback, java.util.logging and Python.
LEVEL_SEVERITY: dict[str, float] = {
    "EMERG": 1.0, "EMERGENCY": 1.0, "PANIC": 1.0, "ALERT": 1.0, "FATAL": 1.0,
    "CRIT": 1.0, "CRITICAL": 1.0, "SEVERE": 0.8, "ERROR": 0.7, "ERR": 0.7, "E": 0.7,
    "WARN": 0.3, "WARNING": 0.3, "W": 0.3,
}  # fmt: skip
ERROR_LEVEL_MIN_SEVERITY = 0.7

# Error vocabulary -> weight; a word stem matches any suffix ("fail" -> failed, failure).
# Why weights: "fatal"/"panic" almost never appear in healthy logs, "error" often does.
ERROR_WORDS: dict[str, float] = {
    "fatal": 0.9, "panic": 0.9, "exception": 0.8, "traceback": 0.8, "segfault": 0.9,
    "segmentation fault": 0.9, "core dump": 0.8, "abort": 0.7, "crash": 0.8,
    "out of memory": 0.9, "oom": 0.7, "corrupt": 0.8, "fail": 0.6, "error": 0.4,
    "refused": 0.5, "denied": 0.5, "timeout": 0.5, "timed out": 0.5, "unreachable": 0.5,
    "unable": 0.4, "cannot": 0.4, "can not": 0.4, "could not": 0.4, "lost": 0.4,
    "killed": 0.5, "terminated": 0.4, "invalid": 0.3, "illegal": 0.4, "warn": 0.2,
}  # fmt: skip
_ERROR_WORD_RE = re.compile(
    r"\b(" + "|".join(re.escape(w) for w in sorted(ERROR_WORDS, key=len, reverse=True)) + r")",
    re.IGNORECASE,
)
# The same words for ASCII text lower-cased first: matching without IGNORECASE is ~3x
# faster, and for ASCII text it finds exactly what _ERROR_WORD_RE finds (lower-casing ASCII
# changes neither lengths nor word boundaries; the pattern is ASCII lower case).
_ERROR_WORD_LOWER_RE = re.compile(
    r"\b(" + "|".join(re.escape(w) for w in sorted(ERROR_WORDS, key=len, reverse=True)) + r")"
)
_CONTENT_SCAN_CHARS = 2000  # bound the per-line regex cost on huge messages


@dataclass(frozen=True, slots=True)
class LogScorerConfig:
    frequency_half_life_lines: float = 5000.0  # memory of template frequencies, in service lines
    warmup_lines: float = 50.0  # novelty counts half as much after this many lines
    short_half_life_s: float = 900.0  # "recent" window for rate bursts
    long_half_life_s: float = 86400.0  # baseline window for rate bursts
    burst_min_count: float = 3.0  # fewer recent occurrences than this is never a burst
    burst_expected_floor: float = 0.05  # expected count for a template with no baseline yet
    burst_scale_nats: float = 4.0  # Poisson surprise giving strength 0.63
    max_templates_per_service: int = 5000
    max_services: int = 2000
    weight_new: float = 1.0
    weight_rare: float = 0.6
    weight_burst: float = 0.8
    weight_error_burst: float = 0.6
    weight_content: float = 0.6
    weight_level: float = 0.7
    unusual_alone: float = 0.5  # score of a fully unusual line with nothing bad in it
    bad_alone: float = 0.3  # score of a fully bad line that is routine for its service
    min_reason_strength: float = 0.05  # weaker evidence is left out of the explanation


LogScore = AnomalyScore


@dataclass(slots=True)
class _TemplateStats:
    frequency: float  # decayed on the service's line clock
    frequency_at: int  # service line index of the last frequency update
    short: float  # time-decayed count, short half-life
    long: float  # time-decayed count, long half-life
    last_time: float

    def to_list(self) -> list[float]:
        return [self.frequency, float(self.frequency_at), self.short, self.long, self.last_time]

    @classmethod
    def from_list(cls, v: list[float]) -> _TemplateStats:
        return cls(float(v[0]), int(v[1]), float(v[2]), float(v[3]), float(v[4]))


@dataclass(slots=True)
class _ServiceStats:
    first_time: float
    last_seen_tick: int  # global tick, for least-recently-used eviction of services
    lines: int = 0  # the service's line clock
    total: float = 0.0  # decayed line count on the same clock as template frequencies
    error_short: float = 0.0
    error_long: float = 0.0
    error_time: float = 0.0
    templates: dict[str, _TemplateStats] = field(default_factory=dict)


def level_severity(level: str | None) -> float:
    if not level:
        return 0.0
    return LEVEL_SEVERITY.get(level.strip().upper(), 0.0)


_LEVEL_SEVERITY_CACHE: dict[str | None, float] = {}  # raw level -> level_severity(level)


def _cached_level_severity(level: str | None) -> float:
    severity = _LEVEL_SEVERITY_CACHE.get(level)
    if severity is None:
        severity = level_severity(level)
        if len(_LEVEL_SEVERITY_CACHE) < 1024:  # levels are a handful of names
            _LEVEL_SEVERITY_CACHE[level] = severity
    return severity


# Distinct error words present -> their noisy-OR; few distinct word sets ever occur.
_CONTENT_STRENGTH_CACHE: dict[tuple[str, ...], float] = {(): 0.0}


def error_content_strength(message: str) -> tuple[float, list[str]]:
    """Noisy-OR of the distinct error words present, and which ones."""
    head = message[:_CONTENT_SCAN_CHARS]
    if head.isascii():
        hits = _ERROR_WORD_LOWER_RE.findall(head.lower())
        if not hits:
            return 0.0, []  # most lines: no error word at all
        found = set(hits)
    else:
        # Case-insensitive matching also accepts look-alikes (dotted capital I, long s) whose
        # lower case is not a listed word: keep only the listed ones.
        found = {m.lower() for m in _ERROR_WORD_RE.findall(head)} & ERROR_WORDS.keys()
    words = sorted(found)
    key = tuple(words)
    strength = _CONTENT_STRENGTH_CACHE.get(key)
    if strength is None:
        strength = noisy_or([(ERROR_WORDS[w], 1.0) for w in words])
        if len(_CONTENT_STRENGTH_CACHE) < 4096:
            _CONTENT_STRENGTH_CACHE[key] = strength
    return strength, words


class LogAnomalyScorer:
    def __init__(self, config: LogScorerConfig | None = None) -> None:
        self.config = config or LogScorerConfig()
        self._services: dict[str, _ServiceStats] = {}
        self._tick = 0
        self._line_decay = math.pow(2.0, -1.0 / self.config.frequency_half_life_lines)
        # decayed_window's full lengths, computed as it computes them
        self._full_short = self.config.short_half_life_s / LN2
        self._full_long = self.config.long_half_life_s / LN2
        # _fuse's constants, as _fuse computes them
        self._unusual_alone = self.config.unusual_alone
        self._bad_share = 1.0 - self.config.unusual_alone

    def update(
        self, service: str, template_id: str, level: str | None, message: str, timestamp: float
    ) -> LogScore:
        # Hot path (once per line): the evidence is fused as it is found — the same float
        # operations in the same order as noisy_or over the evidence lists, clamp01 and max
        # written out inline (a call costs more than the arithmetic) — and a reason's text is
        # only formatted when the reason is kept. test_score_logs checks that the scores of a
        # long real sequence stay those of the plain implementation.
        cfg = self.config
        self._tick += 1
        svc = self._services.get(service)
        if svc is None:
            svc = self._service(service, timestamp)
        else:
            svc.last_seen_tick = self._tick
            if timestamp < svc.first_time:
                svc.first_time = timestamp
        # decayed_window(max(elapsed, 0.0), ...) for both windows, inlined
        elapsed_service = timestamp - svc.first_time
        if elapsed_service <= 0.0:
            window_short = window_long = 0.0
        else:
            window_short = self._full_short * (
                1.0 - math.pow(2.0, -elapsed_service / cfg.short_half_life_s))
            window_long = self._full_long * (
                1.0 - math.pow(2.0, -elapsed_service / cfg.long_half_life_s))
        reasons: list[Reason] = []
        min_strength = cfg.min_reason_strength
        keep_unusual = 1.0  # running noisy-OR of how unlike this service's history
        keep_bad = 1.0  # running noisy-OR of how much the line itself says "trouble"

        # Frequency evidence, measured before this line is counted.
        templates = svc.templates
        stats = templates.get(template_id)
        seen_lines = svc.total
        lines = svc.lines
        if stats is None:
            maturity = seen_lines / (seen_lines + cfg.warmup_lines)
            weighted = cfg.weight_new * maturity
            keep_unusual *= 1.0 - (0.0 if weighted <= 0.0 else 1.0 if weighted >= 1.0 else weighted)
            if weighted >= min_strength:
                reasons.append(Reason(
                    NEW_TEMPLATE, maturity,
                    f"template never seen for {service} in {seen_lines:.0f} recent lines"))
            stats = _TemplateStats(0.0, lines, 0.0, 0.0, timestamp)
            templates[template_id] = stats
        else:
            count = stats.frequency * self._line_decay ** (lines - stats.frequency_at)
            # Normalised surprisal: 1 for a one-off in a long history, 0 for "every line".
            rarity = math.log((seen_lines + 1.0) / (count + 1.0)) / math.log(seen_lines + 2.0)
            strength = 0.0 if rarity < 0.0 else rarity  # max(rarity, 0.0), NaN included
            weighted = cfg.weight_rare * strength
            keep_unusual *= 1.0 - (0.0 if weighted <= 0.0 else 1.0 if weighted >= 1.0 else weighted)
            if weighted >= min_strength:
                reasons.append(Reason(
                    RARE_TEMPLATE, strength, f"{count:.1f} of {seen_lines:.0f} recent lines"))
            stats.frequency = count

        # Rate evidence: the template's recent count against its own long-run rate.
        # decay(..., max(dt, 0.0), ...) inlined; the long count decays once, used twice
        last_time = stats.last_time
        dt = timestamp - last_time
        if dt <= 0.0:
            long_decayed, short_decayed = stats.long, stats.short
        else:
            long_decayed = stats.long * math.pow(2.0, -dt / cfg.long_half_life_s)
            short_decayed = stats.short * math.pow(2.0, -dt / cfg.short_half_life_s)
        if timestamp > last_time:  # max(last_time, timestamp)
            stats.last_time = timestamp
        baseline_rate = long_decayed / (1e-9 if window_long < 1e-9 else window_long)
        short = stats.short = short_decayed + 1.0
        stats.long = long_decayed + 1.0
        if short >= cfg.burst_min_count:
            expected = baseline_rate * window_short + cfg.burst_expected_floor
            strength = saturate(poisson_excess_nats(short, expected), cfg.burst_scale_nats)
            weighted = cfg.weight_burst * strength
            keep_unusual *= 1.0 - (0.0 if weighted <= 0.0 else 1.0 if weighted >= 1.0 else weighted)
            if weighted >= min_strength:
                reasons.append(Reason(
                    TEMPLATE_BURST, strength, f"{short:.1f} recent vs {expected:.2f} expected"))

        severity = _LEVEL_SEVERITY_CACHE.get(level)
        if severity is None:
            severity = _cached_level_severity(level)
        if severity >= ERROR_LEVEL_MIN_SEVERITY:
            error_burst = self._update_error_rate(svc, timestamp, window_short, window_long)
            if error_burst is not None:
                weighted = cfg.weight_error_burst * error_burst.strength
                keep_unusual *= 1.0 - (0.0 if weighted <= 0.0 else 1.0 if weighted >= 1.0 else weighted)
                if weighted >= min_strength:
                    reasons.append(error_burst)

        content, words = error_content_strength(message)
        if words:
            weighted = cfg.weight_content * content
            keep_bad *= 1.0 - (0.0 if weighted <= 0.0 else 1.0 if weighted >= 1.0 else weighted)
            if weighted >= min_strength:
                reasons.append(Reason(ERROR_CONTENT, content, "words: " + ", ".join(words)))
        if severity > 0.0:
            weighted = cfg.weight_level * severity
            keep_bad *= 1.0 - (0.0 if weighted <= 0.0 else 1.0 if weighted >= 1.0 else weighted)
            if weighted >= min_strength:
                reasons.append(Reason(SEVERE_LEVEL, severity, f"level {level}"))

        # Count the line.
        stats.frequency += 1.0
        stats.frequency_at = lines + 1
        svc.total = seen_lines * self._line_decay + 1.0
        svc.lines = lines + 1
        if len(templates) > cfg.max_templates_per_service:
            self._evict_templates(svc)
        # clamp01 of both, written out
        unusual = 1.0 - keep_unusual
        unusual = 0.0 if unusual <= 0.0 else 1.0 if unusual >= 1.0 else unusual
        bad = 1.0 - keep_bad
        bad = 0.0 if bad <= 0.0 else 1.0 if bad >= 1.0 else bad
        return LogScore(self._fuse(unusual, bad), tuple(reasons))

    def _fuse(self, unusual: float, bad: float) -> float:
        """Unusual-and-bad outranks either alone:
        noisy_or([(1, unusual * (unusual_alone + (1 - unusual_alone) * bad)), (bad_alone, bad)]),
        written out with the same float operations in the same order.

        Why: a new INFO template (a deploy) and a routine ERROR line (a known flaky probe) are
        both common in healthy systems; what operators want first is what is new *and* bad.
        """
        gated = unusual * (self._unusual_alone + self._bad_share * bad)
        weighted = 1.0 * gated
        keep = 1.0 - (0.0 if weighted <= 0.0 else 1.0 if weighted >= 1.0 else weighted)
        weighted = self.config.bad_alone * bad
        keep *= 1.0 - (0.0 if weighted <= 0.0 else 1.0 if weighted >= 1.0 else weighted)
        score = 1.0 - keep
        return 0.0 if score <= 0.0 else 1.0 if score >= 1.0 else score

    def _update_error_rate(
        self, svc: _ServiceStats, timestamp: float, window_short: float, window_long: float
    ) -> Reason | None:
        """Count an error-level line; the error-rate burst evidence, if any (unfiltered)."""
        cfg = self.config
        dt = max(timestamp - svc.error_time, 0.0)
        baseline_rate = decay(svc.error_long, dt, cfg.long_half_life_s) / max(window_long, 1e-9)
        svc.error_short = decay(svc.error_short, dt, cfg.short_half_life_s) + 1.0
        svc.error_long = decay(svc.error_long, dt, cfg.long_half_life_s) + 1.0
        svc.error_time = max(svc.error_time, timestamp)
        expected = baseline_rate * window_short + cfg.burst_expected_floor
        if svc.error_short < cfg.burst_min_count:
            return None
        surprise = poisson_excess_nats(svc.error_short, expected)
        return Reason(
            ERROR_RATE_BURST,
            saturate(surprise, cfg.burst_scale_nats),
            f"{svc.error_short:.1f} recent error-level lines vs {expected:.2f} expected",
        )

    def _service(self, service: str, timestamp: float) -> _ServiceStats:
        svc = self._services.get(service)
        if svc is None:
            if len(self._services) >= self.config.max_services:
                self._evict_services()
            svc = _ServiceStats(
                first_time=timestamp, last_seen_tick=self._tick, error_time=timestamp
            )
            self._services[service] = svc
        svc.last_seen_tick = self._tick
        svc.first_time = min(svc.first_time, timestamp)
        return svc

    def _evict_templates(self, svc: _ServiceStats) -> None:
        """Drop the least frequent tenth in one go, so eviction is amortised O(1) per line."""
        keep = int(self.config.max_templates_per_service * 0.9)

        def current(item: tuple[str, _TemplateStats]) -> float:
            s = item[1]
            return s.frequency * self._line_decay ** (svc.lines - s.frequency_at)

        ranked = sorted(svc.templates.items(), key=current, reverse=True)
        svc.templates = dict(ranked[:keep])

    def _evict_services(self) -> None:
        keep = int(self.config.max_services * 0.9)
        ranked = sorted(self._services.items(), key=lambda kv: kv[1].last_seen_tick, reverse=True)
        self._services = dict(ranked[:keep])

    # --- serialisation ---------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        services: dict[str, Any] = {}
        for name, s in self._services.items():
            services[name] = {
                "first_time": s.first_time,
                "last_seen_tick": s.last_seen_tick,
                "lines": s.lines,
                "total": s.total,
                "error": [s.error_short, s.error_long, s.error_time],
                "templates": {tid: t.to_list() for tid, t in s.templates.items()},
            }
        return {
            "version": STATE_VERSION,
            "config": asdict(self.config),
            "tick": self._tick,
            "services": services,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LogAnomalyScorer:
        if data.get("version") != STATE_VERSION:
            raise ValueError(f"unsupported log scorer state version {data.get('version')!r}")
        scorer = cls(LogScorerConfig(**data["config"]))
        scorer._tick = int(data["tick"])
        for name, s in data["services"].items():
            error_short, error_long, error_time = s["error"]
            scorer._services[name] = _ServiceStats(
                first_time=float(s["first_time"]),
                last_seen_tick=int(s["last_seen_tick"]),
                lines=int(s["lines"]),
                total=float(s["total"]),
                error_short=float(error_short),
                error_long=float(error_long),
                error_time=float(error_time),
                templates={tid: _TemplateStats.from_list(v) for tid, v in s["templates"].items()},
            )
        return scorer
