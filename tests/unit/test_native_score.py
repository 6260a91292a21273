"""Parity of the native log anomaly scorer (`polaris_native.LogScorer`) with the Python
reference (`workers.steps.score_logs.LogAnomalyScorer`): bit-identical scores, the same
reasons and explanations, the same state document, and each side restoring the other's state.
"""

from __future__ import annotations

import json
import random
import re
import struct
import sys
import unicodedata
from collections.abc import Iterator, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import polaris_native
import pytest

from tests.unit import test_score_logs
from workers.bench.process import loghub_mix
from workers.steps import score_logs
from workers.steps.anomaly_common import AnomalyScore
from workers.steps.parse import parse_line
from workers.steps.score_logs import (
    ERROR_WORDS,
    LEVEL_SEVERITY,
    LogAnomalyScorer,
    LogScorerConfig,
    error_content_strength,
    level_severity,
)
from workers.steps.templates import TemplateMiner

LOGHUB = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "loghub"

Line = tuple[str, str, str | None, str, float]


def bits(value: float) -> bytes:
    """Floats compared bit for bit (0.0 vs -0.0 and NaN included)."""
    return struct.pack("<d", value)


def native_scorer(config: LogScorerConfig) -> Any:
    return polaris_native.LogScorer(json.dumps(asdict(config)))


def python_result(score: AnomalyScore) -> tuple[float, str | None]:
    """What the enricher stores of a score (workers/pipeline.py `_record`)."""
    return round(score.score, 4), (score.explanation if score.reasons else None)


def same_result(a: tuple[float, str | None], b: tuple[float, str | None]) -> bool:
    return bits(a[0]) == bits(b[0]) and a[1] == b[1]


def same_score(python: AnomalyScore, native: tuple[float, list[tuple[str, float, str]]]) -> bool:
    score, reasons = native
    return (
        bits(python.score) == bits(score)
        and len(python.reasons) == len(reasons)
        and all(
            (r.kind, bits(r.strength), r.detail) == (kind, bits(strength), detail)
            for r, (kind, strength, detail) in zip(python.reasons, reasons, strict=True)
        )
    )


def assert_no_differences(differences: Sequence[Any], compared: int, what: str) -> None:
    assert not differences, (
        f"{len(differences)} of {compared} {what} differ; first ones:\n"
        + "\n".join(repr(d) for d in differences[:5])
    )


def assert_same_state(python: LogAnomalyScorer, native: Any) -> None:
    """The same document, in the same key order (which decides eviction ties)."""
    expected = python.to_dict()
    got = json.loads(native.to_json())
    assert got == expected
    assert json.dumps(got) == json.dumps(expected)


def run_both(
    config: LogScorerConfig, lines: Sequence[Line], *, restore_at: int | None = None, batch: int = 1000
) -> None:
    """Score `lines` with Python and with native, both through `update` (exact scores and
    reasons) and `update_batch` (what the record stores); at `restore_at`, each native scorer
    continues from Python's state and a Python scorer from native's."""
    python = LogAnomalyScorer(config)
    native_single, native_batch = native_scorer(config), native_scorer(config)
    python_from_native: LogAnomalyScorer | None = None
    differences: list[Any] = []
    for start in range(0, len(lines), batch):
        chunk = lines[start:start + batch]
        if restore_at is not None and start == restore_at:
            assert_same_state(python, native_single)
            assert_same_state(python, native_batch)
            python_from_native = LogAnomalyScorer.from_dict(json.loads(native_batch.to_json()))
            state = json.dumps(python.to_dict())
            native_single = polaris_native.LogScorer.from_json(state)
            native_batch = polaris_native.LogScorer.from_json(state)
        batch_results = native_batch.update_batch(*map(list, zip(*chunk, strict=True)))
        for offset, (line, batch_result) in enumerate(zip(chunk, batch_results, strict=True)):
            expected = python.update(*line)
            single = native_single.update(*line)
            if not same_score(expected, single):
                differences.append((start + offset, line, "update", expected, single))
            if not same_result(python_result(expected), tuple(batch_result)):
                differences.append((start + offset, line, "update_batch", python_result(expected), batch_result))
            if python_from_native is not None:
                continued = python_from_native.update(*line)
                if not same_score(expected, (continued.score, [tuple(r) for r in _reasons(continued)])):
                    differences.append((start + offset, line, "python from native state", expected, continued))
    assert_no_differences(differences, len(lines), "lines")
    assert_same_state(python, native_single)
    assert_same_state(python, native_batch)
    if python_from_native is not None:
        assert python_from_native.to_dict() == python.to_dict()


