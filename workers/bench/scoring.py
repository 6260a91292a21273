"""`polaris bench scoring`: the anomaly scorers' quality and speed in one table.

Quality, computed by the evaluation code itself (nothing re-implemented here):

* NAB (`workers.evals.nab`): the metric detector's normalised score per profile, overall and
  per category, with the published scores of other detectors beside the standard figure;
* BGL (`workers.evals.log_anomaly`): the log scorer's ROC-AUC and best F1 (with precision and
  recall) against the per-line labels, for the eval's default template source.

Speed, per CPU-second of this process (`time.process_time`), detector only:

* metric detector: points/s of `MetricDetector.update` over every NAB point, parsed beforehand;
* log detector: lines/s of `LogAnomalyScorer.update` over the BGL structured lines with their
  template ids computed beforehand (the file is replayed, a fresh scorer per pass, until
  `--log-lines` lines have been scored);
* user-event detector: events/s of `UserEventScorer.update` on a synthetic stream generated
  deterministically from `--seed` (sessions of people plus a few scripted bots).

Figures are printed and saved as JSON, never asserted.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from workers.evals import SHARED_DATA, log_anomaly, nab
from workers.steps.score_events import UserEventScorer
from workers.steps.score_logs import LogAnomalyScorer
from workers.steps.score_metrics import MetricDetector

# Published NAB v1.1 standard-profile scores (NAB scoreboard), on the full 58-file corpus.
NAB_REFERENCES: tuple[tuple[str, float], ...] = (
    ("Windowed Gaussian", 39.6),
    ("Twitter ADVec", 47.1),
    ("Random Cut Forest", 51.7),
    ("Relative Entropy", 54.6),
    ("KNN CAD", 58.0),
    ("Numenta HTM", 70.5),
    ("ARTime", 74.9),
)
NAB_FULL_CORPUS_FILES = 58
FLAG_THRESHOLD = 0.5  # user events with a score at or above this count as flagged

# --------------------------------------------------------------------- synthetic events
EVENT_SPAN_S = 7 * 86400.0
EVENT_EPOCH = 1_699_920_000.0  # 2023-11-14 00:00 UTC, a day boundary
BOT_SHARE = 0.01  # of the users
BOT_ACTIVITY = 2.0  # a bot's expected events relative to a person's
# In-session behaviour of a person: next event type -> weight; "" ends the session quietly.
_NEXT: dict[str, tuple[tuple[str, float], ...]] = {
    "login": (("view", 0.55), ("search", 0.35), ("logout", 0.05), ("", 0.05)),
    "search": (("view", 0.6), ("search", 0.25), ("logout", 0.05), ("", 0.1)),
    "view": (("view", 0.45), ("search", 0.2), ("add_to_cart", 0.15), ("logout", 0.08), ("", 0.12)),
    "add_to_cart": (("view", 0.35), ("checkout", 0.35), ("remove_from_cart", 0.1), ("", 0.2)),
    "remove_from_cart": (("view", 0.6), ("search", 0.2), ("", 0.2)),
    "checkout": (("purchase", 0.7), ("view", 0.15), ("", 0.15)),
    "purchase": (("view", 0.3), ("logout", 0.4), ("", 0.3)),
}
_CHOICES = {state: ([n for n, _ in nexts], [w for _, w in nexts]) for state, nexts in _NEXT.items()}


def _person_session(rng: random.Random, user: str, start: float, out: list[tuple[str, str, float]]) -> float:
    """One session from login; gaps log-normal (median 12 s, bursty like people). Returns its end."""
    now, state = start, "login"
    out.append((user, state, now))
    for _ in range(60):
        names, weights = _CHOICES[state]
        state = rng.choices(names, weights)[0]
        if not state:
            break
        now += rng.lognormvariate(math.log(12.0), 1.0)
        out.append((user, state, now))
        if state == "logout":
            break
    return now


def _bot_burst(rng: random.Random, user: str, start: float, size: int, out: list[tuple[str, str, float]]) -> float:
    """A scripted crawler: `view` every ~0.5 s with 1% jitter, no login."""
    now = start
    for _ in range(size):
        out.append((user, "view", now))
        now += 0.5 * (1.0 + rng.uniform(-0.01, 0.01))
    return now


def _next_start(rng: random.Random, after: float, mean_gap: float) -> float:
    """Next session start: exponential gap; most starts falling at night move to the morning."""
    start = after + rng.expovariate(1.0 / mean_gap)
    day, second = divmod(start - EVENT_EPOCH, 86400.0)
    if second < 6 * 3600.0 and rng.random() < 0.75:
        start = EVENT_EPOCH + day * 86400.0 + 7 * 3600.0 + rng.uniform(0.0, 3 * 3600.0)
    return start


def synthetic_events(count: int, users: int, seed: int) -> list[tuple[str, str, float]]:
    """`count` (user_id, event_type, timestamp) in time order, the same for the same arguments.

    People have log-normal activity (a few heavy users), sessions spread over about ten days with quiet
    nights; about 1% of the users are bots producing regular bursts of views (~3% of the events).
    """
    rng = random.Random(seed)
    weights = []
    for number in range(users):
        bot = rng.random() < BOT_SHARE
        weights.append((f"u{number:06d}", bot, rng.lognormvariate(0.0, 1.0) * (BOT_ACTIVITY if bot else 1.0)))
    total_weight = sum(w for _, _, w in weights)
    events: list[tuple[str, str, float]] = []
    for user, bot, weight in weights:
        budget = int(count * weight / total_weight) + 1
        per_session = 150 if bot else 8
        mean_gap = EVENT_SPAN_S / max(1.0, budget / per_session)
        now = EVENT_EPOCH + rng.uniform(0.0, min(mean_gap, EVENT_SPAN_S))
        produced = 0
        while produced < budget:
            before = len(events)
            if bot:
                now = _bot_burst(rng, user, now, min(budget - produced, rng.randint(50, 300)), events)
            else:
                now = _person_session(rng, user, now, events)
            produced += len(events) - before
            now = _next_start(rng, now, mean_gap)
    events.sort(key=lambda event: event[2])
    return events[:count]


# ------------------------------------------------------------------------------ speeds
def _cpu_rate(count: int, work: Callable[[], object]) -> dict[str, Any]:
    started = time.process_time()
    work()
    cpu = time.process_time() - started
    return {"count": count, "cpu_s": round(cpu, 3), "per_cpu_s": count / cpu if cpu > 0 else None}


def metric_speed(corpus: list[nab.Series]) -> dict[str, Any]:
    """Points/s of the metric detector alone: parsing done first, a fresh detector per series."""
    parsed = [
        [
            (nab.parse_time(stamp).timestamp(), float(value))
            for stamp, value in zip(series.timestamps, series.values, strict=True)
        ]
        for series in corpus
    ]
    detectors = [MetricDetector() for _ in parsed]

    def work() -> None:
        for detector, points in zip(detectors, parsed, strict=True):
            update = detector.update
            for timestamp, value in points:
                update(timestamp, value)

    return {"unit": "points", **_cpu_rate(sum(len(p) for p in parsed), work)}


def log_speed(path: Path, min_lines: int) -> dict[str, Any]:
    """Lines/s of the log scorer alone over the file's lines, template ids computed first."""
    key_of = log_anomaly.template_keyer(log_anomaly.DEFAULT_TEMPLATE_SOURCE)
    lines = [
        (line.service, key_of(line), line.level, line.content, line.timestamp) for line in log_anomaly.read_lines(path)
    ]
    passes = max(1, math.ceil(min_lines / max(len(lines), 1)))
    scorers = [LogAnomalyScorer() for _ in range(passes)]

    def work() -> None:
        for scorer in scorers:
            update = scorer.update
            for service, template_id, level, content, timestamp in lines:
                update(service, template_id, level, content, timestamp)

    return {"unit": "lines", "passes": passes, **_cpu_rate(len(lines) * passes, work)}


