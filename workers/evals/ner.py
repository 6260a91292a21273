"""`polaris eval ner`: entity extraction scored on the labelled set (exact span + label)."""

from __future__ import annotations

import argparse
import json
import time
from collections import Counter
from pathlib import Path
from typing import Any

from workers.evals import REPO_ROOT

HELP = "entity extraction: precision/recall/F1 per label on tests/data/ner_labelled.jsonl"
DEFAULT_DATASET = REPO_ROOT / "tests" / "data" / "ner_labelled.jsonl"

SpanKey = tuple[int, int, str]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dataset", type=Path, default=DEFAULT_DATASET, help="labelled JSONL")
    parser.add_argument("--json", type=Path, metavar="FILE", help="write the scores as JSON")
    parser.add_argument("--output", type=Path, metavar="FILE.jsonl", help="per-line predictions")
    parser.add_argument("--no-cache", action="store_true", help="disable the shape cache")
    parser.add_argument(
        "--repeat", type=int, default=1, help="passes over the set when timing (cache warms up)"
    )
    parser.add_argument(
        "--system", help="only lines of this system (e.g. HDFS, handwritten, holdout)"
    )
    parser.add_argument(
        "--bench-loghub",
        action="store_true",
        help="also time the extractor on all 16,000 Loghub-2k lines, with and without the cache",
    )


def load_dataset(path: Path, system: str | None = None) -> list[dict[str, Any]]:
    if not path.exists():
        raise SystemExit(
            f"labelled set not found: {path} (build it: python -m workers.evals.ner_dataset)"
        )
    records = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
    if system:
        records = [r for r in records if system in (r["system"], r.get("source"), r.get("split"))]
    return records


def score(gold: list[set[SpanKey]], predicted: list[set[SpanKey]]) -> dict[str, dict[str, float]]:
    """Per-label and micro precision/recall/F1 over exact (start, end, label) matches."""
    tp: Counter[str] = Counter()
    fp: Counter[str] = Counter()
    fn: Counter[str] = Counter()
    for gold_spans, predicted_spans in zip(gold, predicted, strict=True):
        for span in predicted_spans:
            (tp if span in gold_spans else fp)[span[2]] += 1
        for span in gold_spans - predicted_spans:
            fn[span[2]] += 1
    table: dict[str, dict[str, float]] = {}
    for label in sorted(set(tp) | set(fp) | set(fn)):
        table[label] = _prf(tp[label], fp[label], fn[label])
    table["micro"] = _prf(sum(tp.values()), sum(fp.values()), sum(fn.values()))
    return table


def bench_loghub() -> dict[str, float]:
    """Lines/s over the 16,000 Loghub-2k lines in stream order: the realistic repetition."""
    from workers.evals.ner_dataset import SYSTEMS, loghub_rows
    from workers.steps.entities import EntityExtractor

    texts = [row["Content"] for system in SYSTEMS for row in loghub_rows(system)]
    result = {}
    for name, cache_size in (("shape cache off", 0), ("shape cache on (cold)", 50_000)):
        extractor = EntityExtractor(cache_size=cache_size)
        extractor.extract_batch(texts[:200])  # spaCy/regex warm-up, not timed
        extractor.clear_cache()
        started = time.perf_counter()
        for offset in range(0, len(texts), 1000):  # batches as a stream worker would see them
            extractor.extract_batch(texts[offset : offset + 1000])
        result[name] = len(texts) / (time.perf_counter() - started)
    return result


def _prf(tp: int, fp: int, fn: int) -> dict[str, float]:
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1, "tp": tp, "fp": fp, "fn": fn,
            "support": tp + fn}  # fmt: skip


def format_table(table: dict[str, dict[str, float]]) -> str:
    lines = [f"{'label':<14} {'P':>6} {'R':>6} {'F1':>6} {'tp':>5} {'fp':>5} {'fn':>5} {'gold':>5}"]
    for label, row in table.items():
        if label == "micro":
            lines.append("-" * len(lines[0]))
        lines.append(
            f"{label:<14} {row['precision']:>6.3f} {row['recall']:>6.3f} {row['f1']:>6.3f} "
            f"{int(row['tp']):>5} {int(row['fp']):>5} {int(row['fn']):>5} {int(row['support']):>5}"
        )
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from workers.steps.entities import EntityExtractor  # spaCy only when this eval runs

    records = load_dataset(args.dataset, args.system)
    texts = [r["text"] for r in records]
    extractor = EntityExtractor(cache_size=0 if args.no_cache else 50_000)
    extractor.extract_batch(texts[:50])  # warm-up (first spaCy call), not timed
    extractor.clear_cache()
    started = time.perf_counter()
    for _ in range(max(1, args.repeat)):
        predictions = extractor.extract_batch(texts)
    elapsed = time.perf_counter() - started
    lines_per_second = len(texts) * max(1, args.repeat) / elapsed if elapsed else 0.0

    gold = [{(s, e, label) for s, e, label in r["entities"]} for r in records]
    predicted = [{(e.start, e.end, e.label) for e in entities} for entities in predictions]
    table = score(gold, predicted)
    print(f"dataset: {args.dataset} ({len(records)} lines)")
    print(format_table(table))
    cache = (
        "off"
        if args.no_cache
        else f"on, hits={extractor.cache_hits} misses={extractor.cache_misses}"
    )
    print(
        f"throughput: {lines_per_second:,.0f} lines/s (shape cache {cache}, repeat={args.repeat})"
    )

    bench: dict[str, float] = {}
    if args.bench_loghub:
        bench = bench_loghub()
        for name, value in bench.items():
            print(f"loghub {name}: {value:,.0f} lines/s")

    if args.json:
        summary = {"dataset": str(args.dataset), "lines": len(records), "scores": table,
                   "lines_per_second": lines_per_second, "shape_cache": not args.no_cache,
                   "loghub_lines_per_second": bench}  # fmt: skip
        args.json.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    if args.output:
        with args.output.open("w", encoding="utf-8") as handle:
            for record, gold_spans, predicted_spans in zip(records, gold, predicted, strict=True):
                row = {"system": record["system"], "LineId": record.get("LineId"),
                       "text": record["text"], "predicted": sorted(predicted_spans),
                       "missed": sorted(gold_spans - predicted_spans),
                       "spurious": sorted(predicted_spans - gold_spans)}  # fmt: skip
                handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    return 0
