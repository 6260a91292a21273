"""`polaris eval log-anomaly FILE`: unsupervised log anomaly scoring against per-line labels.

Streams a Loghub structured CSV in file order through `LogAnomalyScorer`; the `Label` column
(`-` = normal) is read only to score the detector afterwards (ROC-AUC, best F1 over
thresholds). Service = `Component` and level = `Level` when those columns exist.

Template keys (`--template-source`):
- masked       digits/hex/IPs/paths in Content replaced by `<*>` (default, no dependency);
- miner        `workers.steps.templates.TemplateMiner`, the streaming Drain-style miner;
- groundtruth  the file's EventId: hand-made templates, for diagnosis only (not deployable).
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import re
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from workers.evals import SHARED_DATA
from workers.evals.binary_metrics import best_f1, roc_auc
from workers.steps.score_logs import LogAnomalyScorer

HELP = "log anomaly scoring vs per-line labels (ROC-AUC, best F1, lines/s)"
DEFAULT_FILE = SHARED_DATA / "loghub/BGL/BGL_2k.log_structured.csv"
TEMPLATE_SOURCES = ("masked", "miner", "groundtruth")
DEFAULT_TEMPLATE_SOURCE = "masked"
NORMAL_LABELS = frozenset({"-", "0", "normal", "false"})
SCORE_DECIMALS = 6  # scores are rounded once, so the --scores file reproduces the metrics
DEFAULT_SERVICE = "default"

_MASKS = [
    re.compile(r"\b\d{1,3}(?:\.\d{1,3}){3}(?::\d+)?\b"),  # IPv4[:port]
    re.compile(r"(?<![\w.])(?:/[\w.\-@~+]+)+/?"),  # absolute paths
    re.compile(r"\b0[xX][0-9a-fA-F]+\b"),  # 0x-hex
    re.compile(r"\b[0-9a-fA-F]*\d[0-9a-fA-F]*[a-fA-F][0-9a-fA-F]*\b(?<=\w{8})"),  # long hex ids
    re.compile(r"(?<![A-Za-z0-9])-?\d+(?:\.\d+)?"),  # numbers, signed and decimal
    re.compile(r"\d+"),  # digits glued to words: core.123, blk_42
]
_MASK = "<*>"
_RUN_OF_MASKS = re.compile(r"<\*>(?:[\s.,:;_\-/]*<\*>)+")

# Timestamp column sets tried in order; each is joined with spaces and fed to the formats.
_TIME_COLUMN_SETS = (("Date", "Time"), ("Month", "Date", "Time"), ("Date", "Day", "Time"),
                     ("Time",), ("Date",))  # fmt: skip
_TIME_FORMATS = (
    "%y%m%d %H%M%S",
    "%Y-%m-%d %H:%M:%S,%f",
    "%Y-%m-%d %H:%M:%S.%f",
    "%Y-%m-%d %H:%M:%S",
    "%y/%m/%d %H:%M:%S",
    "%b %d %H:%M:%S",
    "%a %b %d %H:%M:%S %Y",
    "%Y-%m-%d-%H.%M.%S.%f",
    "%d/%b/%Y:%H:%M:%S",
)


def mask_template_key(content: str) -> str:
    """A template key without a miner: variable-looking tokens become `<*>`."""
    text = content
    for pattern in _MASKS:
        text = pattern.sub(_MASK, text)
    text = _RUN_OF_MASKS.sub(_MASK, text)
    return " ".join(text.split())


def short_hash(text: str) -> str:
    return hashlib.blake2b(text.encode(), digest_size=8).hexdigest()


@dataclass(frozen=True, slots=True)
class Line:
    line_id: str
    service: str
    level: str | None
    content: str
    event_id: str
    timestamp: float
    anomalous: bool


def _find_column(header: list[str], name: str) -> str | None:
    lowered = {h.lower(): h for h in header}
    return lowered.get(name.lower())


class _TimeReader:
    """Seconds from whatever time columns the file has; the line index when none parse.

    Time never goes backwards (clamped), so year-less stamps crossing New Year stay ordered.
    """

    def __init__(self, header: list[str]) -> None:
        self._epoch_column = _find_column(header, "Timestamp")
        self._column_sets = [cols for cols in _TIME_COLUMN_SETS if all(c in header for c in cols)]
        self._found: tuple[tuple[str, ...], str] | None = None
        self._last = 0.0

    def __call__(self, row: dict[str, str], index: int) -> float:
        seconds = self._parse(row)
        if seconds is None:
            seconds = self._last if self._found or self._epoch_column else float(index)
        self._last = max(self._last, seconds)
        return self._last

    def _parse(self, row: dict[str, str]) -> float | None:
        if self._epoch_column:
            try:
                return float(row[self._epoch_column])
            except ValueError:
                pass
        if self._found:
            parsed = self._try(row, *self._found)
            if parsed is not None:
                return parsed
        for cols in self._column_sets:
            for fmt in _TIME_FORMATS:
                parsed = self._try(row, cols, fmt)
                if parsed is not None:
                    self._found = (cols, fmt)
                    return parsed
        return None

    @staticmethod
    def _try(row: dict[str, str], cols: tuple[str, ...], fmt: str) -> float | None:
        text = " ".join((row.get(c) or "").strip() for c in cols)
        try:
            parsed = datetime.strptime(text, fmt)
        except ValueError:
            return None
        if parsed.year == 1900:  # year-less format; any fixed year keeps the order
            parsed = parsed.replace(year=2000)
        return (parsed - datetime(1970, 1, 1)).total_seconds()


def read_lines(path: Path) -> Iterator[Line]:
    with path.open(newline="", encoding="utf-8", errors="replace") as handle:
        reader = csv.DictReader(handle)
        header = list(reader.fieldnames or [])
        label_col = _find_column(header, "Label")
        content_col = _find_column(header, "Content")
        if label_col is None or content_col is None:
            raise ValueError(f"{path}: needs Label and Content columns, has {header}")
        id_col = _find_column(header, "LineId")
        service_col = _find_column(header, "Component")
        level_col = _find_column(header, "Level")
        event_col = _find_column(header, "EventId")
        read_time = _TimeReader(header)
        for index, row in enumerate(reader):
            yield Line(
                line_id=row[id_col] if id_col else str(index + 1),
                service=(row[service_col] or DEFAULT_SERVICE) if service_col else DEFAULT_SERVICE,
                level=row[level_col] if level_col else None,
                content=row[content_col] or "",
                event_id=row[event_col] if event_col else "",
                timestamp=read_time(row, index),
                anomalous=(row[label_col] or "-").strip().lower() not in NORMAL_LABELS,
            )


def template_keyer(source: str) -> Callable[[Line], str]:
    if source == "masked":
        return lambda line: short_hash(mask_template_key(line.content))
    if source == "groundtruth":
        return lambda line: line.event_id or short_hash(line.content)
    from workers.evals.log_anomaly_miner import miner_keyer

    return miner_keyer()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "file",
        nargs="?",
        type=Path,
        default=DEFAULT_FILE,
        help="Loghub structured CSV with a Label column (default: BGL 2k)",
    )
    parser.add_argument(
        "--template-source",
        choices=TEMPLATE_SOURCES,
        default=DEFAULT_TEMPLATE_SOURCE,
        help="template key: masked Content (default), the streaming miner, or "
        "the file's EventId (diagnosis only)",
    )
    parser.add_argument("--json", type=Path, metavar="FILE", help="write the summary as JSON")
    parser.add_argument(
        "--scores", type=Path, metavar="OUT.csv", help="write LineId,score for every line"
    )


def evaluate(path: Path, template_source: str) -> tuple[dict[str, object], list[tuple[str, float]]]:
    """Score every line in order; returns the summary and (LineId, score) per line."""
    key_of = template_keyer(template_source)
    scorer = LogAnomalyScorer()
    scored: list[tuple[str, float]] = []
    labels: list[bool] = []
    templates: set[str] = set()
    detector_seconds = 0.0
    started = time.perf_counter()
    for line in read_lines(path):
        template_id = key_of(line)
        templates.add(template_id)
        tick = time.perf_counter()
        result = scorer.update(line.service, template_id, line.level, line.content, line.timestamp)
        detector_seconds += time.perf_counter() - tick
        scored.append((line.line_id, round(result.score, SCORE_DECIMALS)))
        labels.append(line.anomalous)
    total_seconds = time.perf_counter() - started
    scores = [s for _, s in scored]
    f1 = best_f1(scores, labels)
    summary: dict[str, object] = {
        "file": str(path),
        "template_source": template_source,
        "lines": len(scored),
        "anomalous_lines": sum(labels),
        "distinct_templates": len(templates),
        "roc_auc": roc_auc(scores, labels),
        "best_f1": f1.f1,
        "precision": f1.precision,
        "recall": f1.recall,
        "threshold": f1.threshold,
        "detector_lines_per_s": len(scored) / max(detector_seconds, 1e-9),
        "end_to_end_lines_per_s": len(scored) / max(total_seconds, 1e-9),
    }
    if template_source == "groundtruth":
        summary["note"] = "groundtruth EventId templates: diagnosis only, not a deployable setup"
    return summary, scored


def format_summary(summary: dict[str, object]) -> str:
    def num(key: str) -> str:
        value = summary[key]
        return "n/a" if value is None else f"{value:.4f}"

    lines = [
        f"log-anomaly  {summary['file']}",
        f"  template source   {summary['template_source']}"
        f" ({summary['distinct_templates']} templates)",
        f"  lines             {summary['lines']} ({summary['anomalous_lines']} labelled anomalous)",
        f"  ROC-AUC           {num('roc_auc')}",
        f"  best F1           {num('best_f1')}  (precision {num('precision')},"
        f" recall {num('recall')}, score >= {num('threshold')})",
        f"  throughput        {summary['detector_lines_per_s']:,.0f} lines/s detector,"
        f" {summary['end_to_end_lines_per_s']:,.0f} lines/s end to end",
    ]
    if "note" in summary:
        lines.append(f"  note              {summary['note']}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    path: Path = args.file
    if not path.is_file():
        print(
            f"log-anomaly: no such file {path} (shared data expected at {SHARED_DATA})",
            file=sys.stderr,
        )
        return 2
    try:
        summary, scored = evaluate(path, args.template_source)
    except (ValueError, ImportError) as exc:
        print(f"log-anomaly: {exc}", file=sys.stderr)
        return 2
    print(format_summary(summary))
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2) + "\n")
    if args.scores:
        with args.scores.open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["LineId", "score"])
            writer.writerows((line_id, f"{score:.{SCORE_DECIMALS}f}") for line_id, score in scored)
    return 0