def event_speed(count: int, users: int, seed: int) -> dict[str, Any]:
    """Events/s of the user-event scorer alone on the synthetic stream."""
    events = synthetic_events(count, users, seed)
    scorer = UserEventScorer()
    scores: list[float] = []

    def work() -> None:
        update = scorer.update
        scores.extend(update(user, kind, timestamp).score for user, kind, timestamp in events)

    rate = _cpu_rate(len(events), work)
    flagged = sum(1 for score in scores if score >= FLAG_THRESHOLD)
    return {
        "unit": "events",
        **rate,
        "users": users,
        "seed": seed,
        "span_days": round((events[-1][2] - events[0][2]) / 86400.0, 2) if events else 0.0,
        "flagged": flagged,
        "flagged_share": flagged / len(events) if events else 0.0,
    }


# ----------------------------------------------------------------------------- report
def measure(nab_dir: Path, bgl_file: Path, *, log_lines: int, events: int, users: int, seed: int) -> dict[str, Any]:
    """Every figure of the bench, as the JSON it saves."""
    corpus = nab.load_corpus(nab_dir)
    scores = {series.key: nab.detect(series) for series in corpus}
    profiles = nab.summarise(corpus, scores)
    bgl, _ = log_anomaly.evaluate(bgl_file, log_anomaly.DEFAULT_TEMPLATE_SOURCE)
    for key in ("detector_lines_per_s", "end_to_end_lines_per_s"):  # wall-clock; see "speed"
        bgl.pop(key, None)
    return {
        "nab": {
            "dir": str(nab_dir),
            "files": len(corpus),
            "points": sum(len(series.timestamps) for series in corpus),
            "profiles": profiles,
            "references": {
                "profile": "standard",
                "corpus_files": NAB_FULL_CORPUS_FILES,
                "note": f"published scores on the full {NAB_FULL_CORPUS_FILES}-file NAB corpus; "
                f"this run scores {len(corpus)} files, so the figures are not directly comparable",
                "scores": dict(NAB_REFERENCES),
            },
        },
        "bgl": bgl,
        "speed": {
            "metric_detector": metric_speed(corpus),
            "log_detector": log_speed(bgl_file, log_lines),
            "event_detector": event_speed(events, users, seed),
        },
    }


