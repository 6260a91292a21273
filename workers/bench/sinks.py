"""`polaris bench sinks`: records/s each store takes through the fleet's own sink path, with the
offset fencing on; with `--e2e`, the rate from the raw topics into all four stores at saturation.

Per store. N enriched records are built by the process tier's own enrichers: Loghub lines
through `LogEnricher`, plus JSON metric samples and user events (a tenth each) through
`MetricEnricher` / `EventEnricher`. Their origin topics carry a run id, so every record id and
every stored position is new. The stores go one after the other, never together, so the figures
compare. Each store is built as the sink runner builds it. It claims the run's partition as on
an assignment (`committed_offsets(..., claim=True)` gives the epoch), and a `SinkWriter` (the
buffering, retrying, fencing wrapper the fleet uses) is fed the records in topic order and
flushed every `--batch` records. Routing is the topology's, as in the runner: a store gets the
records routed to it, and the others only move its position. Weaviate's vectors come from the
runner's cached vectorizer (Redis per template, the model on a miss). The time spent there is
measured on its own and left out of the Weaviate figure, so that figure is the store's alone.

End to end (`--e2e`). This needs the fleet, and starts it (and stops it afterwards) only when it
is not running. A warm-up record on every raw partition goes through first, so that start-up and
any backlog are not timed. Then a mixed load is published as fast as the producer goes: Loghub
lines to the log topic, JSON metric samples (a `bench_run` label) to the metric topic, JSON user
events (run-prefixed user ids) to the event topic. The producer's acknowledgements give each
message's partition and offset, and so its record id, so only this run's records are counted.
Postgres, Neo4j, Weaviate and Redis are polled until every routed record has arrived. A record
counts as routed when `Topology.sinks_for` routes it there, using the level and service the parser
gives. Metrics and events are counted in Redis through its per-series latest sample (each series
is keyed to one partition, so order holds) and its per-user event counters.

Figures are printed and saved as JSON, never asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import math
import os
import random
import sys
import time
import uuid
import warnings
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from schemas.records import EnrichedRecord, LogRecord, Origin, record_id_for
from schemas.topology import Topology, load_topology
from workers.evals import SHARED_DATA
from workers.settings import Settings, get_settings

STORES = ("postgres", "weaviate", "neo4j", "redis")  # the order the stores are benchmarked in
KINDS = ("log", "metric", "event")
PARTITION = 0  # the per-store part writes one partition of its run topic, offsets 0..N-1
MAX_RETRIES = 20  # consecutive failed flushes before a store's run is given up
WARMUP_TIMEOUT_S = 300.0  # end to end: a fleet just started loads spaCy and the embedding model
POLL_S = 0.5  # end to end: how often the stores are polled (arrival times are this precise)
CHUNK = 1000  # ids per store query when polling
METRIC_SHAPES: tuple[tuple[str, float, float, float], ...] = (  # name, level, daily swing, noise
    ("cpu_utilisation", 0.35, 0.2, 0.04),
    ("http_requests_per_s", 120.0, 60.0, 9.0),
    ("memory_used_bytes", 2.1e9, 3.0e8, 2.0e7),
    ("queue_depth", 12.0, 8.0, 3.0),
)
METRIC_HOSTS = 8
METRIC_STEP_S = 10.0
EVENT_USERS = 300

if TYPE_CHECKING:
    from sinks.writer import SinkWriter

Say = Callable[[str], None]
T = TypeVar("T")
A = TypeVar("A")


class BenchError(RuntimeError):
    """A store or the fleet could not be benchmarked; the message says why."""


def say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


# ------------------------------------------------------------------------ the load (pure)
def mix_counts(total: int) -> dict[str, int]:
    """How many records of each kind make `total`: a tenth metrics, a tenth events, logs the rest."""
    metrics = events = total // 10
    return {"log": total - metrics - events, "metric": metrics, "event": events}


def metric_lines(count: int, marker: str, end_ts: float, *, seed: int = 7) -> list[tuple[str, bytes]]:
    """`count` JSON metric samples as (series, line), series canonical as in `MetricRecord.series`.

    Four metric names on eight hosts, every series sampled each `METRIC_STEP_S` up to `end_ts`.
    Each value follows a daily curve plus noise, and every series has the label `bench_run=marker`.
    """
    from workers.pipeline_metrics import series_key

    rng = random.Random(seed)
    series = [(name, {"host": f"node-{host:02d}", "bench_run": marker}, level, swing, noise)
              for name, level, swing, noise in METRIC_SHAPES for host in range(METRIC_HOSTS)]
    ticks = math.ceil(count / len(series)) if count else 0
    out = []
    for index in range(count):
        name, labels, level, swing, noise = series[index % len(series)]
        tick = index // len(series)
        ts = end_ts - (ticks - 1 - tick) * METRIC_STEP_S
        value = max(0.0, level + swing * math.sin(2 * math.pi * (ts % 86400.0) / 86400.0) + rng.gauss(0.0, noise))
        line = {"name": name, "labels": labels, "value": round(value, 4), "timestamp": round(ts, 3)}
        out.append((series_key(name, labels), json.dumps(line).encode()))
    return out


def event_lines(count: int, marker: str, end_ts: float, *, seed: int = 7) -> list[tuple[str, bytes]]:
    """`count` JSON user events as (user_id, line), from the synthetic stream of `bench scoring`
    (sessions of people and a few bots) moved to end at `end_ts`, user ids prefixed `marker-`."""
    from workers.bench.scoring import synthetic_events

    events = synthetic_events(count, EVENT_USERS, seed) if count else []
    shift = end_ts - events[-1][2] if events else 0.0
    out = []
    for user, event_type, ts in events:
        user_id = f"{marker}-{user}"
        line = {"user_id": user_id, "event_type": event_type, "timestamp": round(ts + shift, 3)}
        out.append((user_id, json.dumps(line).encode()))
    return out


def interleave(*groups: Sequence[T]) -> list[T]:
    """All items, each group's order kept, the groups spread evenly (a tenth-sized group shows
    up every tenth item), as kinds arrive mixed on one topic."""
    keyed = [((index + 0.5) / len(group), number, item)
             for number, group in enumerate(groups) for index, item in enumerate(group)]
    return [item for _, _, item in sorted(keyed, key=lambda entry: (entry[0], entry[1]))]


def build_records(logs: Sequence[bytes], metrics: Sequence[bytes], events: Sequence[bytes], origin_prefix: str,
                  *, now: datetime | None = None, chunk: int = 1000) -> list[EnrichedRecord]:
    """Enriched records exactly as the process tier makes them, interleaved by kind.

    Origins are `{origin_prefix}.logs|.metrics|.events`, partition 0, offsets from 0, so the
    record ids belong to this prefix alone. Lines the enrichers reject are left out.
    """
    from workers.pipeline import LogEnricher, RawLine, Rejected
    from workers.pipeline_events import EventEnricher
    from workers.pipeline_metrics import MetricEnricher

    received = now or datetime.now(UTC)
    enrichers: tuple[tuple[str, Sequence[bytes], Any], ...] = (
        ("logs", logs, LogEnricher()), ("metrics", metrics, MetricEnricher()), ("events", events, EventEnricher()))
    built: list[list[EnrichedRecord]] = []
    for suffix, lines, enricher in enrichers:
        raws = [RawLine(Origin(topic=f"{origin_prefix}.{suffix}", partition=0, offset=offset), line)
                for offset, line in enumerate(lines)]
        out: list[EnrichedRecord] = []
        for start in range(0, len(raws), chunk):
            out += [r for r in enricher.enrich(raws[start:start + chunk], now=received) if not isinstance(r, Rejected)]
        built.append(out)
    return interleave(*built)


def routed_to(topology: Topology, record: EnrichedRecord) -> set[str]:
    """The stores the topology sends a record to (the sink runner's rule)."""
    if isinstance(record, LogRecord):
        return topology.sinks_for(record.kind, record.level, record.service)
    return topology.sinks_for(record.kind, None, None)


# ---------------------------------------------------------------------- figures (pure)
def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-th percentile (0..100), linear between the closest ranks (numpy's default)."""
    if not values:
        return None
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100.0
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def _ms(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def store_row(store: str, records: int, seconds: float, latencies_ms: Sequence[float], **extra: Any) -> dict[str, Any]:
    """One store's figures: records written, seconds in the store, rate, batch latencies."""
    return {
        "store": store, "records": records, "batches": len(latencies_ms), "seconds": round(seconds, 3),
        "records_per_s": round(records / seconds, 1) if seconds > 0 else None,
        "p50_ms": _ms(percentile(latencies_ms, 50)), "p95_ms": _ms(percentile(latencies_ms, 95)),
        "max_ms": _ms(max(latencies_ms) if latencies_ms else None), **extra,
    }


def with_ratios(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Adds `of_fastest`: each store's records/s over the fastest store's (1.0 for the fastest)."""
    rates = [row["records_per_s"] for row in rows if row.get("records_per_s")]
    fastest = max(rates) if rates else None
    for row in rows:
        rate = row.get("records_per_s")
        row["of_fastest"] = round(rate / fastest, 3) if rate and fastest else None
    return rows


def _num(value: Any, spec: str) -> str:
    return "n/a" if value is None else format(value, spec)


def format_stores(report: dict[str, Any]) -> str:
    mix = report["mix"]
    lines = [
        f"== sinks, one store at a time: {report['records']:,} records ({mix['log']:,} log, {mix['metric']:,} metric, "
        f"{mix['event']:,} event), batches of {report['batch']}, through SinkWriter with fencing",
        f"   run {report['run']}: topic {report['topic']}, records built by the process-tier enrichers "
        f"in {report['build_seconds']:.1f} s; {report['cpus']} CPUs, load average {report['load_avg_1m_before']} "
        f"before, fleet {'running' if report['fleet_running'] else 'stopped'}",
        f"  {'store':<10}{'records':>9}{'batches':>9}{'seconds':>9}{'records/s':>11}{'p50 ms':>9}{'p95 ms':>9}"
        f"{'max ms':>9}{'of fastest':>12}",
    ]
    for row in report["stores"]:
        if "error" in row:
            lines.append(f"  {row['store']:<10} failed: {row['error']}")
            continue
        lines.append(
            f"  {row['store']:<10}{row['records']:>9,}{row['batches']:>9}{row['seconds']:>9.2f}"
            f"{_num(row['records_per_s'], ',.0f'):>11}{_num(row['p50_ms'], '.1f'):>9}{_num(row['p95_ms'], '.1f'):>9}"
            f"{_num(row['max_ms'], '.1f'):>9}{_num(row['of_fastest'], '.2f'):>12}")
    for row in report["stores"]:
        notes = []
        if row.get("retries"):
            notes.append(f"{row['retries']} retried flush(es)")
        if row.get("dead_letters"):
            notes.append(f"{row['dead_letters']} record(s) dead-lettered")
        if "stored_position" in row and row["stored_position"] != row["offsets"]:
            notes.append(f"stored position {row['stored_position']} != {row['offsets']} offsets written")
        if notes:
            lines.append(f"  {row['store']}: " + ", ".join(notes))
    for row in report["stores"]:
        vectors = row.get("vectors")
        if vectors:
            cached = vectors["cached_before"]
            known = "unknown (Redis unreachable)" if cached is None else f"{cached:,}"
            computed = "" if cached is None else f", {vectors['distinct_texts'] - cached:,} computed by the model"
            lines.append(
                f"  weaviate vectors: {vectors['distinct_texts']:,} distinct texts for {row['records']:,} records, "
                f"{known} cached in Redis before the run{computed}; embedding took "
                f"{vectors['embed_seconds']:.2f} s in {vectors['embed_calls']} call(s), not counted in the store's "
                "figure")
    return "\n".join(lines)


def format_e2e(e2e: dict[str, Any]) -> str:
    published = e2e["published"]
    lines = [
        f"== end to end: {sum(published.values()):,} records published ("
        + ", ".join(f"{count:,} {kind}" for kind, count in published.items())
        + f") in {e2e['publish_seconds']:.2f} s; fleet "
        + ("started for this run" if e2e["fleet_started"] else "already running"),
        f"   warm-up: one record per raw partition through the fleet in {e2e['warmup_seconds']:.1f} s (not timed); "
        f"stores polled every {e2e['poll_s']} s, times from the first publish",
        f"  {'store':<12}{'records':>9}{'seconds':>9}{'records/s':>11}  arrived",
    ]
    for row in [*e2e["stores"], e2e["overall"]]:
        status = ("all" if row["complete"] else "timed out" if row["arrived"] is None
                  else f"{row['arrived']:,} of {row['records']:,} (timed out)")
        lines.append(f"  {row['store']:<12}{row['records']:>9,}{_num(row['seconds'], '.2f'):>9}"
                     f"{_num(row['records_per_s'], ',.0f'):>11}  {status}")
    overall = e2e["overall"]
    lines.append(f"  ({overall['store_writes']:,} store writes in all: "
                 f"{_num(overall['store_writes_per_s'], ',.0f')}/s)")
    return "\n".join(lines)


# --------------------------------------------------------------------- per store (stack)
class TimedVectorizer:
    """The sink runner's vectorizer, with the time spent in it counted apart."""

    def __init__(self, inner: Callable[[Sequence[str]], Awaitable[Sequence[Sequence[float]]]]) -> None:
        self.inner, self.seconds, self.calls = inner, 0.0, 0

    async def __call__(self, texts: Sequence[str]) -> Sequence[Sequence[float]]:
        started = time.perf_counter()
        try:
            return await self.inner(texts)
        finally:
            self.seconds += time.perf_counter() - started
            self.calls += 1


async def _cached_texts(settings: Settings, texts: set[str]) -> int | None:
    """How many of `texts` already have a vector in the Redis embedding cache (None: unreachable)."""
    import redis.asyncio as aioredis
    from redis.exceptions import RedisError

    from workers.steps.embed import MODEL_NAME, embedding_cache_key

    client = aioredis.from_url(settings.redis_url, socket_timeout=5)
    try:
        async with client.pipeline(transaction=False) as pipe:
            for text in texts:
                pipe.exists(embedding_cache_key(text, MODEL_NAME))
            return sum(int(found) for found in await pipe.execute())
    except (RedisError, OSError):
        return None
    finally:
        await client.aclose()


async def _flush(writer: SinkWriter, end: int, store: str) -> int:
    """Flush everything buffered until the store holds position `end`; returns the retries.
    The writer swallows retriable errors (it backs off): wait its backoff out and flush again."""
    retries = 0
    await writer.flush(force=True)
    while writer.stored_positions.get(PARTITION) != end:
        if PARTITION in writer.fenced:
            raise BenchError(f"{store}: fenced by another owner of the run's topic")
        retries += 1
        if retries > MAX_RETRIES:
            raise BenchError(f"{store}: writes still failing after {MAX_RETRIES} retries (see the log above)")
        await asyncio.sleep(max(0.0, writer.blocked_until - time.monotonic()))
        await writer.flush(force=True)
    return retries


async def bench_store(settings: Settings, topology: Topology, store: str, records: Sequence[EnrichedRecord],
                      *, topic: str, batch: int) -> dict[str, Any]:
    """Write `records` (those routed to `store`) through a fenced SinkWriter; the store's figures."""
    from sinks.base import Sink
    from sinks.writer import SinkWriter, WriterConfig
    from workers.sink_runner import build_sink, cached_vectorizer

    vectorizer: TimedVectorizer | None = None
    sink: Sink
    if store == "weaviate":
        from sinks.weaviate import WeaviateSink

        # As build_sink makes it, with the runner's vectorizer wrapped to time the embedding apart.
        vectorizer = TimedVectorizer(cached_vectorizer(settings))
        sink = WeaviateSink(settings.weaviate_http, settings.weaviate_grpc, vectorize=vectorizer)
    else:
        sink = build_sink(settings, store)
    wanted = [store in routed_to(topology, record) for record in records]
    extra: dict[str, Any] = {}
    if vectorizer is not None:
        texts = {r.template or r.message for r, take in zip(records, wanted, strict=True)
                 if take and isinstance(r, LogRecord)}
        extra["vectors"] = {"distinct_texts": len(texts), "cached_before": await _cached_texts(settings, texts)}
    dead: list[tuple[str, str]] = []

    async def dead_letter(record: EnrichedRecord, reason: str) -> None:
        dead.append((record.record_id, reason))

    try:
        await sink.start()
        claimed = await sink.committed_offsets(topic, [PARTITION], claim=True)
        position = claimed[PARTITION]
        if position.next_offset != 0:
            raise BenchError(f"{store}: the run topic {topic} already has a stored position {position.next_offset}")
        writer = SinkWriter(sink, topic, dead_letter, WriterConfig(max_records=batch))
        writer.assign(PARTITION, position.epoch)
        latencies: list[float] = []
        retries, written, embed_total = 0, 0, 0.0
        started = time.perf_counter()

        async def flush(end: int) -> None:
            nonlocal retries, embed_total
            embed_before = vectorizer.seconds if vectorizer else 0.0
            began = time.perf_counter()
            retries += await _flush(writer, end, store)
            embed = (vectorizer.seconds if vectorizer else 0.0) - embed_before
            embed_total += embed
            latencies.append((time.perf_counter() - began - embed) * 1000.0)

        for offset, (record, take) in enumerate(zip(records, wanted, strict=True)):
            writer.add(PARTITION, offset, record if take else None)
            written += take
            if writer.buffered() >= batch:
                await flush(offset + 1)
        if writer.stored_positions.get(PARTITION) != len(records):
            await flush(len(records))
        seconds = time.perf_counter() - started - embed_total
        stored = (await sink.committed_offsets(topic, [PARTITION])).get(PARTITION)
    finally:
        await sink.close()
    if vectorizer is not None:
        extra["vectors"].update(embed_seconds=round(vectorizer.seconds, 3), embed_calls=vectorizer.calls)
    return store_row(store, written - len(dead), seconds, latencies, epoch=position.epoch, offsets=len(records),
                     stored_position=stored.next_offset if stored else None, retries=retries,
                     dead_letters=len(dead), **extra)


async def bench_stores(settings: Settings, topology: Topology, records: Sequence[EnrichedRecord],
                       *, topic: str, batch: int) -> list[dict[str, Any]]:
    rows = []
    for store in (s for s in STORES if s in topology.used_sinks()):
        say(f"  {store} ...")
        try:
            rows.append(await bench_store(settings, topology, store, records, topic=topic, batch=batch))
        except Exception as exc:  # one store failing must not hide the others' figures
            rows.append({"store": store, "error": f"{exc.__class__.__name__}: {exc}"[:300]})
    return with_ratios(rows)


# ------------------------------------------------------------------- end to end (fleet)
@dataclass(frozen=True)
class Message:
    """One raw message of the load, with where its record must arrive."""

    kind: str
    topic: str
    value: bytes
    stores: frozenset[str]
    key: bytes | None = None
    partition: int | None = None
    subject: str | None = None  # the series of a metric, the user of an event


@dataclass
class Target:
    """The records of one kind one store must receive, and how to count the ones that arrived."""

    store: str
    kind: str
    expected: int
    probe: Callable[[], Awaitable[int]]
    arrived: int = 0
    done_at: float | None = None


def log_messages(topic: str, lines: Sequence[bytes], topology: Topology) -> list[Message]:
    """Log lines the process tier accepts, each with the stores its parsed level/service route it to."""
    from workers.pipeline import RawLine, Rejected, decode
    from workers.steps.parse import parse_line

    out = []
    for line in lines:
        text = decode(RawLine(Origin(topic=topic, partition=0, offset=0), line))
        if isinstance(text, Rejected):
            continue
        parsed = parse_line(text)
        out.append(Message("log", topic, line, frozenset(topology.sinks_for("log", parsed.level, parsed.service))))
    return out


def keyed_messages(kind: str, topic: str, lines: Sequence[tuple[str, bytes]], topology: Topology) -> list[Message]:
    """Metric or event lines keyed by series / user (one partition each, so their order holds)."""
    stores = frozenset(topology.sinks_for(kind, None, None))
    return [Message(kind, topic, line, stores, key=subject.encode(), subject=subject) for subject, line in lines]


class StoreReader:
    """Read-side connections to the four stores, answering "which of these records arrived"."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    async def __aenter__(self) -> StoreReader:
        import asyncpg
        import redis.asyncio as aioredis
        import weaviate
        from neo4j import AsyncGraphDatabase

        s = self.settings
        self.pg = await asyncpg.connect(s.postgres_dsn.get_secret_value())
        self.redis = aioredis.from_url(s.redis_url, socket_timeout=10)
        self.neo4j = AsyncGraphDatabase.driver(s.neo4j_uri, auth=(s.neo4j_user, s.neo4j_password.get_secret_value()))
        host, port = s.weaviate_http.rsplit(":", 1)
        self.weaviate = weaviate.use_async_with_local(host=host, port=int(port),
                                                      grpc_port=int(s.weaviate_grpc.rsplit(":", 1)[1]))
        await self.weaviate.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.pg.close()
        await self.redis.aclose()
        await self.neo4j.close()
        await self.weaviate.close()

    async def found(self, store: str, kind: str, ids: Sequence[str]) -> set[str]:
        found: set[str] = set()
        for start in range(0, len(ids), CHUNK):
            found |= await self._found(store, kind, ids[start:start + CHUNK])
        return found

    async def _found(self, store: str, kind: str, ids: Sequence[str]) -> set[str]:
        if store == "postgres":
            from sinks.postgres import TABLES

            rows = await self.pg.fetch(f"SELECT record_id FROM {TABLES[kind].name} WHERE record_id = ANY($1::text[])",
                                       list(ids))
            return {row["record_id"] for row in rows}
        if store == "neo4j":
            records, _, _ = await self.neo4j.execute_query(
                "UNWIND $ids AS id MATCH (l:LogRecord {record_id: id}) RETURN l.record_id AS id", ids=list(ids))
            return {record["id"] for record in records}
        if store == "weaviate":
            from weaviate.classes.query import Filter

            from sinks.weaviate import COLLECTION, object_uuid

            by_uuid = {object_uuid(record_id): record_id for record_id in ids}
            result = await self.weaviate.collections.get(COLLECTION).query.fetch_objects(
                filters=Filter.by_id().contains_any(list(by_uuid)), limit=len(by_uuid), return_properties=[])
            return {by_uuid[str(obj.uuid)] for obj in result.objects}
        if store == "redis":
            from sinks.redis import record_key

            async with self.redis.pipeline(transaction=False) as pipe:
                for record_id in ids:
                    pipe.exists(record_key(record_id))
                return {record_id for record_id, hit in zip(ids, await pipe.execute(), strict=True) if hit}
        raise ValueError(f"unknown store {store!r}")

    async def redis_metrics(self, series_ids: dict[str, list[str]]) -> int:
        """Samples arrived, from each series' latest sample (a series is written in order)."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for series in series_ids:
                pipe.hget(f"polaris:metric:{series}:latest", "record_id")
            latest = await pipe.execute()
        arrived = 0
        for ids, record_id in zip(series_ids.values(), latest, strict=True):
            if record_id is not None:
                arrived += ids.index(record_id.decode()) + 1 if record_id.decode() in ids else 0
        return arrived

    async def redis_events(self, users: Sequence[str]) -> int:
        """Events arrived: the sum of the users' per-type counters (the run's users only)."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for user in users:
                pipe.hgetall(f"polaris:user:{user}:events")
            counters = await pipe.execute()
        return sum(int(value) for counts in counters for value in counts.values())


def _id_probe(reader: StoreReader, store: str, kind: str, ids: Sequence[str]) -> Callable[[], Awaitable[int]]:
    pending = list(ids)

    async def probe() -> int:
        nonlocal pending
        if pending:
            arrived = await reader.found(store, kind, pending)
            pending = [record_id for record_id in pending if record_id not in arrived]
        return len(ids) - len(pending)

    return probe


def targets_for(reader: StoreReader, sent: Sequence[tuple[Message, str]]) -> list[Target]:
    """What each store must receive of the published records (message, record id)."""
    targets = []
    for store in STORES:
        for kind in KINDS:
            mine = [(message, record_id) for message, record_id in sent if message.kind == kind
                    and store in message.stores]
            if not mine:
                continue
            probe: Callable[[], Awaitable[int]]
            if store == "redis" and kind == "metric":
                series: dict[str, list[str]] = {}
                for message, record_id in mine:
                    series.setdefault(message.subject or "", []).append(record_id)
                probe = _bind(reader.redis_metrics, series)
            elif store == "redis" and kind == "event":
                probe = _bind(reader.redis_events, sorted({message.subject or "" for message, _ in mine}))
            else:
                probe = _id_probe(reader, store, kind, [record_id for _, record_id in mine])
            targets.append(Target(store, kind, len(mine), probe))
    return targets


def _bind(function: Callable[[A], Awaitable[int]], argument: A) -> Callable[[], Awaitable[int]]:
    async def probe() -> int:
        return await function(argument)

    return probe


async def publish(producer: Any, messages: Sequence[Message]) -> list[tuple[Message, str]]:
    """Send all messages without waiting for each; returns (message, record id) once all are acked."""
    futures = [await producer.send(m.topic, m.value, key=m.key, partition=m.partition) for m in messages]
    sent = await asyncio.gather(*futures)
    return [(message, record_id_for(message.topic, meta.partition, meta.offset))
            for message, meta in zip(messages, sent, strict=True)]


async def wait_for(targets: Sequence[Target], started: float, timeout_s: float, *, report_every_s: float = 2.0,
                   say_progress: Say | None = None, alive: Callable[[], bool] | None = None) -> bool:
    """Poll until every target has all its records (True) or `timeout_s` passes (False).
    `alive` is asked every few seconds; a False (a fleet worker died) ends the wait with BenchError."""
    last_report = last_alive = 0.0
    while True:
        if alive is not None and time.perf_counter() - last_alive >= 5.0:
            last_alive = time.perf_counter()
            if not alive():
                raise BenchError("a fleet worker is not running; see .polaris/run/worker-*.log")
        for target in targets:
            if target.done_at is None:
                target.arrived = await target.probe()
                if target.arrived >= target.expected:
                    target.done_at = time.perf_counter() - started
        elapsed = time.perf_counter() - started
        done = all(target.done_at is not None for target in targets)
        if say_progress and (done or elapsed - last_report >= report_every_s):
            last_report = elapsed
            totals: dict[str, list[int]] = {}
            for target in targets:
                counts = totals.setdefault(target.store, [0, 0])
                counts[0] += target.arrived
                counts[1] += target.expected
            say_progress(f"  {elapsed:6.1f}s  " + "  ".join(f"{store} {a:,}/{e:,}" for store, (a, e) in totals.items()))
        if done:
            return True
        if elapsed > timeout_s:
            return False
        await asyncio.sleep(POLL_S)


def e2e_rows(targets: Sequence[Target], published: int) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Per store and overall: records, seconds from the first publish to the last arrival, rate."""
    rows: list[dict[str, Any]] = []
    for store in STORES:
        mine = [t for t in targets if t.store == store]
        if not mine:
            continue
        complete = all(t.done_at is not None for t in mine)
        seconds = max(t.done_at or 0.0 for t in mine) if complete else None
        expected = sum(t.expected for t in mine)
        rows.append({"store": store, "records": expected, "arrived": sum(t.arrived for t in mine),
                     "complete": complete, "seconds": None if seconds is None else round(seconds, 3),
                     "records_per_s": round(expected / seconds, 1) if seconds else None})
    complete = all(row["complete"] for row in rows)
    seconds = max(row["seconds"] for row in rows) if complete and rows else None
    writes = sum(row["records"] for row in rows)
    overall = {"store": "all stores", "records": published, "arrived": published if complete else None,
               "complete": complete, "seconds": seconds,
               "records_per_s": round(published / seconds, 1) if seconds else None, "store_writes": writes,
               "store_writes_per_s": round(writes / seconds, 1) if seconds else None}
    return rows, overall


async def bench_e2e(settings: Settings, topology: Topology, total: int, data: Path, marker: str, *,
                    timeout_s: float) -> dict[str, Any]:
    from aiokafka import AIOKafkaProducer

    from workers.bench.process import loghub_mix

    def alive() -> bool:
        running, workers = _fleet_running(settings)
        return running == workers

    counts = mix_counts(total)
    topics = {"log": topology.log_topic, "metric": topology.metric_topic, "event": topology.event_topic}
    skipped = [kind for kind, topic in topics.items() if topic is None]
    if skipped:
        say(f"  the topology has no raw topic for {', '.join(skipped)}: publishing logs in their place")
        counts = {"log": total, "metric": 0, "event": 0}
    log_topic, metric_topic, event_topic = topology.log_topic, topology.metric_topic or "", topology.event_topic or ""
    now = time.time()
    load = interleave(
        log_messages(log_topic, loghub_mix(data, counts["log"]), topology),
        keyed_messages("metric", metric_topic, metric_lines(counts["metric"], marker, now), topology),
        keyed_messages("event", event_topic, event_lines(counts["event"], f"bench-{marker}", now), topology))
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all", linger_ms=5,
                                max_batch_size=1 << 20)
    await producer.start()
    try:
        warmup = []
        for kind, topic in topics.items():
            if topic is not None:
                for partition in sorted(await producer.partitions_for(topic)):
                    warmup += _warmup_message(kind, topic, partition, topology, data, f"{marker}-warmup-{partition}")
        async with StoreReader(settings) as reader:
            say(f"  warm-up: {len(warmup)} record(s), one per raw partition")
            began = time.perf_counter()
            warm_targets = targets_for(reader, await publish(producer, warmup))
            if not await wait_for(warm_targets, began, WARMUP_TIMEOUT_S, alive=alive):
                raise BenchError(f"warm-up records did not reach every store in {WARMUP_TIMEOUT_S:.0f} s; "
                                 "see .polaris/run/worker-*.log")
            warmup_s = time.perf_counter() - began
            published = {kind: sum(1 for m in load if m.kind == kind) for kind in KINDS}
            say(f"  publishing {len(load):,} records: " + ", ".join(f"{n:,} {k}" for k, n in published.items()))
            started = time.perf_counter()
            sent = await publish(producer, load)
            publish_s = time.perf_counter() - started
            targets = targets_for(reader, sent)
            await wait_for(targets, started, timeout_s, say_progress=say, alive=alive)
    finally:
        await producer.stop()
    rows, overall = e2e_rows(targets, sum(1 for m in load if m.stores))
    return {"published": published, "publish_seconds": round(publish_s, 3), "warmup_seconds": round(warmup_s, 2),
            "poll_s": POLL_S, "marker": marker, "stores": rows, "overall": overall}


def _warmup_message(kind: str, topic: str, partition: int, topology: Topology, data: Path,
                    marker: str) -> list[Message]:
    """One record of `kind` for one raw partition (its own series / user, so counts stay exact)."""
    from workers.bench.process import loghub_mix

    if kind == "log":
        messages = log_messages(topic, loghub_mix(data, 1), topology)
    else:
        lines = metric_lines(1, marker, time.time()) if kind == "metric" else event_lines(1, f"bench-{marker}",
                                                                                          time.time())
        messages = keyed_messages(kind, topic, lines, topology)
    return [Message(m.kind, m.topic, m.value, m.stores, m.key, partition, m.subject) for m in messages]


def _fleet_running(settings: Settings) -> tuple[int, int]:
    """(workers running, workers of the topology), from `polaris fleet status`."""
    from workers import fleet

    lines: list[str] = []
    fleet.status(settings, lines.append)
    return sum(" running" in line for line in lines), len(lines)


# ------------------------------------------------------------------------------- command
def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--records", type=int, default=10_000, help="records to write (a tenth metrics, a tenth "
                        "events, the rest Loghub logs; Weaviate and Neo4j take the logs)")
    parser.add_argument("--batch", type=int, default=500, help="records per store write (SinkWriter flush)")
    parser.add_argument("--e2e", action="store_true",
                        help="also time --records raw records through the fleet into all stores (starts the "
                             "fleet if it is not running, and then stops it)")
    parser.add_argument("--timeout", type=float, default=900, help="--e2e: seconds to wait for the records")
    parser.add_argument("--data", type=Path, default=SHARED_DATA / "loghub")
    parser.add_argument("--json", type=Path, default=Path("bench-results/sinks.json"))


def run(args: argparse.Namespace) -> int:
    from workers.bench.process import loghub_mix

    if args.records < 1 or args.batch < 1:
        print("bench sinks: --records and --batch must be at least 1", file=sys.stderr)
        return 2
    _import_weaviate_quietly()
    settings = get_settings()
    topology = load_topology(settings.topology_file)
    run_id = f"{time.strftime('%Y%m%d%H%M%S')}-{uuid.uuid4().hex[:6]}"
    topic = f"bench.sinks.{run_id}"
    counts = mix_counts(args.records)
    now = time.time()
    say(f"== building {args.records:,} records with the process-tier enrichers")
    started = time.perf_counter()
    records = build_records(loghub_mix(args.data, counts["log"]),
                            [line for _, line in metric_lines(counts["metric"], f"{run_id}-stores", now)],
                            [line for _, line in event_lines(counts["event"], f"bench-{run_id}-stores", now)], topic)
    report: dict[str, Any] = {
        "bench": "sinks", "run": run_id, "topic": topic, "records": len(records), "batch": args.batch,
        "mix": {kind: sum(1 for r in records if r.kind == kind) for kind in KINDS},
        "build_seconds": round(time.perf_counter() - started, 2),
        "fleet_running": _fleet_running(settings)[0] > 0,
        "cpus": os.cpu_count(), "load_avg_1m_before": round(os.getloadavg()[0], 2),
    }
    code = 0
    try:
        report["stores"] = asyncio.run(bench_stores(settings, topology, records, topic=topic, batch=args.batch))
        say(format_stores(report))
        code = 1 if any("error" in row for row in report["stores"]) else 0
        if args.e2e:
            try:
                code = max(code, _run_e2e(settings, topology, args, run_id, report))
            except BenchError as exc:
                report["e2e"] = {"error": str(exc)}
                print(f"bench sinks: end to end: {exc}", file=sys.stderr)
                code = 1
    finally:
        report["load_avg_1m_after"] = round(os.getloadavg()[0], 2)
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2, default=str) + "\n")
        say(f"saved {args.json} (load average {report['load_avg_1m_after']} at the end)")
    return code


def _import_weaviate_quietly() -> None:
    """weaviate-client turns every warning category on at import (`simplefilter("default")`) and
    authlib forces its own deprecation warning: import both with the filters put back afterwards."""
    with warnings.catch_warnings():
        importlib.import_module("authlib.deprecate")  # installs an "always" filter first
        warnings.filterwarnings("ignore", message="The httpx module is deprecated")
        importlib.import_module("weaviate")


def _run_e2e(settings: Settings, topology: Topology, args: argparse.Namespace, run_id: str,
             report: dict[str, Any]) -> int:
    from workers import fleet
    from workers.topics import ensure_topics

    running, workers = _fleet_running(settings)
    if 0 < running < workers:
        raise BenchError(f"the fleet is partly running ({running} of {workers} workers): "
                         "`polaris fleet status`, then `polaris fleet up` or `down`")
    started_fleet = running == 0
    say(f"== end to end: {'starting the fleet' if started_fleet else 'the fleet is running'}")
    ensure_topics(settings)
    try:
        if started_fleet:
            fleet.up(settings, say)
        e2e = asyncio.run(bench_e2e(settings, topology, args.records, args.data, f"{run_id}-e2e",
                                    timeout_s=args.timeout))
    finally:
        if started_fleet:
            say("== stopping the fleet this bench started")
            fleet.down(settings, say)
    e2e["fleet_started"] = started_fleet
    report["e2e"] = e2e
    say(format_e2e(e2e))
    return 0 if e2e["overall"]["complete"] else 1


