"""The metric detector on synthetic series with known anomalies."""

from __future__ import annotations

import json
import math
import random

from workers.steps.score_metrics import MetricDetector, MetricScore

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
    assert spike.detector in {"spike", "novelty"}
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
    feed(noise(500), detector)
    small = len(json.dumps(detector.to_dict()))
    feed(noise(20_000, seed=9), detector)
    large = len(json.dumps(detector.to_dict()))
    assert large < 8_000 and large <= small + 200


def test_explanation_fields_are_finite() -> None:
    values = noise(1200)
    values[1100] -= 30.0
    for s in feed(values):
        assert math.isfinite(s.deviation) and math.isfinite(s.surprise)
