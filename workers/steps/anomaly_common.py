"""Shared pieces of the streaming anomaly scorers: reasons, evidence fusion, decayed counts.

Pure code: no I/O, no clocks; every time value is passed in by the caller.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

LN2 = math.log(2.0)


@dataclass(frozen=True, slots=True)
class Reason:
    """One piece of evidence behind a score: what it is, how strong (0..1), and by how much."""

    kind: str
    strength: float
    detail: str

    def __str__(self) -> str:
        return f"{self.kind} ({self.strength:.2f}): {self.detail}"


def clamp01(value: float) -> float:
    return 0.0 if value <= 0.0 else 1.0 if value >= 1.0 else value


def noisy_or(weighted_strengths: list[tuple[float, float]]) -> float:
    """Fuse independent evidence: 1 - prod(1 - weight * strength).

    Why noisy-OR: any single strong reason is enough to alert, several weak reasons add up,
    and the result stays in [0, 1] without a trained combiner.
    """
    keep = 1.0
    for weight, strength in weighted_strengths:
        keep *= 1.0 - clamp01(weight * strength)
    return clamp01(1.0 - keep)


def decay(value: float, elapsed: float, half_life: float) -> float:
    """Exponential decay of a count after `elapsed` (same unit as `half_life`)."""
    if elapsed <= 0.0:
        return value
    return value * math.pow(2.0, -elapsed / half_life)


def decayed_window(elapsed: float, half_life: float) -> float:
    """Effective length of an exponential window that has only been open for `elapsed`.

    A counter that adds 1 per event and halves every `half_life` holds rate * this value,
    so dividing by it turns a decayed count into a rate even before the window is full.
    """
    full = half_life / LN2
    if elapsed <= 0.0:
        return 0.0
    return full * (1.0 - math.pow(2.0, -elapsed / half_life))


def poisson_excess_nats(observed: float, expected: float) -> float:
    """Chernoff bound on -ln P(X >= observed) for X ~ Poisson(expected); 0 when not above.

    A scale-free 'how surprising is this many' that needs no lookup table.
    """
    if observed <= expected or observed <= 0.0:
        return 0.0
    expected = max(expected, 1e-9)
    return observed * math.log(observed / expected) - observed + expected


def saturate(value: float, scale: float) -> float:
    """Map a non-negative magnitude onto [0, 1): 1 - exp(-value / scale)."""
    if value <= 0.0:
        return 0.0
    return 1.0 - math.exp(-value / scale)


@dataclass(frozen=True, slots=True)
class AnomalyScore:
    """A detector's verdict on one item: a score in [0, 1] and the reasons behind it."""

    score: float
    reasons: tuple[Reason, ...]

    @property
    def explanation(self) -> str:
        reasons = self.reasons
        if not reasons:
            return "nothing unusual"
        if len(reasons) == 1:  # the common case: no sorting, no join
            return str(reasons[0])
        return "; ".join([str(r) for r in sorted(reasons, key=_by_strength_descending)])


def _by_strength_descending(reason: Reason) -> float:
    return -reason.strength
