"""Bounded online statistics used by `score_metrics`: moments, tails and level densities.

Pure code, no I/O. Every class serialises to a short JSON-safe list and back, and its size
does not grow with the length of the series.
"""

from __future__ import annotations

import math
from itertools import repeat

LOG10 = math.log(10.0)


class Moments:
    """Exponentially weighted mean/variance; exact averages until `horizon` points."""

    __slots__ = ("horizon", "mean", "n", "var")

    def __init__(self, horizon: int, n: int = 0, mean: float = 0.0, var: float = 0.0) -> None:
        self.horizon = horizon
        self.n = n
        self.mean = mean
        self.var = var

    def update(self, x: float) -> None:
        self.n = n = self.n + 1
        rate = 1.0 / (n if n < self.horizon else self.horizon)
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
        return ((s - self.mean) / excess) / LOG10 - math.log10(self.frac)

    def update(self, s: float) -> None:
        self.n = n = self.n + 1
        rate = 1.0 / (n if n < self.horizon else self.horizon)
        over = s - self.mean
        if over > 0.0:
            self.frac += rate * (1.0 - self.frac)
            self.above += rate * (over - self.above)
        else:
            self.frac -= rate * self.frac
            self.above -= rate * self.above
        self.mean += rate * over

    def to_list(self) -> list[float]:
        return [self.n, self.mean, self.above, self.frac]


