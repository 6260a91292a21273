"""The metric detector on synthetic series with known anomalies."""

from __future__ import annotations

import json
import math
import random

from workers.steps.score_metrics import MetricDetector, MetricScore
from workers.steps.score_metrics_stats import LevelDensity, Seasonal, ShapeMemory

STEP = 300.0  # five-minute points, NAB's usual cadence


def feed(values: list[float], detector: MetricDetector | None = None) -> list[MetricScore]:
    detector = detector or MetricDetector()
    return [detector.update(i * STEP, value) for i, value in enumerate(values)]


def noise(n: int, seed: int = 7) -> list[float]:
    rng = random.Random(seed)
    return [50.0 + rng.gauss(0.0, 1.0) for _ in range(n)]


def test_scores_are_in_unit_interval_and_quiet_during_warmup() -> None:
    scores = feed(noise(1000))
    assert all(0.0 <= s.score <= 1.0 for s in scores)
    assert all(s.score == 0.0 for s in scores[:150])


def test_gaussian_noise_stays_quiet() -> None:
    scores = feed(noise(3000))
    loud = [s for s in scores if s.score >= 0.5]
    assert len(loud) <= 3  # the odd new extreme at most, never a stream of alerts


def test_spike_is_detected_and_explained() -> None:
    values = noise(1200)
    values[1000] += 15.0
    scores = feed(values)
    spike = scores[1000]
    assert spike.score >= 0.5
    assert spike.score > max(s.score for s in scores[900:1000])
    # a spike is far from every baseline and its lagged window unlike any stored one
    assert spike.detector in {"spike", "novelty", "shape"}
    assert spike.baseline is not None and abs(spike.baseline - 50.0) < 5.0


def test_level_shift_is_detected_soon_after_it_starts() -> None:
    values = noise(1500)
    values[1200:] = [v + 6.0 for v in values[1200:]]
    scores = feed(values)
    before = max(s.score for s in scores[1000:1200])
    after = max(s.score for s in scores[1200:1220])
    assert after >= 0.5 and after > before


def test_flatline_is_detected() -> None:
    values = noise(1500)
    values[1200:1300] = [values[1199]] * 100
    scores = feed(values)
    fired = [i for i in range(1200, 1300) if scores[i].detector == "flatline"]
    assert fired and fired[0] < 1230
    assert scores[fired[0]].score == 1.0


def test_daily_cycle_is_not_an_anomaly_but_a_missed_peak_is() -> None:
    rng = random.Random(3)
    day = int(86_400 / STEP)
    values = [
        (80.0 if (i % day) < day // 3 else 20.0) + rng.gauss(0.0, 1.0) for i in range(day * 9)
    ]
    quiet = feed(values[: day * 8])
    assert max(s.score for s in quiet[day * 3 :]) < 0.5
    missed = list(values)
    start = day * 8
    missed[start : start + day // 3] = [20.0 + rng.gauss(0.0, 1.0) for _ in range(day // 3)]
    scores = feed(missed)
    assert max(s.score for s in scores[start : start + day // 3]) >= 0.5


def test_state_round_trip_gives_identical_scores() -> None:
    values = noise(2000)
    values[1500] += 20.0
    values[1700:1750] = [values[1699]] * 50
    reference = feed(values)
    detector = MetricDetector()
    feed(values[:1000], detector)
    state = json.loads(json.dumps(detector.to_dict()))  # must survive JSON unchanged
    restored = MetricDetector.from_dict(state)
    resumed = [restored.update(i * STEP, values[i]) for i in range(1000, 2000)]
    assert resumed == reference[1000:]


def test_state_is_small_and_bounded() -> None:
    detector = MetricDetector()
    feed(noise(2_500), detector)  # a week and a bit: every profile bin has been visited
    small = len(json.dumps(detector.to_dict()))
    feed(noise(20_000, seed=9), detector)
    large = len(json.dumps(detector.to_dict()))
    # two seasonal profiles, a capped level histogram and a fixed reservoir of windows:
    # full after a few hundred points, then no growth whatever the length
    assert large < 30_000 and large <= small + 500


def test_explanation_fields_are_finite() -> None:
    values = noise(1200)
    values[1100] -= 30.0
    for s in feed(values):
        assert math.isfinite(s.deviation) and math.isfinite(s.surprise)


def test_level_density_finds_rare_levels_and_adapts_its_grid() -> None:
    density = LevelDensity(horizon=5_000, max_bins=8)
    density.start(0.1)
    rng = random.Random(5)
    for _ in range(2_000):  # two usual modes, 0 and 10, nothing in between
        density.update(rng.choice((0.0, 10.0)) + rng.gauss(0.0, 0.5))
    assert len(density.counts) <= 8 and density.width > 0.1  # merged to fit the range
    assert density.surprise(0.0) < 1.0 and density.surprise(10.0) < 1.0
    assert density.surprise(5.0) > 2.5  # between the modes: rare although not extreme
    restored = LevelDensity(5_000, 8, json.loads(json.dumps(density.to_list())))
    assert restored.surprise(5.0) == density.surprise(5.0)


def test_shape_memory_knows_repeated_patterns_and_not_new_ones() -> None:
    memory = ShapeMemory(dim=4, size=16)
    pattern = [0.0, 1.0, 0.0, -1.0]
    for i in range(400):
        memory.update(pattern[i % 4])
    assert len(memory.reservoir) == 16  # bounded
    seen = memory.distance(pattern[400 % 4])
    assert seen is not None and seen < 1e-9
    novel = memory.distance(5.0)
    assert novel is not None and novel > 3.0
    assert memory.neighbour_value(pattern[400 % 4]) == pattern[400 % 4]


def test_weekly_profile_learns_the_day_of_week() -> None:
    week = Seasonal(7 * 86_400.0, bins=7, rate=0.5, horizon=1_000)
    for day in range(21):  # weekends are busy
        value = 10.0 if day % 7 >= 5 else 1.0
        week.learn(week.phase(day * 86_400.0), value, None, 0.0)
    assert week.profile[week.phase(5 * 86_400.0)] == 10.0
    assert week.profile[week.phase(1 * 86_400.0)] == 1.0


def test_a_quiet_weekday_is_found_when_the_daily_cycle_hides_it() -> None:
    rng = random.Random(11)
    day = int(86_400 / STEP)

    def busy(i: int) -> float:  # a daily peak, higher on weekdays than at weekends
        hour = (i % day) * 24 / day
        peak = 40.0 if (i // day) % 7 < 5 else 20.0
        return (peak if 8 <= hour < 20 else 5.0) + rng.gauss(0.0, 1.0)

    values = [busy(i) for i in range(day * 35)]
    holiday = day * 31  # a weekday that looks like a weekend
    values[holiday : holiday + day] = [
        (20.0 if 8 <= (i % day) * 24 / day < 20 else 5.0) + rng.gauss(0.0, 1.0)
        for i in range(day)
    ]
    scores = feed(values)
    assert max(s.score for s in scores[day * 21 : holiday]) < 0.5
    assert max(s.score for s in scores[holiday : holiday + day]) >= 0.25

