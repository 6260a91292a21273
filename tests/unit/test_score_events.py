"""UserEventScorer on synthetic plain values: bots, timing, sequences, volume, state."""

from __future__ import annotations

import json
import random

from workers.steps.score_events import (
    BOT_RATE,
    FORBIDDEN_SEQUENCE,
    REGULAR_TIMING,
    UNSEEN_TRANSITION,
    VOLUME,
    EventScore,
    EventScorerConfig,
    UserEventScorer,
    robust_z,
)

HOUR = 3600.0
DAY = 86400.0


def kinds(score: EventScore) -> set[str]:
    return {r.kind for r in score.reasons}


def human_session(
    scorer: UserEventScorer, user: str, t: float, rng: random.Random
) -> tuple[list[EventScore], float]:
    results = [scorer.update(user, "login", t)]
    for _ in range(rng.randrange(2, 6)):
        t += rng.expovariate(1 / 20.0)
        results.append(scorer.update(user, "view", t))
    t += rng.expovariate(1 / 20.0)
    results.append(scorer.update(user, "logout", t))
    return results, t


def test_people_browsing_raise_nothing() -> None:
    scorer = UserEventScorer()
    rng = random.Random(1)
    t = 0.0
    for i in range(300):
        results, t = human_session(scorer, f"u{i % 40}", t + rng.expovariate(1 / 30.0), rng)
        for result in results:
            assert result.score == 0.0, result.explanation


def test_sustained_bot_rate_is_flagged_and_a_short_flurry_is_not() -> None:
    scorer = UserEventScorer()
    flurry = [scorer.update("person", "view", 100.0 + i * 0.2) for i in range(5)]
    assert all(BOT_RATE not in kinds(r) for r in flurry)
    bot = [scorer.update("bot", "view", 100.0 + i * 0.05) for i in range(60)]
    assert BOT_RATE in kinds(bot[-1])
    assert bot[-1].score > 0.8
    assert "events/s" in bot[-1].explanation


def test_too_regular_timing_is_flagged_and_jitter_is_not() -> None:
    scorer = UserEventScorer()
    regular = [scorer.update("cron", "view", i * 30.0) for i in range(20)]
    assert REGULAR_TIMING in kinds(regular[-1])
    rng = random.Random(5)
    t, jittered = 0.0, []
    for _ in range(40):
        t += rng.expovariate(1 / 30.0)
        jittered.append(scorer.update("person", "view", t))
    assert all(REGULAR_TIMING not in kinds(r) for r in jittered)


def test_hard_rules_logout_before_login_and_purchase_without_session() -> None:
    config = EventScorerConfig(
        requires_session=("logout", "purchase"),
        forbidden_transitions=(("signup", "refund"),),
    )
    scorer = UserEventScorer(config)
    assert FORBIDDEN_SEQUENCE in kinds(scorer.update("a", "logout", 0.0))
    assert FORBIDDEN_SEQUENCE in kinds(scorer.update("b", "purchase", 0.0))
    assert scorer.update("c", "login", 0.0).score == 0.0
    assert scorer.update("c", "purchase", 5.0).score == 0.0
    assert scorer.update("c", "logout", 9.0).score == 0.0
    assert FORBIDDEN_SEQUENCE in kinds(scorer.update("c", "purchase", 20.0))  # after logout
    scorer.update("d", "signup", 0.0)
    refund = scorer.update("d", "refund", 3.0)
    assert FORBIDDEN_SEQUENCE in kinds(refund)
    assert "signup -> refund" in refund.explanation


def test_transition_never_seen_after_warm_up_is_flagged() -> None:
    config = EventScorerConfig(transition_warmup=200)
    scorer = UserEventScorer(config)
    rng = random.Random(2)
    t = 0.0
    for i in range(100):
        _, t = human_session(scorer, f"u{i}", t + 60.0, rng)
    scorer.update("odd", "login", t + 60.0)
    odd = scorer.update("odd", "export_all", t + 70.0)
    assert UNSEEN_TRANSITION in kinds(odd)
    assert "login -> export_all never seen" in odd.explanation
    usual = scorer.update("odd2", "login", t + 80.0)
    assert scorer.update("odd2", "view", t + 95.0).score == 0.0
    assert usual.score == 0.0


