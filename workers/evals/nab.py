"""`polaris eval nab [DIR]`: the metric detector on the Numenta Anomaly Benchmark.

Every series is fed through `workers.steps.score_metrics.MetricDetector` one point at a
time, in order, exactly as the fleet does, and scored the way NAB defines it
(Lavin & Ahmad 2015, NAB v1.1 sweep scoring):

* each labelled window is worth ``tp * sigma(pos) / sigma(-1)`` for its *first* detection,
  ``sigma(y) = 2 / (1 + e^(5y)) - 1`` and ``pos = -(right - i + 1) / width`` in [-1, 0),
  so earlier is better; a window with no detection costs ``fn``;
* a detection outside every window costs ``fp * sigma(pos)`` with ``pos`` its distance past
  the preceding window in window widths (``-fp`` when there is none or it is 3+ widths back);
* rows in the probationary period, ``min(floor(0.15 n), 0.15 * 5000)``, are not scored;
* a row is a detection when its anomaly score >= the threshold; one threshold per profile
  is chosen over the whole corpus by sweeping every distinct score (what NAB's optimiser does);
* the total is normalised so the null detector scores 0 and the perfect one 100.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import time
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from workers.evals import SHARED_DATA
from workers.steps.score_metrics import MetricDetector

HELP = "metric anomaly detector on NAB data, scored with NAB's windows, profiles and sweep"
DETECTOR_NAME = "polaris"
PROBATION_FRACTION = 0.15
NO_DETECTION = 1.1  # a threshold above every score: nothing detected


@dataclass(frozen=True)
class Profile:
    name: str
    tp: float
    fp: float
    fn: float


# NAB config/profiles.json (the TN weight exists there but never enters the score)
PROFILES = (
    Profile("standard", tp=1.0, fp=0.11, fn=1.0),
    Profile("reward_low_FP_rate", tp=1.0, fp=0.22, fn=1.0),
    Profile("reward_low_FN_rate", tp=1.0, fp=0.11, fn=2.0),
)


@dataclass
class Series:
    key: str  # "<category>/<file>.csv", as in NAB's label files
    timestamps: list[str]  # as written in the data file
    values: list[str]  # as written, so results files copy them unchanged
    windows: list[tuple[int, int]]  # inclusive row ranges of the labelled windows

    @property
    def category(self) -> str:
        return self.key.split("/", 1)[0]

    @property
    def name(self) -> str:
        return self.key.split("/", 1)[1]

    def labels(self) -> list[int]:
        label = [0] * len(self.timestamps)
        for start, end in self.windows:
            label[start : end + 1] = [1] * (end + 1 - start)
        return label


def parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.strip()).replace(tzinfo=UTC)


def window_rows(timestamps: list[str], limits: list[list[str]]) -> list[tuple[int, int]]:
    """Map window limits (timestamps) to inclusive row ranges; NAB aligns them to rows."""
    times = [parse_time(t) for t in timestamps]
    rows = []
    for start_text, end_text in limits:
        start, end = parse_time(start_text), parse_time(end_text)
        inside = [i for i, t in enumerate(times) if start <= t <= end]
        if inside:
            rows.append((inside[0], inside[-1]))
    return rows


def load_corpus(root: Path) -> list[Series]:
    limits = json.loads((root / "labels" / "combined_windows.json").read_text())
    corpus = []
    for path in sorted((root / "data").glob("*/*.csv")):
        key = f"{path.parent.name}/{path.name}"
        with path.open(newline="") as handle:
            rows = list(csv.DictReader(handle))
        stamps = [row["timestamp"] for row in rows]
        values = [row["value"] for row in rows]
        corpus.append(Series(key, stamps, values, window_rows(stamps, limits.get(key, []))))
    return corpus


def detect(series: Series) -> list[float]:
    """Anomaly scores from a fresh detector fed one point at a time, in file order."""
    detector = MetricDetector()
    return [
        detector.update(parse_time(stamp).timestamp(), float(value)).score
        for stamp, value in zip(series.timestamps, series.values, strict=True)
    ]


# ------------------------------------------------------------------------------- scoring
def scaled_sigmoid(position: float) -> float:
    if position >= 3.0:
        return -1.0
    return 2.0 / (1.0 + math.exp(5.0 * position)) - 1.0


def probation_length(rows: int) -> int:
    return math.ceil(min(math.floor(PROBATION_FRACTION * rows), PROBATION_FRACTION * 5000))


def row_credits(series: Series, profile: Profile) -> list[tuple[float, int | None]]:
    """(credit if this row were a detection, index of the window holding it) per row."""
    window_of: dict[int, int] = {}
    for number, (first, last) in enumerate(series.windows):
        window_of.update((i, number) for i in range(first, last + 1))
    max_tp = scaled_sigmoid(-1.0)
    credits: list[tuple[float, int | None]] = []
    previous: tuple[int, int] | None = None  # (right edge, width) of the last window passed
    for i in range(len(series.timestamps)):
        w = window_of.get(i)
        if w is not None:
            start, end = series.windows[w]
            width = end - start + 1
            credit = profile.tp * scaled_sigmoid(-(end - i + 1) / width) / max_tp
            if i == end:
                previous = (end, width)
        elif previous is None:
            credit = -profile.fp
        else:
            right, width = previous
            credit = profile.fp * scaled_sigmoid(abs(right - i) / max(width - 1, 1))
        credits.append((credit, w))
    return credits


@dataclass
class Tally:
    raw: float = 0.0
    windows: int = 0
    detected: int = 0
    false_positives: int = 0


def best_threshold(corpus: list[Series], scores: dict[str, list[float]], profile: Profile) -> float:
    """Sweep every distinct score, high to low; keep the threshold with the best total."""
    points: list[tuple[float, float, str | None]] = []
    window_best: dict[str, float] = {}
    for series in corpus:
        first = probation_length(len(series.timestamps))
        credits = row_credits(series, profile)
        for i in range(first, len(credits)):
            credit, w = credits[i]
            name = None if w is None else f"{series.key}|{w}"
            if name is not None:
                window_best[name] = -profile.fn
            points.append((scores[series.key][i], credit, name))
    points.sort(key=lambda p: -p[0])
    total = sum(window_best.values())
    best_total, threshold = total, NO_DETECTION
    for k, (score, credit, name) in enumerate(points):
        if name is None:
            total += credit
        elif credit > window_best[name]:
            total += credit - window_best[name]
            window_best[name] = credit
        last_of_level = k + 1 == len(points) or points[k + 1][0] != score
        if last_of_level and total > best_total:
            best_total, threshold = total, score
    return threshold


def score_series(series: Series, scores: list[float], threshold: float, profile: Profile) -> Tally:
    first = probation_length(len(series.timestamps))
    credits = row_credits(series, profile)
    best: dict[int, float] = {}
    tally = Tally()
    for i in range(first, len(credits)):
        credit, w = credits[i]
        if w is not None:
            best.setdefault(w, -profile.fn)
        if scores[i] < threshold:
            continue
        if w is None:
            tally.raw += credit
            tally.false_positives += 1
        else:
            best[w] = max(best[w], credit)
    tally.windows = len(best)
    tally.detected = sum(1 for value in best.values() if value > -profile.fn)
    tally.raw += sum(best.values())
    return tally


def normalised(tally: Tally, profile: Profile) -> float | None:
    null, perfect = -profile.fn * tally.windows, profile.tp * tally.windows
    if perfect == null:
        return None  # no windows: only false positives can be counted
    return 100.0 * (tally.raw - null) / (perfect - null)


def _row(tally: Tally, profile: Profile) -> dict[str, Any]:
    return {**vars(tally), "score": normalised(tally, profile)}


def summarise(corpus: list[Series], scores: dict[str, list[float]]) -> dict[str, Any]:
    summary: dict[str, Any] = {}
    for profile in PROFILES:
        threshold = best_threshold(corpus, scores, profile)
        overall = Tally()
        categories: dict[str, Tally] = defaultdict(Tally)
        for series in corpus:
            part = score_series(series, scores[series.key], threshold, profile)
            for tally in (overall, categories[series.category]):
                tally.raw += part.raw
                tally.windows += part.windows
                tally.detected += part.detected
                tally.false_positives += part.false_positives

        summary[profile.name] = {
            "threshold": threshold,
            **_row(overall, profile),
            "categories": {name: _row(categories[name], profile) for name in sorted(categories)},
        }
    return summary


# ------------------------------------------------------------------------ results files
def write_results(out: Path, corpus: list[Series], scores: dict[str, list[float]]) -> None:
    """NAB's layout: OUT/<detector>/<category>/<detector>_<file>.csv."""
    for series in corpus:
        path = out / DETECTOR_NAME / series.category / f"{DETECTOR_NAME}_{series.name}"
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["timestamp", "value", "anomaly_score", "label"])
            rows = zip(
                series.timestamps, series.values, scores[series.key], series.labels(), strict=True
            )
            for stamp, value, score, label in rows:
                writer.writerow([stamp, value, repr(score), label])


