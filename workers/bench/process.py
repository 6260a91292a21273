"""`polaris bench process`: lines per second per core for each process-tier step and the
whole chain, beside the rate at which a bare aiokafka consumer reads the same messages from
the same broker in the same run (the ceiling for a Python consumer here).

Rates are per CPU-second of this process (`time.process_time`), so a busy machine inflates
wall time but not the figures much; the ratio chain / bare consumer is the number to read.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
import uuid
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from schemas.records import Origin
from workers.evals import SHARED_DATA
from workers.pipeline import LogEnricher, RawLine
from workers.pipeline_native import (
    NativeLogEnricher,
    Reference,
    native_catalog_json,
    native_rules_json,
    native_scorer_json,
    require_native,
)
from workers.settings import get_settings
from workers.steps.classify import Classification, classify
from workers.steps.entities import EntityExtractor
from workers.steps.parse import default_parser, parse_line
from workers.steps.redact import default_rules
from workers.steps.score_logs import LogAnomalyScorer, LogScorerConfig
from workers.steps.templates import TemplateMiner

BATCH = 1000


def loghub_mix(root: Path, total: int) -> list[bytes]:
    files = sorted(root.glob("*/*_2k.log"))
    if not files:
        raise SystemExit(f"bench: no Loghub samples under {root}")
    per_file = [[line for line in f.read_bytes().splitlines() if line.strip()] for f in files]
    mixed = [line for group in zip(*per_file, strict=False) for line in group]
    return (mixed * (total // len(mixed) + 1))[:total]


def _rate(label: str, count: int, work: Callable[[], object]) -> dict[str, Any]:
    started_cpu, started_wall = time.process_time(), time.perf_counter()
    work()
    cpu, wall = time.process_time() - started_cpu, time.perf_counter() - started_wall
    return {"step": label, "lines": count, "cpu_s": round(cpu, 3), "wall_s": round(wall, 3),
            "lines_per_cpu_s": round(count / cpu) if cpu else None}


def step_rates(lines: Sequence[bytes]) -> list[dict[str, Any]]:
    texts = [line.decode("utf-8", "replace") for line in lines]
    parsed = [parse_line(text) for text in texts]
    messages = [p.message for p in parsed]
    rules = default_rules()
    extractor = EntityExtractor()
    results = [
        _rate("parse", len(texts), lambda: [parse_line(t) for t in texts]),
        _rate("redact", len(messages), lambda: [rules.redact(m) for m in messages]),
    ]
    miner = TemplateMiner()
    results.append(_rate("template", len(messages), lambda: [miner.add(m) for m in messages]))
    entities: list[Any] = []
    results.append(_rate("entities", len(messages), lambda: entities.extend(
        found for i in range(0, len(messages), BATCH) for found in extractor.extract_batch(messages[i:i + BATCH]))))
    # The same lines again: every shape is cached, as in a steady stream of known shapes.
    results.append(_rate("entities (warm shape cache)", len(messages), lambda: [
        extractor.extract_batch(messages[i:i + BATCH]) for i in range(0, len(messages), BATCH)]))
    miner2 = TemplateMiner()
    matches = [miner2.add(m) for m in messages]
    ids = [match.template_id for match in matches]
    results.append(_rate("classify (per template, cached)", len(messages), lambda: _classify_cached(
        matches, parsed, entities)))
    scorer = LogAnomalyScorer()
    results.append(_rate("score", len(messages), lambda: [
        scorer.update(p.service or "x", t, p.level, m, float(i)) for i, (p, t, m) in enumerate(
            zip(parsed, ids, messages, strict=True))]))
    results += chain_rates("python", LogEnricher(extractor=extractor), lines)
    results += native_step_rates(texts, messages, parsed, ids)
    results += chain_rates("native", NativeLogEnricher(extractor=extractor), lines)
    results += embed_rates([m.template for m in matches])
    return results


def chain_rates(implementation: str, enricher: LogEnricher | NativeLogEnricher,
                lines: Sequence[bytes]) -> list[dict[str, Any]]:
    """The whole chain, records built, twice over the same lines: "cold" has every line shape
    new (spaCy plans each shape, the miner makes its groups), "warm" is a steady stream of
    known shapes, as a running worker mostly sees."""
    rows = []
    for run, label in enumerate(("cold: shapes new", "warm: shapes seen")):
        raws = [RawLine(Origin(topic="bench", partition=0, offset=run * len(lines) + i), line)
                for i, line in enumerate(lines)]
        rows.append(_rate(f"chain {implementation} ({label})", len(raws), partial(_enrich_all, enricher, raws)))
    return rows


def _enrich_all(enricher: LogEnricher | NativeLogEnricher, raws: Sequence[RawLine]) -> None:
    for i in range(0, len(raws), BATCH):
        enricher.enrich(raws[i:i + BATCH])


def native_step_rates(texts: list[str], messages: list[str], parsed: Sequence[Any],
                      ids: list[str]) -> list[dict[str, Any]]:
    """The native steps alone (polaris_native), on the same inputs as the Python rows."""
    native = require_native()
    parser = native.LineParser(native_catalog_json(default_parser()))
    redactor = native.Redactor(native_rules_json(default_rules()), default_rules())
    miner, scorer = native.TemplateMiner(), native.LogScorer(native_scorer_json(LogScorerConfig()))
    extractor = EntityExtractor()
    plans = native.EntityPlans(extractor._priority, extractor.cache_size)
    reference = Reference(default_parser(), default_rules(), extractor)
    services = [p.service or p.host or "x" for p in parsed]
    levels = [p.level for p in parsed]
    batches = range(0, len(messages), BATCH)
    plans.extract_batch(messages, reference.plan)  # plan every shape first: the warm path alone
    return [
        _rate("parse (native)", len(texts), lambda: [
            parser.parse_batch(texts[i:i + BATCH], 0.0) for i in batches]),
        _rate("redact (native)", len(messages), lambda: [
            redactor.redact_batch(messages[i:i + BATCH]) for i in batches]),
        _rate("template (native)", len(messages), lambda: [
            miner.add_batch(messages[i:i + BATCH]) for i in batches]),
        _rate("entities (native, warm shape cache)", len(messages), lambda: [
            plans.extract_batch(messages[i:i + BATCH], reference.plan) for i in batches]),
        _rate("score (native)", len(messages), lambda: [scorer.update_batch(
            services[i:i + BATCH], ids[i:i + BATCH], levels[i:i + BATCH], messages[i:i + BATCH],
            [float(n) for n in range(i, min(i + BATCH, len(messages)))]) for i in batches]),
    ]


def embed_rates(templates: Sequence[str]) -> list[dict[str, Any]]:
    """The embedding step, which runs once per distinct template (then Redis serves it):
    model texts/s on the distinct templates, and the lines/s that implies for the whole mix."""
    from workers.steps.embed import SentenceEmbedder

    distinct = sorted(set(templates))
    embedder = SentenceEmbedder()
    embedder.embed(distinct[:4])  # first call pays one-time setup
    row = _rate("embed (model, distinct templates)", len(distinct),
                lambda: [embedder.embed(distinct[i:i + 32]) for i in range(0, len(distinct), 32)])
    amortised = dict(row, step="embed (amortised over all lines)", lines=len(templates),
                     lines_per_cpu_s=round(len(templates) / row["cpu_s"]) if row["cpu_s"] else None)
    return [row, amortised]


def _classify_cached(matches: Sequence[Any], parsed: Sequence[Any], entities: Sequence[Any]) -> None:
    """Classification as LogEnricher does it: once per (template, level, entity labels)."""
    cache: dict[tuple[str, str | None, frozenset[str]], Classification] = {}
    for match, p, found in zip(matches, parsed, entities, strict=True):
        key = (match.template_id, p.level, frozenset(e.label for e in found))
        if key not in cache:
            cache[key] = classify(match.template, p.level, found)


async def bare_consumer_rate(bootstrap: str, lines: Sequence[bytes]) -> dict[str, Any]:
    topic = f"bench.process.{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, 1, 1)])
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=20, max_batch_size=1 << 20)
        await producer.start()
        try:
            for i in range(0, len(lines), 5000):
                await asyncio.gather(*[await producer.send(topic, line) for line in lines[i:i + 5000]])
        finally:
            await producer.stop()
        consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                                    auto_offset_reset="earliest", max_partition_fetch_bytes=8 << 20)
        await consumer.start()
        try:
            tp = TopicPartition(topic, 0)
            consumer.assign([tp])
            await consumer.seek_to_beginning(tp)
            seen, started_cpu, started_wall = 0, time.process_time(), time.perf_counter()
            while seen < len(lines):
                for messages in (await consumer.getmany(timeout_ms=1000, max_records=10000)).values():
                    seen += len(messages)
            cpu, wall = time.process_time() - started_cpu, time.perf_counter() - started_wall
        finally:
            await consumer.stop()
        return {"step": "bare aiokafka consumer (getmany)", "lines": seen, "cpu_s": round(cpu, 3),
                "wall_s": round(wall, 3), "lines_per_cpu_s": round(seen / cpu) if cpu else None,
                "lines_per_wall_s": round(seen / wall) if wall else None}
    finally:
        await admin.delete_topics([topic])
        await admin.close()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--lines", type=int, default=100_000, help="lines of the Loghub mix to use")
    parser.add_argument("--data", type=Path, default=SHARED_DATA / "loghub")
    parser.add_argument("--json", type=Path, default=Path("bench-results/process.json"))


def run(args: argparse.Namespace) -> int:
    lines = loghub_mix(args.data, args.lines)
    bare = asyncio.run(bare_consumer_rate(get_settings().kafka_bootstrap, lines))
    steps = step_rates(lines)
    ceiling = bare["lines_per_cpu_s"] or 1
    print(f"{'step':<36} {'lines':>8} {'cpu s':>8} {'lines/cpu-s':>12} {'of bare':>8}")
    for row in [bare, *steps]:
        share = (row["lines_per_cpu_s"] or 0) / ceiling
        row["share_of_bare_consumer"] = round(share, 3)
        print(f"{row['step']:<36} {row['lines']:>8} {row['cpu_s']:>8.2f} {row['lines_per_cpu_s']:>12,} {share:>8.3f}")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"lines": len(lines), "rows": [bare, *steps]}, indent=2))
    print(f"saved {args.json}")
    return 0
