"""Online anomaly scoring for one metric series, one point at a time.

Pure code: no I/O, no clock, no randomness. One `MetricDetector` per series; its whole
state is a bounded, JSON-safe dict (`to_dict` / `from_dict`) so it can live in a Faust
table and follow its partition.

Each point is judged by several sub-detectors. Every one turns its statistic into a tail
probability ("how likely is something at least this extreme under what I have seen so
far"), and the point's surprise is the strongest of them, -log10(p), mapped onto [0, 1]:

* ``spike``       the value is far from *every* baseline (previous value, same time of day,
                  same time of week); a point that one baseline explains is not a spike.
* ``shift``       the short-term mean of the value has moved away from its long-run
                  distribution.
* ``day_shift`` / ``week_shift``
                  the short-term mean of the residual against the time-of-day (or
                  day-of-week) profile has moved away from its long-run distribution: the
                  usual daily or weekly shape is broken (a holiday, a stuck process).
* ``rare_level``  the short-term mean sits at a level this series has rarely visited
                  (a density check, so also between two usual modes).
* ``novelty``     the value leaves the range seen so far by a margin of that range and of
                  the series' standard deviation; the farther out, the stronger.
* ``flatline``    the value has stopped changing for far longer than it ever did before.

Statistics are calibrated on the series' own history (NAB's "anomaly likelihood" idea:
judge a score by its own long-run distribution), so noisy series stay quiet. After an
alert, evidence must escalate to alert again for `refractory_points`, so one incident is
reported once, early, and not on every point of it.

State is bounded: two seasonal profiles, a capped level histogram and a few moments.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from workers.steps.score_metrics_stats import LevelDensity, Moments, Seasonal, ShapeMemory, Tail

DAY_SECONDS = 86_400.0
WEEK_SECONDS = 7 * DAY_SECONDS
MAX_SURPRISE = 12.0  # -log10(p) that maps to score 1.0
ALERT_SURPRISE = 3.0  # p <= 1e-3 counts as an alert for muting purposes
STATE_VERSION = 2
TAILED = ("spike", "shift", "day_shift", "week_shift", "rare_level", "shape")


@dataclass(frozen=True)
class DetectorConfig:
    """Defaults chosen on principle (time scales, tail levels), not fitted to one series."""

    warmup_points: int = 150  # no scores until the statistics have seen this many points
    long_horizon: int = 5_000  # effective memory of the long-run statistics, in points
    short_span: int = 6  # span of the short-term means used by the shift detectors
    day_bins: int = 96  # time-of-day profile resolution (15 minutes)
    week_bins: int = 336  # day-of-week profile resolution (30 minutes)
    profile_rate: float = 0.25  # weight of the newest period in a seasonal profile
    level_bins: int = 32  # most histogram bins `rare_level` keeps
    level_resolution: float = 0.25  # level histogram bin width, in level standard deviations
    novelty_margin: float = 0.05  # fraction of the seen range a value must exceed it by
    flatline_factor: float = 2.0  # a run must be this many times the longest seen run
    flatline_min_run: int = 12  # and at least this many points long
    shape_dim: int = 8  # points per lagged window compared by `shape`
    shape_memory: int = 64  # lagged windows kept for the nearest-neighbour search
    refractory_points: int = 300  # after an alert, evidence must escalate to re-alert


@dataclass(frozen=True)
class MetricScore:
    """The score of one point and why it got it."""

    score: float  # in [0, 1]; 0 is ordinary, 1 is p <= 1e-12
    detector: str  # sub-detector with the strongest evidence ("" during warm-up)
    baseline: float | None  # what that sub-detector expected the value to be
    deviation: float  # how far off, in that sub-detector's own units (z or run ratio)
    surprise: float  # strongest -log10(tail probability) of any sub-detector, muted or not


Evidence = tuple[float, str, float | None, float]  # surprise, sub-detector, baseline, deviation


class MetricDetector:
    """Per-series online detector: `update(timestamp, value)` once per point, in order."""

    def __init__(self, config: DetectorConfig | None = None) -> None:
        self.config = cfg = config or DetectorConfig()
        h = cfg.long_horizon
        self.n = 0
        self.first_time: float | None = None
        self.last_value: float | None = None
        self.low = math.inf  # range of values seen so far
        self.high = -math.inf
        self.run = 0  # points the value has been unchanged for
        self.longest_run = 0  # longest finished run
        self.step_scale = Moments(h)  # mean absolute step: the step residual scale
        self.level = Moments(h)  # long-run distribution of the value
        self.level_short = 0.0  # short-term mean of the value
        self.level_stats = Moments(h)  # and its long-run distribution
        self.density = LevelDensity(h, cfg.level_bins)
        self.day = Seasonal(DAY_SECONDS, cfg.day_bins, cfg.profile_rate, h)
        self.week = Seasonal(WEEK_SECONDS, cfg.week_bins, cfg.profile_rate, h)
        self.shape = ShapeMemory(cfg.shape_dim, cfg.shape_memory)
        self.tails = {name: Tail(h) for name in TAILED}  # each statistic vs its history
        self.muted = (0.0, 0)  # after an alert: (surprise to beat, points left)

    def update(self, timestamp: float, value: float) -> MetricScore:
        cfg = self.config
        value = float(value)
        if self.first_time is None:
            self.first_time = timestamp
        spread = self.high - self.low if self.n else 0.0
        floor = max(1e-9, 1e-6 * spread)  # keeps ratios finite on perfectly regular series
        step_res = None if self.last_value is None else value - self.last_value
        rate = 2.0 / (cfg.short_span + 1.0)
        settled = cfg.warmup_points // 3  # points a statistic needs before it is trusted

        # statistics of this point: name -> (value >= 0, baseline, signed deviation)
        stats: dict[str, tuple[float, float | None, float]] = {}
        candidates: list[tuple[float, float | None]] = []
        if step_res is not None and self.step_scale.n >= settled:
            candidates.append((step_res / max(self.step_scale.mean, floor), self.last_value))
        seasonal: list[tuple[Seasonal, int, float | None, float]] = []
        elapsed = timestamp - self.first_time
        for name, season in (("day_shift", self.day), ("week_shift", self.week)):
            phase = season.phase(timestamp)
            base = season.profile[phase] if elapsed >= season.period else None
            res = None if base is None else value - base
            short = season.short if res is None else season.short + rate * (res - season.short)
            seasonal.append((season, phase, res, short))
            if res is None or season.scale.n < settled:
                continue
            candidates.append((res / max(season.scale.mean, floor), base))
            z = season.stats.z(short, floor)
            stats[name] = (abs(z), base, z)
        if candidates:  # a spike must be unexplained by every baseline
            ratio, base = min(candidates, key=lambda c: abs(c[0]))
            stats["spike"] = (abs(ratio), base, ratio)
        level_short = value if self.n == 0 else self.level_short + rate * (value - self.level_short)
        if self.level_stats.n >= settled:
            z = self.level_stats.z(level_short, floor)
            stats["shift"] = (abs(z), self.level.mean, z)
            if not self.density.started:
                sd = math.sqrt(self.level_stats.var)
                self.density.start(max(cfg.level_resolution * sd, floor))
            rarity = self.density.surprise(level_short)
            stats["rare_level"] = (rarity, self.level.mean, z)
        distance = self.shape.distance(value)
        if distance is not None and self.step_scale.n >= settled:
            ratio = distance / max(self.step_scale.mean, floor)
            stats["shape"] = (ratio, None, ratio)

        evidence: list[Evidence] = []
        if self.n >= cfg.warmup_points:
            for name, (stat, base, dev) in stats.items():
                if self.tails[name].n < settled:
                    continue
                surprise = self.tails[name].surprise(stat)
                if name == "shape" and surprise >= 1.0:  # only looked up when it may matter
                    base = self.shape.neighbour_value(value)
                evidence.append((surprise, name, base, dev))
            evidence += self._range_evidence(value, step_res, spread, floor)

        # learn from this point only after judging it
        for name, (stat, _, _) in stats.items():
            self.tails[name].update(stat)
        self.n += 1
        if step_res is not None:
            self.step_scale.update(abs(step_res))
        for season, phase, res, short in seasonal:
            season.learn(phase, value, res, short)
        self.level.update(value)
        self.level_short = level_short
        self.level_stats.update(level_short)
        self.density.update(level_short)
        self.shape.update(value)
        if step_res == 0.0:
            self.run += 1
        else:  # a run ends: only finished runs set the bar, so an ongoing one can exceed it
            self.longest_run = max(self.longest_run, self.run)
            self.run = 0
        self.low, self.high = min(self.low, value), max(self.high, value)
        self.last_value = value

        if not evidence:
            return MetricScore(0.0, "", None, 0.0, 0.0)
        strongest = max(evidence, key=lambda e: e[0])
        heard = self._gate(strongest)
        surprise, name, baseline, deviation = heard or strongest
        score = min(1.0, surprise / MAX_SURPRISE) if heard else 0.0
        return MetricScore(score, name, baseline, deviation, strongest[0])

    def _range_evidence(
        self, value: float, step_res: float | None, spread: float, floor: float
    ) -> list[Evidence]:
        cfg = self.config
        found: list[Evidence] = []
        # novelty: beyond the range seen so far by a margin of that range and of the
        # series' spread (so the rare new extreme of plain noise does not count); the
        # farther beyond, the stronger
        sd = max(math.sqrt(self.level.var), floor)
        outside = max(value - self.high, self.low - value, 0.0)
        if outside > cfg.novelty_margin * max(spread, floor) and outside > sd:
            strength = MAX_SURPRISE * min(1.0, outside / (2.0 * sd))
            found.append((strength, "novelty", self.level.mean, outside / sd))
        # flatline: unchanged for much longer than ever before, in a series that did move
        # (a constant series is not anomalous); reported once, when the run crosses the bar
        run = self.run + 1 if step_res == 0.0 else 0
        needed = math.ceil(max(cfg.flatline_min_run, cfg.flatline_factor * self.longest_run))
        if run == needed and self.n - run >= cfg.warmup_points:
            found.append((MAX_SURPRISE, "flatline", self.last_value, run / max(needed, 1.0)))
        return found

    def _gate(self, strongest: Evidence) -> Evidence | None:
        """The evidence if it is heard: within `refractory_points` of an alert, only
        evidence escalating beyond that alert is, so one incident is reported once."""
        bar, left = self.muted
        surprise = strongest[0]
        heard = surprise > 0.0 and (surprise > 2.0 * bar or left <= 0)
        if heard and surprise >= ALERT_SURPRISE:
            bar, left = surprise, self.config.refractory_points + 1
        self.muted = (bar, left - 1) if left > 1 else (0.0, 0)
        return strongest if heard else None

    # ------------------------------------------------------------ serialisation
    def to_dict(self) -> dict[str, Any]:
        return {
            "version": STATE_VERSION,
            "n": self.n,
            "first_time": self.first_time,
            "last_value": self.last_value,
            "low": None if math.isinf(self.low) else self.low,
            "high": None if math.isinf(self.high) else self.high,
            "run": self.run,
            "longest_run": self.longest_run,
            "moments": {
                name: getattr(self, name).to_list()
                for name in ("step_scale", "level", "level_stats")
            },
            "level_short": self.level_short,
            "density": self.density.to_list(),
            "day": self.day.to_list(),
            "week": self.week.to_list(),
            "shape": self.shape.to_list(),
            "tails": {name: tail.to_list() for name, tail in self.tails.items()},
            "muted": list(self.muted),
        }

    @classmethod
    def from_dict(
        cls, data: dict[str, Any], config: DetectorConfig | None = None
    ) -> MetricDetector:
        """Restore a detector; state from an older layout starts a fresh one."""
        det = cls(config)
        if data.get("version") != STATE_VERSION:
            return det
        h = det.config.long_horizon
        det.n = int(data["n"])
        det.first_time = None if data["first_time"] is None else float(data["first_time"])
        det.last_value = None if data["last_value"] is None else float(data["last_value"])
        det.low = math.inf if data["low"] is None else float(data["low"])
        det.high = -math.inf if data["high"] is None else float(data["high"])
        det.run = int(data["run"])
        det.longest_run = int(data["longest_run"])
        for name, moments in data["moments"].items():
            setattr(det, name, Moments.from_list(h, moments))
        det.level_short = float(data["level_short"])
        det.density = LevelDensity(h, det.config.level_bins, list(data["density"]))
        det.day.load(data["day"], h)
        det.week.load(data["week"], h)
        det.shape = ShapeMemory(det.config.shape_dim, det.config.shape_memory, data["shape"])
        det.tails = {name: Tail(h, [float(x) for x in t]) for name, t in data["tails"].items()}
        det.muted = (float(data["muted"][0]), int(data["muted"][1]))
        return det