def _reasons(score: AnomalyScore) -> Iterator[tuple[str, float, str]]:
    return ((r.kind, r.strength, r.detail) for r in score.reasons)


# --- the benchmark's mix of Loghub lines -------------------------------------------------


@pytest.fixture(scope="module")
def loghub_lines() -> list[Line]:
    """As the process tier scores them: parsed, templated by the Python miner, service and
    timestamp as in workers/pipeline.py `_record` (the line index when there is no time)."""
    miner = TemplateMiner()
    lines = []
    for index, raw in enumerate(loghub_mix(LOGHUB, 20000)):
        parsed = parse_line(raw.decode("utf-8", "replace"))
        template_id = miner.add(parsed.message).template_id
        service = parsed.service or parsed.host or "unknown"
        timestamp = parsed.timestamp.timestamp() if parsed.timestamp else float(index)
        lines.append((service, template_id, parsed.level, parsed.message, timestamp))
    return lines


def test_loghub_mix_scores_reasons_and_state_are_identical(loghub_lines: list[Line]) -> None:
    assert len(loghub_lines) == 20000
    run_both(LogScorerConfig(), loghub_lines, restore_at=10000)


def test_loghub_mix_with_small_bounds_evicts_identically(loghub_lines: list[Line]) -> None:
    config = LogScorerConfig(max_templates_per_service=20, max_services=5)
    run_both(config, loghub_lines, restore_at=7000)


def test_loghub_mix_with_every_reason_kept(loghub_lines: list[Line]) -> None:
    # No threshold on reasons, a short line memory (decay 0.5: half-integer counts, so the
    # half-to-even formatting of ties is exercised) and int-valued fields in the config.
    config = LogScorerConfig(
        frequency_half_life_lines=1, warmup_lines=2, min_reason_strength=0.0,
        burst_min_count=1, short_half_life_s=60, max_templates_per_service=300,
    )
    run_both(config, loghub_lines[:8000], restore_at=4000)


# --- the sequences of tests/unit/test_score_logs.py -----------------------------------------


class _TwinScorer(LogAnomalyScorer):
    """The Python scorer, shadowed by native scorers fed the same calls; differences are
    collected in `mismatches` instead of failing the test being shadowed."""

    mismatches: list[Any] = []
    calls = 0

    def __init__(self, config: LogScorerConfig | None = None) -> None:
        super().__init__(config)
        self._native = native_scorer(self.config)
        self._native_batch = native_scorer(self.config)

    def update(self, service: str, template_id: str, level: str | None, message: str, timestamp: float) -> Any:
        line = (service, template_id, level, message, timestamp)
        expected = super().update(*line)
        single = self._native.update(*line)
        (batch_result,) = self._native_batch.update_batch([service], [template_id], [level], [message], [timestamp])
        type(self).calls += 1
        if not same_score(expected, single):
            self.mismatches.append((line, "update", expected, single))
        if not same_result(python_result(expected), tuple(batch_result)):
            self.mismatches.append((line, "update_batch", python_result(expected), batch_result))
        return expected

    def to_dict(self) -> dict[str, Any]:
        state = super().to_dict()
        for native in (self._native, self._native_batch):
            if json.dumps(json.loads(native.to_json())) != json.dumps(state):
                self.mismatches.append(("to_dict", state, native.to_json()[:2000]))
        return state

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Any:
        scorer = super().from_dict(data)
        scorer._native = polaris_native.LogScorer.from_json(json.dumps(data))
        scorer._native_batch = polaris_native.LogScorer.from_json(json.dumps(data))
        return scorer