class LevelDensity:
    """How rarely a (smoothed) level has been visited: a decayed histogram of past levels.

    Bins are `width` wide, keyed by index so they follow the series wherever it goes; the
    width starts as a fraction of the level's early spread and doubles (merging pairs of
    bins) whenever more than `max_bins` are in use, so the grid adapts to the range. `surprise(x)` is -log10 of the
    share of history spent within one bin of x, with one pseudo-visit so a never-seen level
    is rare but not infinitely so. This catches sustained excursions to levels that are
    rare *for this series*, also between two usual modes, where a Gaussian z cannot.
    """

    __slots__ = ("counts", "gain", "horizon", "max_bins", "total", "width")

    def __init__(self, horizon: int, max_bins: int, data: list[float] | None = None) -> None:
        self.horizon = horizon
        self.max_bins = max_bins
        self.width = 0.0
        self.gain = 1.0  # weight of the next visit; grows instead of decaying every bin
        self.total = 0.0
        self.counts: dict[int, float] = {}
        if data:
            self.width, self.gain, self.total = data[0], data[1], data[2]
            flat = data[3:]
            self.counts = {int(flat[i]): flat[i + 1] for i in range(0, len(flat), 2)}

    @property
    def started(self) -> bool:
        return self.width > 0.0

    def start(self, width: float) -> None:
        self.width = width

    def surprise(self, x: float) -> float:
        if not self.started or self.total <= 0.0:
            return 0.0
        k = math.floor(x / self.width)
        get = self.counts.get
        mass = get(k - 1, 0.0) + get(k, 0.0) + get(k + 1, 0.0)
        return -math.log10((mass + self.gain) / (self.total + self.gain))

    def update(self, x: float) -> None:
        if not self.started:
            return
        k = math.floor(x / self.width)
        self.counts[k] = self.counts.get(k, 0.0) + self.gain
        self.total += self.gain
        while len(self.counts) > self.max_bins:  # too fine for the range: merge pairs
            self.width *= 2.0
            merged: dict[int, float] = {}
            for j, c in self.counts.items():
                merged[j // 2] = merged.get(j // 2, 0.0) + c
            self.counts = merged
        if self.total >= self.horizon * self.gain:  # past the horizon: older visits fade
            self.gain /= 1.0 - 1.0 / self.horizon
            if self.gain > 1e6:
                self.counts = {k: c / self.gain for k, c in self.counts.items()}
                self.total /= self.gain
                self.gain = 1.0

    def to_list(self) -> list[float]:
        flat: list[float] = [self.width, self.gain, self.total]
        for k, c in sorted(self.counts.items()):
            flat += [k, c]
        return flat


class Seasonal:
    """A seasonal profile (time of day, day of week) and the residual against it.

    `profile[bin]` is an exponentially weighted average of the values seen in that phase
    of the period; the residual's scale and its short-term mean are tracked so that a
    single odd point (`spike`) and a sustained departure from the usual shape (`shift`)
    can both be judged.
    """

    __slots__ = ("bins", "period", "profile", "rate", "scale", "short", "stats")

    def __init__(self, period: float, bins: int, rate: float, horizon: int) -> None:
        self.period = period
        self.bins = bins
        self.rate = rate
        self.profile: list[float | None] = [None] * bins
        self.scale = Moments(horizon)  # mean absolute residual
        self.short = 0.0  # short-term mean of the residual
        self.stats = Moments(horizon)  # long-run distribution of `short`

    def phase(self, timestamp: float) -> int:
        return int((timestamp % self.period) / self.period * self.bins) % self.bins

    def learn(self, phase: int, value: float, residual: float | None, short: float) -> None:
        if residual is not None:
            self.scale.update(abs(residual))
            self.short = short
            self.stats.update(short)
        old = self.profile[phase]
        self.profile[phase] = value if old is None else old + self.rate * (value - old)

    def to_list(self) -> list[object]:
        return [self.scale.to_list(), self.short, self.stats.to_list(), list(self.profile)]

    def load(self, data: list[object], horizon: int) -> None:
        scale, short, stats, profile = data
        assert isinstance(scale, list) and isinstance(stats, list) and isinstance(profile, list)
        self.scale = Moments.from_list(horizon, scale)
        self.short = float(short)  # type: ignore[arg-type]
        self.stats = Moments.from_list(horizon, stats)
        self.profile = [None if v is None else float(v) for v in profile]


GOLDEN = 0.6180339887498949


class ShapeMemory:
    """Nearest-neighbour distance of the latest `dim` values to a reservoir of past ones.

    A bounded, deterministic reservoir sample (`size` windows) of the lagged windows seen so
    far; the current window's distance to its nearest stored neighbour says how unlike
    anything seen before its *shape and level* are (KNN-CAD's idea, without the training
    split). Windows enter the reservoir `dim` points late so the current one is never
    compared with itself or its overlapping neighbours. Acceptance uses a low-discrepancy
    sequence instead of a random generator, so replays give identical scores.
    """

    __slots__ = ("dim", "recent", "reservoir", "seen", "size")

    def __init__(self, dim: int, size: int, data: list[list[float]] | None = None) -> None:
        self.dim = dim
        self.size = size
        self.seen = 0  # windows offered to the reservoir so far
        self.recent: list[float] = []  # last 2 * dim values
        self.reservoir: list[tuple[float, ...]] = []
        if data:
            self.seen = int(data[0][0])
            self.recent = list(data[1])
            self.reservoir = [tuple(w) for w in data[2:]]

    def _window(self, value: float) -> tuple[float, ...] | None:
        if len(self.recent) < self.dim - 1 or not self.reservoir:
            return None
        return (*self.recent[len(self.recent) - self.dim + 1 :], value)

    def distance(self, value: float) -> float | None:
        """Distance from the window ending with `value` to its nearest stored neighbour;
        None until there is history."""
        window = self._window(value)
        if window is None:
            return None
        return min(map(math.dist, self.reservoir, repeat(window)))

    def neighbour_value(self, value: float) -> float | None:
        """What the nearest stored window ended with: the value its pattern predicts."""
        window = self._window(value)
        if window is None:
            return None
        return min(self.reservoir, key=lambda w: math.dist(w, window))[-1]

    def update(self, value: float) -> None:
        self.recent.append(value)
        if len(self.recent) > 2 * self.dim:
            del self.recent[0]
        if len(self.recent) < 2 * self.dim:
            return
        old = tuple(self.recent[: self.dim])  # the window that ended `dim` points ago
        self.seen += 1
        if len(self.reservoir) < self.size:
            self.reservoir.append(old)
            return
        u = (self.seen * GOLDEN) % 1.0  # deterministic stand-in for a uniform draw
        if u * self.seen < self.size:
            self.reservoir[int(u * self.seen)] = old

    def to_list(self) -> list[list[float]]:
        return [[float(self.seen)], list(self.recent), *[list(w) for w in self.reservoir]]
