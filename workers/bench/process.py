"""`polaris bench process`: lines per second per core for each process-tier step and the
whole chain, beside the rate at which a bare aiokafka consumer reads the same messages from
the same broker in the same run (the ceiling for a Python consumer here).

Rates are per CPU-second of this process (`time.process_time`), so a busy machine inflates
wall time but not the figures much; the ratio chain / bare consumer is the number to read.
The machine is shared and its speed drifts from second to second, and a bare read costs only
a few tenths of a CPU-second: the ceiling in the table is the median of `--bare-reads`
reads, and the headline figure, the warm native chain's share of the ceiling, is the median
over `--pairs` back-to-back pairs (a bare read, then a chain pass), so both sides of each
ratio see the same moment. Every read and pair is printed and saved.

Before each whole-chain run the heap is settled (`workers.pipeline.settle_heap`), as the
process worker does once spaCy is loaded: the bench's own inputs and earlier rows are not
a worker's heap, and the collector would otherwise walk them on every full collection.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
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
from workers.pipeline import LogEnricher, RawLine, settle_heap
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


def step_rates(lines: Sequence[bytes], extractor: EntityExtractor) -> list[dict[str, Any]]:
    texts = [line.decode("utf-8", "replace") for line in lines]
    parsed = [parse_line(text) for text in texts]
    messages = [p.message for p in parsed]
    rules = default_rules()
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
        settle_heap()
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


class BareReader:
    """A topic holding the bench lines, read back by a bare aiokafka consumer (getmany, no
    processing): the ceiling for a Python consumer here."""

    def __init__(self, bootstrap: str, lines: Sequence[bytes]) -> None:
        self.bootstrap, self.lines = bootstrap, lines
        self.topic = f"bench.process.{uuid.uuid4().hex[:8]}"

    def __enter__(self) -> BareReader:
        asyncio.run(self._produce())
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.run(self._drop())

    def read(self) -> tuple[int, float, float]:
        """Lines read, CPU-seconds and wall seconds of one read of the topic from its start."""
        return asyncio.run(self._read())

    async def _produce(self) -> None:
        admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap)
        await admin.start()
        try:
            await admin.create_topics([NewTopic(self.topic, 1, 1)])
        finally:
            await admin.close()
        producer = AIOKafkaProducer(bootstrap_servers=self.bootstrap, linger_ms=20, max_batch_size=1 << 20)
        await producer.start()
        try:
            for i in range(0, len(self.lines), 5000):
                await asyncio.gather(*[await producer.send(self.topic, line) for line in self.lines[i:i + 5000]])
        finally:
            await producer.stop()

    async def _drop(self) -> None:
        admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap)
        await admin.start()
        try:
            await admin.delete_topics([self.topic])
        finally:
            await admin.close()

    async def _read(self) -> tuple[int, float, float]:
        consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, enable_auto_commit=False,
                                    auto_offset_reset="earliest", max_partition_fetch_bytes=8 << 20)
        await consumer.start()
        try:
            tp = TopicPartition(self.topic, 0)
            consumer.assign([tp])
            await consumer.seek_to_beginning(tp)
            seen, started_cpu, started_wall = 0, time.process_time(), time.perf_counter()
            while seen < len(self.lines):
                for messages in (await consumer.getmany(timeout_ms=1000, max_records=10000)).values():
                    seen += len(messages)
            return seen, time.process_time() - started_cpu, time.perf_counter() - started_wall
        finally:
            await consumer.stop()


def bare_row(reads: Sequence[tuple[int, float, float]]) -> dict[str, Any]:
    """The median read as a table row, with every read's rate."""
    rates = [seen / cpu if cpu else 0.0 for seen, cpu, _ in reads]
    seen, cpu, wall = reads[rates.index(statistics.median_low(rates))]
    return {"step": f"bare aiokafka consumer (median of {len(reads)})", "lines": seen,
            "cpu_s": round(cpu, 3), "wall_s": round(wall, 3),
            "lines_per_cpu_s": round(seen / cpu) if cpu else None,
            "lines_per_wall_s": round(seen / wall) if wall else None,
            "reads_lines_per_cpu_s": [round(rate) for rate in rates]}


