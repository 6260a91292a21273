"""LogAnomalyScorer on synthetic lines: novelty decay, bursts, bounds, state round trip."""

from __future__ import annotations

import csv
import hashlib
import json
import random
from datetime import UTC, datetime
from pathlib import Path

from workers.steps.parse import Parser
from workers.steps.score_logs import (
    ERROR_CONTENT,
    ERROR_RATE_BURST,
    NEW_TEMPLATE,
    TEMPLATE_BURST,
    LogAnomalyScorer,
    LogScore,
    LogScorerConfig,
    error_content_strength,
)

ROUTINE = [("t-conn", "connection accepted"), ("t-req", "request served"), ("t-gc", "gc done")]


def warmed_scorer(lines: int = 300, gap_s: float = 60.0) -> tuple[LogAnomalyScorer, float]:
    """A service that has logged a few routine INFO templates at a steady pace."""
    scorer = LogAnomalyScorer()
    rng = random.Random(7)
    t = 1_000_000.0
    for _ in range(lines):
        tid, message = rng.choice(ROUTINE)
        scorer.update("api", tid, "INFO", message, t)
        t += gap_s
    return scorer, t


def kinds(score: LogScore) -> set[str]:
    return {r.kind for r in score.reasons}


def test_new_template_scores_high_then_decays_as_it_repeats() -> None:
    scorer, t = warmed_scorer()
    scores = []
    for i in range(40):
        # An hour apart: never a burst, so only novelty/rarity is at work.
        result = scorer.update("api", "t-new", "INFO", "cache warmed", t + i * 3600.0)
        scores.append(result.score)
        if i == 0:
            assert NEW_TEMPLATE in kinds(result)
        else:
            assert NEW_TEMPLATE not in kinds(result)
    assert scores[0] > 0.4
    assert scores[0] > scores[1] > scores[5] > scores[20]
    assert scores[39] < 0.2


def test_routine_lines_score_low() -> None:
    scorer, t = warmed_scorer()
    result = scorer.update("api", "t-req", "INFO", "request served", t)
    assert result.score < 0.1
    assert result.explanation == "nothing unusual" or result.score < 0.1


def test_new_error_template_outranks_new_info_template() -> None:
    scorer, t = warmed_scorer()
    info = scorer.update("api", "t-a", "INFO", "feature flag loaded", t)
    error = scorer.update("api", "t-b", "ERROR", "fatal: disk write failed", t + 3600)
    assert error.score > info.score
    assert ERROR_CONTENT in kinds(error)


def test_first_lines_of_a_fresh_service_are_not_all_alarms() -> None:
    scorer = LogAnomalyScorer()
    first = scorer.update("new-svc", "t-1", "INFO", "starting", 0.0)
    assert first.score < 0.1


def test_burst_of_a_template_against_its_own_baseline_is_detected() -> None:
    scorer, t = warmed_scorer()
    # A template that appears about once a day ...
    for day in range(10):
        scorer.update("api", "t-retry", "INFO", "retrying upstream", t + day * 86400.0)
    t += 10 * 86400.0
    before = scorer.update("api", "t-retry", "INFO", "retrying upstream", t)
    # ... then 30 times in 30 seconds.
    burst = [
        scorer.update("api", "t-retry", "INFO", "retrying upstream", t + 1 + i) for i in range(30)
    ]
    assert TEMPLATE_BURST not in kinds(before)
    assert TEMPLATE_BURST in kinds(burst[-1])
    assert burst[-1].score > before.score + 0.2
    detail = next(r.detail for r in burst[-1].reasons if r.kind == TEMPLATE_BURST)
    assert "expected" in detail


def test_error_level_rate_burst_is_detected() -> None:
    scorer, t = warmed_scorer()
    for day in range(5):  # errors are normally rare: one a day
        scorer.update("api", "t-err", "ERROR", "upstream returned 502", t + day * 86400.0)
    t += 5 * 86400.0
    results = [
        scorer.update("api", f"t-err-{i % 4}", "ERROR", "upstream returned 502", t + i)
        for i in range(20)
    ]
    assert ERROR_RATE_BURST in kinds(results[-1])


def test_scores_stay_in_unit_interval() -> None:
    scorer = LogAnomalyScorer()
    rng = random.Random(3)
    levels = [None, "INFO", "WARN", "ERROR", "FATAL", "weird"]
    for i in range(2000):
        result = scorer.update(
            f"svc{rng.randrange(3)}",
            f"t{rng.randrange(50) if rng.random() < 0.9 else rng.randrange(10**6)}",
            rng.choice(levels),
            rng.choice(["ok", "Exception in thread main", "panic: oops", "x" * 5000]),
            i * rng.choice([0.0, 0.1, 10.0]),
        )
        assert 0.0 <= result.score <= 1.0
        assert all(0.0 <= r.strength <= 1.0 for r in result.reasons)