def _num(value: Any, spec: str = ".4f") -> str:
    return "n/a" if value is None else format(value, spec)


def format_report(report: dict[str, Any]) -> str:
    nab_part, bgl, speed = report["nab"], report["bgl"], report["speed"]
    lines = [f"== NAB: metric detector, {nab_part['files']} files, {nab_part['points']:,} points ({nab_part['dir']})"]
    lines.append(nab.format_summary(nab_part["profiles"]))
    ours = nab_part["profiles"]["standard"]["score"]
    refs = nab_part["references"]
    lines.append("")
    lines.append(f"NAB standard profile beside published detectors ({refs['note']}):")
    table = [*refs["scores"].items(), (f"polaris (this run, {nab_part['files']} files)", ours)]
    for name, score in sorted(table, key=lambda row: -math.inf if row[1] is None else row[1]):
        lines.append(f"  {name:<34}{_num(score, '6.1f'):>6}")
    lines.append("")
    lines.append(f"== BGL: log detector ({bgl['file']})")
    lines.append(f"  template source   {bgl['template_source']} ({bgl['distinct_templates']} templates)")
    lines.append(f"  lines             {bgl['lines']} ({bgl['anomalous_lines']} labelled anomalous)")
    lines.append(f"  ROC-AUC           {_num(bgl['roc_auc'])}")
    lines.append(
        f"  best F1           {_num(bgl['best_f1'])}  (precision {_num(bgl['precision'])}, "
        f"recall {_num(bgl['recall'])}, score >= {_num(bgl['threshold'])})"
    )
    lines.append("")
    lines.append("== speed on one core (time.process_time, detector only)")
    lines.append(f"  {'detector':<28}{'items':>10}{'cpu s':>8}{'items/cpu-s':>13}  input")
    events = speed["event_detector"]
    inputs = {
        "metric_detector": "NAB points, pre-parsed",
        "log_detector": f"BGL lines with template ids, {speed['log_detector']['passes']} passes",
        "event_detector": f"synthetic: {events['users']:,} users, seed {events['seed']}, "
        f"{events['span_days']} days, {events['flagged_share']:.2%} flagged",
    }
    for name, row in speed.items():
        rate = "n/a" if row["per_cpu_s"] is None else f"{row['per_cpu_s']:,.0f}"
        lines.append(
            f"  {name + ' (' + row['unit'] + ')':<28}{row['count']:>10,}{row['cpu_s']:>8.2f}{rate:>13}  {inputs[name]}"
        )
    return "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--nab",
        type=Path,
        default=SHARED_DATA / "nab",
        help="NAB-style folder with data/ and labels/ (default: shared data)",
    )
    parser.add_argument(
        "--bgl",
        type=Path,
        default=log_anomaly.DEFAULT_FILE,
        help="Loghub structured CSV with labels (default: shared BGL 2k)",
    )
    parser.add_argument(
        "--log-lines", type=int, default=100_000, help="lines to time the log detector on (the file is replayed)"
    )
    parser.add_argument("--events", type=int, default=200_000, help="synthetic user events")
    parser.add_argument("--users", type=int, default=5_000, help="users of the synthetic stream")
    parser.add_argument("--seed", type=int, default=7, help="seed of the synthetic stream")
    parser.add_argument("--json", type=Path, default=Path("bench-results/scoring.json"))


def run(args: argparse.Namespace) -> int:
    if not (args.nab / "labels" / "combined_windows.json").is_file():
        print(f"bench scoring: no NAB data at {args.nab} (expected data/ and labels/)", file=sys.stderr)
        return 2
    if not args.bgl.is_file():
        print(f"bench scoring: no such file {args.bgl}", file=sys.stderr)
        return 2
    report = measure(args.nab, args.bgl, log_lines=args.log_lines, events=args.events, users=args.users, seed=args.seed)
    print(format_report(report))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2) + "\n")
    print(f"saved {args.json}")
    return 0