def paired_ratios(reader: BareReader, extractor: EntityExtractor, lines: Sequence[bytes],
                  pairs: int) -> dict[str, Any]:
    """The headline figure, robust to a noisy machine: `pairs` times, a bare read and then a
    warm native chain pass over the same lines, back to back; the ratio of each pair is
    taken, and their median is the chain's share of the ceiling."""
    enricher = NativeLogEnricher(extractor=extractor)
    _enrich_all(enricher, [RawLine(Origin(topic="bench", partition=0, offset=i), line)
                           for i, line in enumerate(lines)])  # cold pass: every shape planned
    ratios, chain_rates_, bare_rates = [], [], []
    for run in range(1, pairs + 1):
        seen, cpu, _ = reader.read()
        raws = [RawLine(Origin(topic="bench", partition=0, offset=run * len(lines) + i), line)
                for i, line in enumerate(lines)]
        settle_heap()
        chain = _rate("chain native (warm)", len(raws), partial(_enrich_all, enricher, raws))
        bare_rate = seen / cpu if cpu else float("inf")
        bare_rates.append(round(bare_rate))
        chain_rates_.append(chain["lines_per_cpu_s"])
        ratios.append(round((chain["lines_per_cpu_s"] or 0) / bare_rate, 3))
    return {"pairs": pairs, "bare_lines_per_cpu_s": bare_rates, "chain_lines_per_cpu_s": chain_rates_,
            "share_of_bare_consumer": ratios, "median_share": statistics.median(ratios),
            "min_share": min(ratios)}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--lines", type=int, default=100_000, help="lines of the Loghub mix to use")
    parser.add_argument("--data", type=Path, default=SHARED_DATA / "loghub")
    parser.add_argument("--json", type=Path, default=Path("bench-results/process.json"))
    parser.add_argument("--bare-reads", type=int, default=5,
                        help="reads of the topic by the bare consumer; the median is the ceiling")
    parser.add_argument("--pairs", type=int, default=5,
                        help="paired runs (bare read, warm native chain) for the headline ratio")


def run(args: argparse.Namespace) -> int:
    lines = loghub_mix(args.data, args.lines)
    with BareReader(get_settings().kafka_bootstrap, lines) as reader:  # fails first if Kafka is down
        extractor = EntityExtractor()
        settle_heap()  # as the worker does once spaCy is loaded; the bare reads see the same heap
        bare = bare_row([reader.read() for _ in range(max(1, args.bare_reads))])
        # the pairs before the step rows: the embedding row wakes BLAS threads whose CPU time
        # would land on whatever runs next in this process
        paired = paired_ratios(reader, extractor, lines, max(1, args.pairs))
        steps = step_rates(lines, extractor)
    ceiling = bare["lines_per_cpu_s"] or 1
    print(f"{'step':<36} {'lines':>8} {'cpu s':>8} {'lines/cpu-s':>12} {'of bare':>8}")
    for row in [bare, *steps]:
        share = (row["lines_per_cpu_s"] or 0) / ceiling
        row["share_of_bare_consumer"] = round(share, 3)
        print(f"{row['step']:<36} {row['lines']:>8} {row['cpu_s']:>8.2f} {row['lines_per_cpu_s']:>12,} {share:>8.3f}")
    print(f"bare consumer, each read (lines/cpu-s): {bare['reads_lines_per_cpu_s']}")
    print(f"paired runs (bare read, then warm native chain) x{paired['pairs']}:")
    print(f"  bare  lines/cpu-s: {paired['bare_lines_per_cpu_s']}")
    print(f"  chain lines/cpu-s: {paired['chain_lines_per_cpu_s']}")
    print(f"  chain / bare:      {paired['share_of_bare_consumer']}")
    print(f"whole native chain (warm) / bare consumer: median {paired['median_share']:.3f}, "
          f"lowest {paired['min_share']:.3f}")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"lines": len(lines), "rows": [bare, *steps], "paired": paired}, indent=2))
    print(f"saved {args.json}")
    return 0