def test_state_is_bounded() -> None:
    config = LogScorerConfig(max_templates_per_service=50, max_services=5)
    scorer = LogAnomalyScorer(config)
    for i in range(2000):
        scorer.update(f"svc{i % 20}", f"t{i}", "INFO", "m", float(i))
    state = scorer.to_dict()
    assert len(state["services"]) <= 5
    assert all(len(s["templates"]) <= 50 for s in state["services"].values())


def test_state_round_trip_reproduces_subsequent_scores() -> None:
    rng = random.Random(11)
    stream = [
        (
            f"svc{rng.randrange(3)}",
            f"t{min(int(rng.expovariate(0.3)), 40)}",
            rng.choice(["INFO", "ERROR", None]),
            rng.choice(["ok", "request failed", "fatal exception"]),
            i * 5.0 + rng.random(),
        )
        for i in range(1500)
    ]
    original = LogAnomalyScorer()
    for line in stream[:1000]:
        original.update(*line)
    restored = LogAnomalyScorer.from_dict(json.loads(json.dumps(original.to_dict())))
    for line in stream[1000:]:
        a, b = original.update(*line), restored.update(*line)
        assert a.score == b.score
        assert a.reasons == b.reasons
    assert original.to_dict() == restored.to_dict()


def test_error_words_are_found_case_insensitively_with_suffixes() -> None:
    strength, words = error_content_strength("Kernel PANIC after write Failed")
    assert words == ["fail", "panic"]
    assert 0.9 < strength <= 1.0
    assert error_content_strength("all good")[0] == 0.0


def test_unicode_look_alikes_of_error_words_do_not_crash_the_scorer() -> None:
    from workers.steps.score_logs import LogAnomalyScorer, error_content_strength

    strength, words = error_content_strength("\u0130nvalid \u017fegfault in m\u00f3dulo")
    assert 0.0 <= strength <= 1.0 and all(word.isascii() for word in words)
    score = LogAnomalyScorer().update("svc", "t1", "ERROR", "\u0130nvalid \u017fegfault", 1.0)
    assert 0.0 <= score.score <= 1.0


# sha256 of the scores (rounded to 10 places) and explanations on the sequence below, as the
# straightforward implementation (before the hot path was written out) gave them: speed-ups
# of `update` must not change a single score or reason.
LOGHUB_SEQUENCE_DIGEST = "75101d7292ccca42bff5ebe2df741f6961d2a7b7204e12866ad1f6887285f4d3"


def loghub_sequence() -> list[tuple[str, str, str | None, str, float]]:
    """The 8 Loghub samples interleaved: (service, template id, level, message, time).
    Template ids are Loghub's own EventId, so the sequence does not depend on the miner."""
    root = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "loghub"
    parser = Parser(reference_time=lambda: datetime(2026, 12, 2, tzinfo=UTC))
    per_system = []
    for system in sorted(path.name for path in root.iterdir() if path.is_dir()):
        raw = [line for line in (root / system / f"{system}_2k.log").read_text().splitlines() if line.strip()]
        with (root / system / f"{system}_2k.log_structured.csv").open(encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
        sequence = []
        for line, row in zip(raw, rows, strict=True):
            timestamp = parser.parse(line).timestamp
            sequence.append((row.get("Component") or system, f"{system}:{row['EventId']}",
                             row.get("Level") or None, row["Content"],
                             timestamp.timestamp() if timestamp else 0.0))
        per_system.append(sequence)
    return [item for group in zip(*per_system, strict=True) for item in group]


def test_scores_of_a_long_real_sequence_are_unchanged() -> None:
    inputs = loghub_sequence()
    digest = hashlib.sha256()
    # The default bounds, then small ones so that template and service eviction run too;
    # half way the state goes through JSON, as the process tier saves it.
    for config in (LogScorerConfig(), LogScorerConfig(max_templates_per_service=20, max_services=5)):
        scorer = LogAnomalyScorer(config)
        for i, line in enumerate(inputs):
            if i == len(inputs) // 2:
                scorer = LogAnomalyScorer.from_dict(json.loads(json.dumps(scorer.to_dict())))
            score = scorer.update(*line)
            digest.update(f"{round(score.score, 10)!r}|{score.explanation}\n".encode())
        digest.update(f"{len(scorer.to_dict()['services'])}\n".encode())
    assert len(inputs) == 16000
    assert digest.hexdigest() == LOGHUB_SEQUENCE_DIGEST
