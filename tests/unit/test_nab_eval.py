"""NAB scoring on hand-made cases with known answers, and the results files it writes."""

from __future__ import annotations

import argparse
import contextlib
import csv
import io
import json
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from workers.evals import nab

SHARED_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
STANDARD = nab.PROFILES[0]


def series(rows: int, windows: list[tuple[int, int]], key: str = "cat/s.csv") -> nab.Series:
    start = datetime(2024, 1, 1)
    stamps = [str(start + timedelta(minutes=5 * i)) for i in range(rows)]
    return nab.Series(key, stamps, ["1.0"] * rows, windows)


def detections(rows: int, at: list[int]) -> list[float]:
    scores = [0.0] * rows
    for i in at:
        scores[i] = 1.0
    return scores


def test_probationary_period_is_15_percent_capped_at_750_rows() -> None:
    assert nab.probation_length(1000) == 150
    assert nab.probation_length(4032) == 604
    assert nab.probation_length(22695) == 750


def test_perfect_detector_scores_100_and_null_detector_0() -> None:
    corpus = [series(1000, [(400, 499)]), series(2000, [(600, 699), (1500, 1599)], "cat/t.csv")]
    perfect = {s.key: detections(len(s.timestamps), [a for a, _ in s.windows]) for s in corpus}
    null = {s.key: [0.0] * len(s.timestamps) for s in corpus}
    for profile in nab.PROFILES:
        assert nab.summarise(corpus, perfect)[profile.name]["score"] == pytest.approx(100.0)
        assert nab.summarise(corpus, null)[profile.name]["score"] == pytest.approx(0.0)


def test_a_false_positive_before_any_window_costs_the_fp_weight() -> None:
    one = series(1000, [(400, 499)])
    for profile in nab.PROFILES:
        tally = nab.score_series(one, detections(1000, [200, 400]), 0.5, profile)
        assert tally.false_positives == 1
        assert tally.raw == pytest.approx(profile.tp - profile.fp)


def test_false_positives_just_after_a_window_cost_less() -> None:
    one = series(1000, [(400, 499)])
    near = nab.score_series(one, detections(1000, [400, 505]), 0.5, STANDARD).raw
    far = nab.score_series(one, detections(1000, [400, 900]), 0.5, STANDARD).raw
    assert far == pytest.approx(1.0 - STANDARD.fp)
    assert far < near < 1.0


def test_early_detection_earns_more_than_late_and_only_the_first_counts() -> None:
    one = series(1000, [(400, 499)])
    early = nab.score_series(one, detections(1000, [400]), 0.5, STANDARD).raw
    middle = nab.score_series(one, detections(1000, [450]), 0.5, STANDARD).raw
    late = nab.score_series(one, detections(1000, [499]), 0.5, STANDARD).raw
    assert early == pytest.approx(1.0) and early > middle > late > 0.0
    both = nab.score_series(one, detections(1000, [450, 499]), 0.5, STANDARD).raw
    assert both == pytest.approx(middle)
    missed = nab.score_series(one, [0.0] * 1000, 0.5, STANDARD)
    assert missed.raw == pytest.approx(-STANDARD.fn) and missed.detected == 0


def test_detections_in_the_probationary_period_are_ignored() -> None:
    one = series(1000, [(400, 499)])
    tally = nab.score_series(one, detections(1000, [10, 400]), 0.5, STANDARD)
    assert tally.false_positives == 0 and tally.raw == pytest.approx(1.0)


def test_threshold_is_swept_over_the_corpus() -> None:
    one = series(1000, [(400, 499)])
    scores = [0.0] * 1000
    scores[420] = 0.8  # the true positive
    for i in (300, 600, 700):
        scores[i] = 0.6  # false positives a lower threshold would add
    assert nab.best_threshold([one], {one.key: scores}, STANDARD) == 0.8


@pytest.fixture(scope="module")
def nab_dir() -> Path:
    root = SHARED_DATA / "nab"
    if not (root / "labels" / "combined_windows.json").is_file():
        pytest.fail(f"NAB reference data missing: expected it at {root} (see shared/data)")
    return root


@pytest.fixture(scope="module")
def evaluated(
    nab_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, dict[str, object], str]:
    out = tmp_path_factory.mktemp("nab")
    args = argparse.Namespace(dir=nab_dir, json=out / "summary.json", results=out / "results")
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert nab.run(args) == 0
    report = json.loads((out / "summary.json").read_text())
    return out, report, printed.getvalue()


def test_results_layout(nab_dir: Path, evaluated: tuple[Path, dict[str, object], str]) -> None:
    out = evaluated[0] / "results" / nab.DETECTOR_NAME
    inputs = sorted((nab_dir / "data").glob("*/*.csv"))
    for source in inputs:
        written = out / source.parent.name / f"{nab.DETECTOR_NAME}_{source.name}"
        with source.open(newline="") as handle:
            original = list(csv.DictReader(handle))
        with written.open(newline="") as handle:
            reader = csv.DictReader(handle)
            assert reader.fieldnames == ["timestamp", "value", "anomaly_score", "label"]
            rows = list(reader)
        assert len(rows) == len(original)
        assert [r["timestamp"] for r in rows] == [r["timestamp"] for r in original]
        assert [r["value"] for r in rows] == [r["value"] for r in original]
        assert all(0.0 <= float(r["anomaly_score"]) <= 1.0 for r in rows)
        assert {r["label"] for r in rows} <= {"0", "1"}


def test_summary_recomputed_from_written_files_equals_the_printed_one(
    nab_dir: Path, evaluated: tuple[Path, dict[str, object], str]
) -> None:
    out, report, printed = evaluated
    corpus, scores = nab.read_results(out / "results", nab_dir / "labels")
    recomputed = nab.summarise(corpus, scores)
    assert recomputed == report["profiles"]
    assert printed.startswith(nab.format_summary(recomputed) + "\n")
    labelled = sum(1 for s in corpus for label in s.labels() if label)
    assert labelled > 0
