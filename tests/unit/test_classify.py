"""Unit tests for workers/steps/classify.py on hand-labelled real lines."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from workers.steps.classify import CATEGORIES, Classification, classify
from workers.steps.entities import Entity, EntityExtractor

LABELLED = Path(__file__).resolve().parents[1] / "data" / "classify_labelled.jsonl"

# Floors, stated: the "dev" lines were in view while the rules were written (measured
# 0.97); the "holdout" lines were labelled before the rules were run on them (0.83).
DEV_ACCURACY_FLOOR = 0.93
HOLDOUT_ACCURACY_FLOOR = 0.78


def labelled(split: str) -> list[dict[str, Any]]:
    rows = [json.loads(line) for line in LABELLED.read_text(encoding="utf-8").splitlines()]
    return [row for row in rows if row["split"] == split]


@pytest.fixture(scope="module")
def extractor() -> EntityExtractor:
    return EntityExtractor()


@pytest.mark.parametrize(
    ("split", "floor"), [("dev", DEV_ACCURACY_FLOOR), ("holdout", HOLDOUT_ACCURACY_FLOOR)]
)
def test_category_accuracy_above_floor(
    extractor: EntityExtractor, split: str, floor: float
) -> None:
    rows = labelled(split)
    assert len(rows) >= 40
    entities = extractor.extract_batch([row["text"] for row in rows])
    correct = sum(
        classify(row["text"], row["level"], found).category == row["category"]
        for row, found in zip(rows, entities, strict=True)
    )
    assert correct / len(rows) >= floor, f"{correct}/{len(rows)}"


def test_labelled_set_uses_only_known_categories() -> None:
    rows = labelled("dev") + labelled("holdout")
    assert len(rows) >= 100
    assert {row["category"] for row in rows} <= set(CATEGORIES)


def test_info_line_saying_out_of_memory_is_raised_to_critical() -> None:
    result = classify("Memory cgroup out of memory: Killed process 4242 (java)", "INFO")
    assert result.severity == 5 and result.severity_name == "critical"
    assert result.category == "performance"


def test_info_line_with_fatal_error_is_raised() -> None:
    assert classify("worker reported a fatal error in stage 3", "INFO").severity == 5


def test_corrected_hardware_error_stays_routine() -> None:
    result = classify("instruction cache parity error corrected", "INFO")
    assert result == Classification("system", 2, "system.hardware")


def test_level_is_never_lowered_by_content() -> None:
    assert classify("debug wait enable.................0", "FATAL").severity == 5
    assert classify("Verification succeeded for blk_-2827716238972737794", "ERROR").severity == 4


def test_missing_or_unknown_level_uses_content() -> None:
    assert classify("Did not receive identification string from 181.214.87.4", None).severity == 2
    result = classify("fatal: Write failed: Connection reset by peer [preauth]", "combo")
    assert result.category == "network" and result.severity == 4


def test_specific_real_lines() -> None:
    cases = [
        ("Failed password for root from 187.141.143.180 port 47004 ssh2", None, "auth"),
        ("Disconnecting: Too many authentication failures for admin [preauth]", None, "security"),
        ("[client 61.138.216.82] Directory index forbidden by rule: /var/www/html/", "error",
         "security"),
        ("Receiving block blk_-6543889749770222531 src: /10.251.107.98:56224 dest: "
         "/10.251.107.98:50010", "INFO", "storage"),
        ("Slow ReadProcessor read fields took 65020ms (threshold=30000ms)", "WARN", "performance"),
        ("Accepted socket connection from /10.10.34.35:38016", "INFO", "network"),
        ("Unexpected Exception:", "ERROR", "application_error"),
        ("mod_jk child init 1 -2", "error", "application_error"),
        ("Initializing Cryptographic API", "combo", "system"),
        ("mapred.job.id is deprecated. Instead, use mapreduce.job.id", "INFO", "other"),
    ]  # fmt: skip
    for message, level, category in cases:
        assert classify(message, level).category == category, message


def test_entities_feed_the_category() -> None:
    message = "lookup failed for record 42"
    assert classify(message, "INFO").category == "application_error"
    database = [Entity("DATABASE", "postgres", 0, 8)]
    assert classify(message, "INFO", database) == Classification("database", 4, "database.engine")
    exception = [Entity("EXCEPTION", "KeyError", 0, 8)]
    assert classify("KeyError: 'x'", None, exception).matched_rule == "application_error.exception"


def test_no_rule_gives_other_with_default_rule() -> None:
    assert classify("Num completed Tasks: 1", "INFO") == Classification("other", 2, "default")