def read_results(out: Path, labels_dir: Path) -> tuple[list[Series], dict[str, list[float]]]:
    """The corpus and scores back from a results tree (what NAB's scorer would read)."""
    limits = json.loads((labels_dir / "combined_windows.json").read_text())
    corpus, scores = [], {}
    prefix = f"{DETECTOR_NAME}_"
    for path in sorted((out / DETECTOR_NAME).glob("*/*.csv")):
        key = f"{path.parent.name}/{path.name.removeprefix(prefix)}"
        with path.open(newline="") as handle:
            rows = list(csv.DictReader(handle))
        stamps = [row["timestamp"] for row in rows]
        values = [row["value"] for row in rows]
        corpus.append(Series(key, stamps, values, window_rows(stamps, limits.get(key, []))))
        scores[key] = [float(row["anomaly_score"]) for row in rows]
    return corpus, scores


# ---------------------------------------------------------------------------- command
def format_summary(summary: dict[str, Any]) -> str:
    def fmt(score: float | None) -> str:
        return "   n/a" if score is None else f"{score:6.1f}"

    lines = []
    for name, part in summary.items():
        lines.append(f"profile {name}  threshold={part['threshold']:.4f}")
        lines.append(f"  {'category':<24}{'score':>7}{'raw':>9}{'windows':>9}{'hit':>5}{'FP':>5}")
        rows = [*part["categories"].items(), ("ALL", part)]
        for category, c in rows:
            lines.append(
                f"  {category:<24}{fmt(c['score']):>7}{c['raw']:9.3f}{c['windows']:9d}"
                f"{c['detected']:5d}{c['false_positives']:5d}"
            )
    return "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "dir",
        nargs="?",
        type=Path,
        default=SHARED_DATA / "nab",
        help="NAB-style folder with data/ and labels/ (default: shared data)",
    )
    parser.add_argument("--json", type=Path, help="also write the summary as JSON here")
    parser.add_argument("--results", type=Path, help="write NAB results files under this folder")


def run(args: argparse.Namespace) -> int:
    root: Path = args.dir
    if not (root / "labels" / "combined_windows.json").is_file():
        print(f"no NAB data at {root} (expected data/ and labels/combined_windows.json)")
        return 2
    corpus = load_corpus(root)
    started = time.perf_counter()
    scores = {series.key: detect(series) for series in corpus}
    elapsed = time.perf_counter() - started
    points = sum(len(series.timestamps) for series in corpus)
    summary = summarise(corpus, scores)
    print(format_summary(summary))
    rate = points / elapsed if elapsed > 0 else float("inf")
    print(f"{len(corpus)} series, {points} points, {rate:,.0f} points/s (one core, with parsing)")
    if args.json:
        report = {
            "detector": DETECTOR_NAME,
            "points": points,
            "points_per_second": rate,
            "profiles": summary,
        }
        args.json.write_text(json.dumps(report, indent=2))
    if args.results:
        write_results(args.results, corpus, scores)
    return 0