def feed_daily_pattern(scorer: UserEventScorer, days: int, rng: random.Random) -> float:
    """`signup` events: ~100 an hour by day (08-20h), ~10 an hour at night."""
    t = 0.0
    for day in range(days):
        for hour in range(24):
            expected = 100 if 8 <= hour < 20 else 10
            n = max(0, round(rng.gauss(expected, expected**0.5)))
            start = day * DAY + hour * HOUR
            for k in range(n):
                scorer.update(f"u{k}", "signup", start + (k + 0.5) * HOUR / n)
            t = start + HOUR
    return t


def test_volume_spike_at_night_is_flagged_though_normal_by_day() -> None:
    scorer = UserEventScorer()
    rng = random.Random(4)
    t = feed_daily_pattern(scorer, 14, rng)  # t = midnight of day 14
    night = t + 3 * HOUR  # 03:00, baseline ~10
    results = [scorer.update(f"n{k}", "signup", night + k * 20.0) for k in range(100)]
    assert VOLUME not in kinds(results[5])
    assert VOLUME in kinds(results[-1])
    assert "time of day" in results[-1].explanation


def test_volume_drop_is_flagged_when_the_bucket_closes() -> None:
    scorer = UserEventScorer()
    rng = random.Random(6)
    t = feed_daily_pattern(scorer, 14, rng)
    noon = t + 12 * HOUR  # baseline ~100
    for k in range(20):
        scorer.update(f"d{k}", "signup", noon + k * 60.0)
    closing = scorer.update("d-next", "signup", noon + HOUR + 1.0)
    assert VOLUME in kinds(closing)
    assert "just closed" in closing.explanation


def test_small_absolute_changes_never_alert() -> None:
    config = EventScorerConfig(volume_min_deviation=10.0)
    scorer = UserEventScorer(config)
    for day in range(14):
        for k in range(2):  # 2 a day in the 05:00 bucket
            scorer.update(f"u{k}", "rare", day * DAY + 5 * HOUR + k)
    results = [scorer.update(f"x{k}", "rare", 14 * DAY + 5 * HOUR + k) for k in range(9)]
    assert all(VOLUME not in kinds(r) for r in results)


def test_robust_z_ignores_one_past_outlier() -> None:
    history = [100.0, 98.0, 103.0, 101.0, 5000.0, 99.0, 102.0]
    z, median = robust_z(180.0, history)
    assert median == 101.0
    assert z > 3.0  # mean/stdev would call 180 normal after the 5000 day


def test_state_round_trip_reproduces_subsequent_scores() -> None:
    config = EventScorerConfig(
        transition_warmup=50,
        requires_session=("logout", "buy"),
        forbidden_transitions=(("a", "b"),),
    )
    rng = random.Random(9)
    types = ["login", "view", "buy", "logout", "a", "b"]
    stream = []
    t = 0.0
    for _ in range(3000):
        t += rng.expovariate(1 / 40.0)
        stream.append((f"u{rng.randrange(30)}", rng.choice(types), t))
    original = UserEventScorer(config)
    for event in stream[:2000]:
        original.update(*event)
    restored = UserEventScorer.from_dict(json.loads(json.dumps(original.to_dict())))
    for event in stream[2000:]:
        a, b = original.update(*event), restored.update(*event)
        assert a.score == b.score
        assert a.reasons == b.reasons
    assert original.to_dict() == restored.to_dict()


def test_state_is_bounded() -> None:
    config = EventScorerConfig(max_users=100, max_event_types=10, regularity_gaps=4)
    scorer = UserEventScorer(config)
    for i in range(5000):
        scorer.update(f"u{i}", f"type{i % 50}", float(i))
    state = scorer.to_dict()
    assert len(state["users"]) <= 100
    assert len(state["volumes"]) <= 10
    assert len(state["transitions"]) <= 10
    assert all(len(u[5]) <= 4 for u in state["users"].values())
