"""Online anomaly scoring for one metric series, one point at a time.

Pure code: no I/O, no clock, no randomness. One `MetricDetector` per series; its whole
state is a small, bounded, JSON-safe dict (`to_dict` / `from_dict`) so it can live in a
Faust table and follow its partition.

Each point is judged by several sub-detectors. Every one turns its statistic into a tail
probability ("how likely is something at least this extreme under what I have seen so
far"), and the point's surprise is the strongest of them, -log10(p), mapped onto [0, 1]:

* ``spike``     the value is far from *every* baseline (previous value, same time of day);
                a point that one baseline explains is not a spike.
* ``shift``     the short-term mean of the residual against a baseline has moved away
                from its long-run distribution (level shifts, the daily cycle breaking).
* ``novelty``   the value leaves the range seen so far by a margin of that range and of
                the series' standard deviation; the farther out, the stronger.
* ``flatline``  the value has stopped changing for far longer than it ever did before.

Statistics are calibrated on the series' own history (NAB's "anomaly likelihood" idea:
judge a score by its own long-run distribution), so noisy series stay quiet. After an
alert the same kind of evidence must escalate to alert again, so one incident is
reported once and not on every point of it (`refractory_points`).

State is O(day_bins): about 150 floats whatever the length of the series.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

DAY_SECONDS = 86_400.0
MAX_SURPRISE = 12.0  # -log10(p) that maps to score 1.0
ALERT_SURPRISE = 3.0  # p <= 1e-3 counts as an alert for muting purposes


@dataclass(frozen=True)
class DetectorConfig:
    """Defaults chosen on principle (time scales, tail levels), not fitted to one series."""

    warmup_points: int = 150  # no scores until the statistics have seen this many points
    long_horizon: int = 5_000  # effective memory of the long-run statistics, in points
    short_span: int = 6  # span of the short-term residual mean used by `shift`
    day_bins: int = 96  # time-of-day profile resolution (15 minutes)
    profile_rate: float = 0.25  # weight of the newest day in the time-of-day profile
    novelty_margin: float = 0.05  # fraction of the seen range a value must exceed it by
    flatline_factor: float = 2.0  # a run must be this many times the longest seen run
    flatline_min_run: int = 12  # and at least this many points long
    refractory_points: int = 300  # after an alert, a sub-detector must escalate to re-alert


@dataclass(frozen=True)
class MetricScore:
    """The score of one point and why it got it."""

    score: float  # in [0, 1]; 0 is ordinary, 1 is p <= 1e-12
    detector: str  # sub-detector with the strongest evidence ("" during warm-up)
    baseline: float | None  # what that sub-detector expected the value to be
    deviation: float  # how far off, in that sub-detector's own units (z or run ratio)
    surprise: float  # strongest -log10(tail probability) of any sub-detector, muted or not


class Moments:
    """Exponentially weighted mean/variance; exact averages until `horizon` points."""

    __slots__ = ("horizon", "mean", "n", "var")

    def __init__(self, horizon: int, n: int = 0, mean: float = 0.0, var: float = 0.0) -> None:
        self.horizon = horizon
        self.n = n
        self.mean = mean
        self.var = var

    def update(self, x: float) -> None:
        self.n += 1
        rate = max(1.0 / self.n, 1.0 / self.horizon)
        delta = x - self.mean
        self.mean += rate * delta
        self.var = (1.0 - rate) * (self.var + rate * delta * delta)

    def z(self, x: float, floor: float) -> float:
        return (x - self.mean) / max(math.sqrt(self.var), floor)

    def to_list(self) -> list[float]:
        return [self.n, self.mean, self.var]

    @classmethod
    def from_list(cls, horizon: int, data: list[float]) -> Moments:
        return cls(horizon, int(data[0]), float(data[1]), float(data[2]))


class Tail:
    """Exponential tail above the running mean of a non-negative statistic.

    A peaks-over-threshold model with the mean as threshold: P(S > s) ~ frac * exp(-(s -
    mean) / excess). Fitted on the series' own history, so a statistic that is often large
    here (a noisy series, a regular jump) is not surprising.
    """

    __slots__ = ("above", "frac", "horizon", "mean", "n")

    def __init__(self, horizon: int, data: list[float] | None = None) -> None:
        self.horizon = horizon
        n, mean, above, frac = data or [0, 0.0, 0.0, 0.0]
        self.n, self.mean, self.above, self.frac = int(n), mean, above, frac

    def surprise(self, s: float) -> float:
        if s <= self.mean or self.frac <= 0.0:
            return 0.0
        excess = max(self.above / self.frac, 1e-12)
        return ((s - self.mean) / excess) / math.log(10.0) - math.log10(self.frac)

    def update(self, s: float) -> None:
        self.n += 1
        rate = max(1.0 / self.n, 1.0 / self.horizon)
        over = s - self.mean
        self.frac += rate * ((1.0 if over > 0.0 else 0.0) - self.frac)
        self.above += rate * (max(over, 0.0) - self.above)
        self.mean += rate * over

    def to_list(self) -> list[float]:
        return [self.n, self.mean, self.above, self.frac]


Evidence = tuple[float, str, float | None, float]  # surprise, sub-detector, baseline, deviation


class MetricDetector:
    """Per-series online detector: `update(timestamp, value)` once per point, in order."""

    def __init__(self, config: DetectorConfig | None = None) -> None:
        self.config = cfg = config or DetectorConfig()
        h = cfg.long_horizon
        self.n = 0
        self.last_value: float | None = None
        self.low = math.inf  # range of values seen so far
        self.high = -math.inf
        self.run = 0  # points the value has been unchanged for
        self.longest_run = 0  # longest finished run
        # mean absolute residual against each baseline: the residual scale
        self.step_scale = Moments(h)
        self.day_scale = Moments(h)
        self.level = Moments(h)  # long-run distribution of the value
        # short-term means (EWMA) and their long-run distributions
        self.level_short = 0.0
        self.level_stats = Moments(h)
        self.day_short = 0.0
        self.day_stats = Moments(h)
        self.profile: list[float | None] = [None] * cfg.day_bins
        # each statistic judged against its own history
        self.tails = {name: Tail(h) for name in ("spike", "shift", "seasonal_shift")}
        # post-alert mute per sub-detector: (surprise of the alert, points left)
        self.muted: dict[str, tuple[float, int]] = {}

    def update(self, timestamp: float, value: float) -> MetricScore:
        cfg = self.config
        value = float(value)
        day_bin = int((timestamp % DAY_SECONDS) / DAY_SECONDS * cfg.day_bins) % cfg.day_bins
        spread = self.high - self.low if self.n else 0.0
        floor = max(1e-9, 1e-6 * spread)  # keeps ratios finite on perfectly regular series
        day_baseline = self.profile[day_bin]
        step_res = None if self.last_value is None else value - self.last_value
        day_res = None if day_baseline is None else value - day_baseline
        rate = 2.0 / (cfg.short_span + 1.0)

        # statistics of this point: name -> (value >= 0, baseline, signed deviation)
        stats: dict[str, tuple[float, float | None, float]] = {}
        candidates: list[tuple[float, float | None]] = []
        settled = cfg.warmup_points // 3  # points a scale needs before it is trusted
        if step_res is not None and self.step_scale.n >= settled:
            candidates.append((step_res / max(self.step_scale.mean, floor), self.last_value))
        if day_res is not None and self.day_scale.n >= settled:
            candidates.append((day_res / max(self.day_scale.mean, floor), day_baseline))
        if candidates:  # a spike must be unexplained by every baseline
            ratio, base = min(candidates, key=lambda c: abs(c[0]))
            stats["spike"] = (abs(ratio), base, ratio)
        level_short = value if self.n == 0 else self.level_short + rate * (value - self.level_short)
        if self.level_stats.n >= settled:
            z = self.level_stats.z(level_short, floor)
            stats["shift"] = (abs(z), self.level.mean, z)
        day_short = self.day_short
        if day_res is not None:
            day_short += rate * (day_res - day_short)
            if self.day_stats.n >= settled:
                z = self.day_stats.z(day_short, floor)
                stats["seasonal_shift"] = (abs(z), day_baseline, z)

        evidence: list[Evidence] = []
        if self.n >= cfg.warmup_points:
            evidence = [
                (self.tails[name].surprise(stat), name, base, dev)
                for name, (stat, base, dev) in stats.items()
                if self.tails[name].n >= settled
            ]
            evidence += self._range_evidence(value, step_res, spread, floor)

        # learn from this point only after judging it
        for name, (stat, _, _) in stats.items():
            self.tails[name].update(stat)
        self.n += 1
        if step_res is not None:
            self.step_scale.update(abs(step_res))
        if day_res is not None:
            self.day_scale.update(abs(day_res))
            self.day_short = day_short
            self.day_stats.update(day_short)
        self.level.update(value)
        self.level_short = level_short
        self.level_stats.update(level_short)
        old = value if day_baseline is None else day_baseline
        self.profile[day_bin] = old + cfg.profile_rate * (value - old)
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
        heard = self._gate(evidence)
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
            found.append(
                (
                    MAX_SURPRISE * min(1.0, outside / (2.0 * sd)),
                    "novelty",
                    self.level.mean,
                    outside / sd,
                )
            )
        # flatline: unchanged for much longer than ever before, in a series that did move
        # (a constant series is not anomalous); reported once, when the run crosses the bar
        run = self.run + 1 if step_res == 0.0 else 0
        needed = math.ceil(max(cfg.flatline_min_run, cfg.flatline_factor * self.longest_run))
        if run == needed and self.n - run >= cfg.warmup_points:
            found.append((MAX_SURPRISE, "flatline", self.last_value, run / max(needed, 1.0)))
        return found

    def _gate(self, evidence: list[Evidence]) -> Evidence | None:
        """The strongest evidence that is heard, muting a sub-detector after it alerts.

        Within `refractory_points` of its last alert a sub-detector is heard only if its
        evidence escalates beyond that alert, so one incident is reported once.
        """
        heard: Evidence | None = None
        for item in evidence:
            surprise, name = item[0], item[1]
            bar, left = self.muted.get(name, (0.0, 0))
            if surprise > bar or left <= 0:
                if heard is None or surprise > heard[0]:
                    heard = item
                if surprise >= ALERT_SURPRISE:
                    self.muted[name] = (surprise, self.config.refractory_points + 1)
        for name, (bar, left) in list(self.muted.items()):
            if left <= 1:
                del self.muted[name]
            else:
                self.muted[name] = (bar, left - 1)
        return heard if heard is not None and heard[0] > 0.0 else None

    # ------------------------------------------------------------ serialisation
    def to_dict(self) -> dict[str, Any]:
        return {
            "n": self.n,
            "last_value": self.last_value,
            "low": None if math.isinf(self.low) else self.low,
            "high": None if math.isinf(self.high) else self.high,
            "run": self.run,
            "longest_run": self.longest_run,
            "moments": {
                name: getattr(self, name).to_list()
                for name in ("step_scale", "day_scale", "level", "level_stats", "day_stats")
            },
            "level_short": self.level_short,
            "day_short": self.day_short,
            "profile": list(self.profile),
            "tails": {name: tail.to_list() for name, tail in self.tails.items()},
            "muted": {name: [bar, left] for name, (bar, left) in self.muted.items()},
        }

    @classmethod
    def from_dict(
        cls, data: dict[str, Any], config: DetectorConfig | None = None
    ) -> MetricDetector:
        det = cls(config)
        h = det.config.long_horizon
        det.n = int(data["n"])
        det.last_value = None if data["last_value"] is None else float(data["last_value"])
        det.low = math.inf if data["low"] is None else float(data["low"])
        det.high = -math.inf if data["high"] is None else float(data["high"])
        det.run = int(data["run"])
        det.longest_run = int(data["longest_run"])
        for name, moments in data["moments"].items():
            setattr(det, name, Moments.from_list(h, moments))
        det.level_short = float(data["level_short"])
        det.day_short = float(data["day_short"])
        det.profile = [None if v is None else float(v) for v in data["profile"]]
        det.tails = {name: Tail(h, [float(x) for x in t]) for name, t in data["tails"].items()}
        det.muted = {str(k): (float(v[0]), int(v[1])) for k, v in data["muted"].items()}
        return det