SCORE_LOGS_TESTS = [
    name for name in dir(test_score_logs)
    if name.startswith("test_")
    and {"LogAnomalyScorer", "warmed_scorer"} & set(getattr(test_score_logs, name).__code__.co_names)
]


@pytest.mark.parametrize("name", SCORE_LOGS_TESTS)
def test_sequences_of_the_python_tests_score_identically(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(test_score_logs, "LogAnomalyScorer", _TwinScorer)
    monkeypatch.setattr(score_logs, "LogAnomalyScorer", _TwinScorer)
    monkeypatch.setattr(_TwinScorer, "mismatches", [])
    monkeypatch.setattr(_TwinScorer, "calls", 0)
    getattr(test_score_logs, name)()  # the test's own assertions hold as well
    assert _TwinScorer.calls > 0
    assert_no_differences(_TwinScorer.mismatches, _TwinScorer.calls, "calls")


def test_the_python_tests_are_all_shadowed() -> None:
    assert "test_scores_of_a_long_real_sequence_are_unchanged" in SCORE_LOGS_TESTS
    assert len(SCORE_LOGS_TESTS) >= 9


# --- a long synthetic stream that evicts services and templates ---------------------------


def synthetic_lines(count: int, seed: int) -> list[Line]:
    rng = random.Random(seed)
    levels = [None, "", "INFO", "info", "WARN", " warning ", "ERROR", "err", "E", "FATAL", "panic",
              "SEVERE", "cr\u0131t", "weird", "W"]
    messages = [
        "ok", "request served in 12 ms", "Exception in thread main", "panic: oops", "x" * 2500,
        "connection refused by upstream; retry timed out", "could not open file: permission denied",
        "segmentation fault (core dumped)", "Out Of Memory: killed process 1234", "FAILED to start",
        "invalid\u00a0token", "t\u0131med out of memory", "\u212aILLED by oom-killer", "\u017fegfault",
        "caf\u00e9 error", "\u00e9error", "_error", "error_count=3", "Can Not connect", "cannot",
        "warn" + "\u0301" + "ing", "\u2160fail", "\u00b2fail", "\u0660abort", "lost+found", "ababort",
    ]
    services = [f"svc{i}" for i in range(12)] + ["caf\u00e9", "svc \u2603", ""]
    t = 1_700_000_000.0
    lines = []
    for i in range(count):
        t += rng.choice([0.0, 0.0, 0.001, 0.5, 1.0, 30.0, 600.0, 7200.0, -5.0, -3600.0])
        template = f"t{min(int(rng.expovariate(0.08)), 60)}" if rng.random() < 0.9 else f"u{rng.randrange(10**5)}"
        service = rng.choice(services[:4]) if rng.random() < 0.6 else rng.choice(services)
        lines.append((service, template, rng.choice(levels), rng.choice(messages), t if i % 97 else float(i)))
    return lines


@pytest.mark.parametrize("config", [
    LogScorerConfig(max_templates_per_service=20, max_services=5),
    LogScorerConfig(max_templates_per_service=7, max_services=3, frequency_half_life_lines=50.0,
                    short_half_life_s=30.0, long_half_life_s=3600.0, burst_expected_floor=-0.5,
                    min_reason_strength=0.0, weight_rare=1.7, unusual_alone=-0.2, bad_alone=1.5),
    LogScorerConfig(max_templates_per_service=1, max_services=1),
    LogScorerConfig(max_templates_per_service=0, max_services=0),
], ids=["small", "odd", "one", "zero"])
def test_long_synthetic_stream_with_eviction(config: LogScorerConfig) -> None:
    lines = synthetic_lines(30000, seed=5)
    run_both(config, lines, restore_at=15000)


def test_eviction_keeps_the_same_services_and_templates() -> None:
    config = LogScorerConfig(max_templates_per_service=50, max_services=5)
    lines = [(f"svc{i % 20}", f"t{i}", "INFO", "m", float(i)) for i in range(2000)]
    run_both(config, lines)


# --- the pieces: error words, levels, formatting, config and state checks ---------------


def test_every_error_word_in_any_case_and_context() -> None:
    words = list(ERROR_WORDS)
    messages = []
    for word in words:
        for form in (word, word.upper(), word.title(), word + "ed", "x" + word, "_" + word, "1" + word,
                     word.replace(" ", "  "), "(" + word + ")", "\u00e9" + word, word + "\u00e9"):
            messages.append(form)
    rng = random.Random(1)
    for _ in range(3000):
        messages.append(" ".join(rng.choice([*words, "ok", "x", "-", "\u00e9"]) for _ in range(rng.randrange(1, 8))))
    # Look-alikes of i, k and s in every place they can stand in a word, followed by a word
    # their match would swallow.
    for word in words:
        for j, letter in enumerate(word):
            for look_alike in {"i": "\u0130\u0131", "k": "\u212a", "s": "\u017f"}.get(letter, ""):
                messages.append(word[:j] + look_alike + word[j + 1:] + " " + word)
                messages.append((word[:j] + look_alike + word[j + 1:]).upper() + " of memory")
    messages += ["t\u0131med out of memory", "\u212ailled", "a" * 1999 + " fail", "\u00e9" * 1999 + " fail",
                 "\u00e9" * 1995 + " fail", "\u00e9" * 1996 + " fail", "\u00e9" * 1997 + " fail"]
    differences = [
        (m, error_content_strength(m), polaris_native.log_error_content_strength(m))
        for m in messages
        if _content(error_content_strength(m)) != _content(polaris_native.log_error_content_strength(m))
    ]
    assert_no_differences(differences, len(messages), "messages")


def _content(result: tuple[float, Sequence[str]]) -> tuple[bytes, list[str]]:
    return bits(result[0]), list(result[1])


def _all_characters() -> Iterator[str]:
    return (chr(cp) for cp in range(0x110000) if not 0xD800 <= cp < 0xE000)


def test_word_boundaries_before_every_character() -> None:
    """`\\b` as Python's `re` has it: the generated word-character table, checked."""
    native = polaris_native.log_error_content_strength
    differences = [c for c in _all_characters()
                   if _content(error_content_strength(c + "fail")) != _content(native(c + "fail"))]
    assert_no_differences([hex(ord(c)) for c in differences], 0x110000, "characters")


def test_case_insensitive_look_alikes_are_the_ones_the_native_matcher_knows() -> None:
    """Python's `re` IGNORECASE matches the error words' letters only by ASCII case and by
    these look-alikes, which the native matcher hard-codes."""
    text = "".join(_all_characters())
    found = {
        letter: sorted(hex(ord(c)) for c in re.findall(re.escape(letter), text, re.IGNORECASE) if not c.isascii())
        for letter in sorted(set("".join(ERROR_WORDS)))
    }
    assert {k: v for k, v in found.items() if v} == {"i": ["0x130", "0x131"], "k": ["0x212a"], "s": ["0x17f"]}
    assert unicodedata.unidata_version == "14.0.0", "run native/pyunicode/gen_tables.py"
    assert sys.version_info[:2] == (3, 11)


def test_level_severity_of_every_level_spelling() -> None:
    levels: list[str | None] = [None, "", " ", *LEVEL_SEVERITY, "error ", "\tWarn\n", "Error\x1c", "\x1fERR",
                                "\u00a0FATAL\u3000", "\u200bERROR", "ERROR\u0301", "war\u0144"]
    levels += [key.lower() for key in LEVEL_SEVERITY] + [key.title() for key in LEVEL_SEVERITY]
    # Characters whose upper case is ASCII, in every place where that upper case stands.
    ascii_upper = [c for c in _all_characters() if not c.isascii() and c.upper().isascii()]
    assert ascii_upper  # dotless i, long s, ligatures...
    for key in LEVEL_SEVERITY:
        for c in ascii_upper:
            if c.upper() in key:
                levels.append(key.replace(c.upper(), c, 1).lower())
    differences = [(lv, level_severity(lv), polaris_native.log_level_severity(lv)) for lv in levels
                   if bits(level_severity(lv)) != bits(polaris_native.log_level_severity(lv))]
    assert_no_differences(differences, len(levels), "levels")
    # Stripping: which characters are white space to str.strip().
    differences = [hex(ord(c)) for c in _all_characters()
                   if level_severity(c + "ERROR") != polaris_native.log_level_severity(c + "ERROR")
                   or level_severity(c) != polaris_native.log_level_severity(c)]
    assert_no_differences(differences, 0x110000, "characters")


def test_rounding_of_exact_ties() -> None:
    # The first line of a fresh service is not unusual at all, so a FATAL line scores exactly
    # bad_alone: k/32 is a tie at 4 decimals, which round() breaks to even.
    for k in range(32):
        config = LogScorerConfig(weight_level=1.0, bad_alone=k / 32)
        run_both(config, [(f"s{i}", "t", "FATAL", "m", float(i)) for i in range(3)])
    python = LogAnomalyScorer(LogScorerConfig(weight_level=1.0, bad_alone=15 / 32))
    assert round(python.update("s", "t", "FATAL", "m", 0.0).score, 4) == 0.4688


def test_config_json_round_trips_and_defaults() -> None:
    native = polaris_native.LogScorer()
    assert json.loads(native.config_json) == asdict(LogScorerConfig())
    given = {"warmup_lines": 10, "max_services": 7}
    native = polaris_native.LogScorer(json.dumps(given))
    assert json.loads(native.config_json) == asdict(LogScorerConfig(**given))
    assert json.loads(native.to_json())["config"] == asdict(LogScorerConfig(**given))


@pytest.mark.parametrize("bad, message", [
    ({"nope": 1}, "unknown field"),
    ({"warmup_lines": "50"}, "must be a number"),
    ({"short_half_life_s": 0}, "must be positive"),
    ({"frequency_half_life_lines": -1.0}, "must be positive"),
    ({"burst_scale_nats": 0.0}, "must be positive"),
])
def test_configs_python_would_fail_on_are_refused_at_load(bad: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        polaris_native.LogScorer(json.dumps(bad))


def test_states_are_checked_at_load() -> None:
    scorer = LogAnomalyScorer()
    scorer.update("a", "t", "INFO", "m", 1.0)
    state = scorer.to_dict()
    with pytest.raises(ValueError, match="version"):
        polaris_native.LogScorer.from_json(json.dumps({**state, "version": 2}))
    broken = json.loads(json.dumps(state))
    broken["services"]["a"]["templates"]["t"][0] = -1.0
    with pytest.raises(ValueError, match="negative"):
        polaris_native.LogScorer.from_json(json.dumps(broken))
    broken["services"]["a"]["templates"]["t"] = [1.0, 5.0, 1.0, 1.0, 1.0]
    with pytest.raises(ValueError, match="frequency_at"):
        polaris_native.LogScorer.from_json(json.dumps(broken))


def test_inputs_are_checked() -> None:
    native = polaris_native.LogScorer()
    with pytest.raises(ValueError, match="finite"):
        native.update_batch(["a", "a"], ["t", "t"], [None, None], ["m", "m"], [1.0, float("nan")])
    with pytest.raises(ValueError, match="length"):
        native.update_batch(["a"], ["t", "t"], [None], ["m"], [1.0])
    assert json.loads(native.to_json())["tick"] == 0  # nothing of a refused batch is counted
