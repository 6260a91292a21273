"""`polaris verify`: do the four stores hold what the enriched topic says they should?

The topic is read from its beginning to the end offsets taken at start (no consumer group,
nothing committed), deduped by record_id (a process-tier crash replay re-emits a record at new
offsets) and routed through the topology. Each store is listed (record_id and timestamp) and
every routed record falls in one of these states for it:

- due: the store's stored position has passed one of the record's offsets, so the sink has
  consumed it: it must be there, else it is **missing** (drift; `--repair` writes it);
- pending: the sink has not reached it yet (lag): not missing, and never repaired, since the
  sink itself will write it;
- expired (Redis only): appended to the topic longer ago than the log key's TTL, so its key may
  be gone legitimately;
- dead-lettered: that sink refused it (it is in `<topic>.dlq` with stage `sink.<store>`).

Held records nobody routed there are **unexpected**: either on the topic but not routed to the
store (a topology change?) or not on the topic at all (older than the topic's retention, or
written from another topic). They are reported, never deleted, and are not drift. PostgreSQL
rows above one per record_id (per table), and repeated record_ids in Neo4j and Weaviate, are
**duplicates** (drift). Only log records are countable in Redis (`polaris:log:{record_id}`);
metrics and events leave latest-state hashes only.

`--repair` writes the missing records through each sink's `repair` (its write path with the
position step left out: the records lie behind the stored position, which must not move) and
compares again.
"""

from __future__ import annotations

import asyncio
import json
import random
import sys
import time
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from pydantic import ValidationError

from schemas.records import ENRICHED_RECORD, EnrichedRecord, LogRecord
from schemas.topology import Topology, load_topology
from sinks.base import RecordRejected, RetriableError, Sink
from workers.dlq import dlq_topic
from workers.logs import get_logger
from workers.settings import Settings
from workers.sink_runner import build_sink
from workers.stores import STORES, find_record

log = get_logger(__name__)

# Which record kinds each store can be counted for (Redis keeps per-record keys for logs only).
COUNTABLE_KINDS: dict[str, frozenset[str]] = {
    "postgres": frozenset({"log", "metric", "event"}), "weaviate": frozenset({"log"}),
    "neo4j": frozenset({"log"}), "redis": frozenset({"log"}),
}
REPAIR_CHUNK = 500
STALL_S = 30.0  # no message and no end reached for this long: the topic cannot be read to its end
SHOWN_IDS = 5  # missing / unrouted ids printed per store (the JSON file holds them all)
SHOWN_BUCKETS = 30


class VerifyError(RuntimeError):
    """The topic is missing or could not be read to its end offsets."""


# --- the topic -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Message:
    partition: int
    offset: int
    timestamp_ms: int
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...] = ()


@dataclass(frozen=True, slots=True)
class TopicRecord:
    record: EnrichedRecord
    copies: tuple[tuple[int, int], ...]  # (partition, offset) of every copy on the topic
    appended_ms: int  # Kafka timestamp of the first copy: no sink saw the record earlier


@dataclass(frozen=True, slots=True)
class TopicSnapshot:
    topic: str
    end_offsets: dict[int, int]
    records: dict[str, TopicRecord]
    messages: int
    unreadable: int


def snapshot_of(topic: str, messages: Iterable[Message], end_offsets: Mapping[int, int]) -> TopicSnapshot:
    """Dedupe by record_id, keeping every copy's position (any of them may be behind a sink's position)."""
    records: dict[str, TopicRecord] = {}
    count = unreadable = 0
    for message in messages:
        count += 1
        try:
            record = ENRICHED_RECORD.validate_json(message.value or b"")
        except ValidationError:
            unreadable += 1  # the sinks dead-letter these too; nothing to expect in any store
            continue
        seen = records.get(record.record_id)
        if seen is None:
            appended = message.timestamp_ms if message.timestamp_ms >= 0 else int(record.timestamp.timestamp() * 1000)
            records[record.record_id] = TopicRecord(record, ((message.partition, message.offset),), appended)
        else:
            records[record.record_id] = TopicRecord(
                seen.record, (*seen.copies, (message.partition, message.offset)), seen.appended_ms)
    return TopicSnapshot(topic, dict(end_offsets), records, count, unreadable)


def dead_lettered(messages: Iterable[Message]) -> dict[str, set[str]]:
    """record_ids each sink dead-lettered (stage header `sink.<store>`, value = the record's JSON)."""
    dead: dict[str, set[str]] = {store: set() for store in STORES}
    for message in messages:
        stage = dict(message.headers).get("polaris.stage", b"").decode(errors="replace")
        store = stage.removeprefix("sink.")
        if not stage.startswith("sink.") or store not in dead:
            continue
        try:
            dead[store].add(ENRICHED_RECORD.validate_json(message.value or b"").record_id)
        except ValidationError:
            continue  # an unreadable record was never expected anywhere
    return dead


async def _partitions_of(settings: Settings, topic: str) -> list[int] | None:
    """The topic's partition ids, None if it does not exist. Asks for all topics: a metadata
    request naming the topic could auto-create it on a broker that allows that."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    try:
        described = await admin.describe_topics()
    finally:
        await admin.close()
    for entry in described:
        if entry["topic"] == topic:
            return sorted(int(p["partition"]) for p in entry["partitions"])
    return None


async def read_to_end(
    settings: Settings, topic: str, *, must_exist: bool = True
) -> tuple[list[Message], dict[int, int]]:
    """Every message from the beginning to the end offsets captured now (read_committed, like the sinks)."""
    partitions = await _partitions_of(settings, topic)
    if partitions is None:
        if must_exist:
            raise VerifyError(f"topic {topic!r} does not exist at {settings.kafka_bootstrap}; "
                              f"fix: name an existing topic with --topic, or run `polaris topics create`")
        return [], {}
    if not partitions:  # leaderless right after creation: nothing readable yet
        return [], {}
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap, group_id=None, enable_auto_commit=False,
        isolation_level="read_committed", auto_offset_reset="earliest",
        fetch_max_bytes=16 << 20, max_partition_fetch_bytes=8 << 20,
    )
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in partitions]
        consumer.assign(tps)
        ends: dict[TopicPartition, int] = await consumer.end_offsets(tps)
        await consumer.seek_to_beginning(*tps)
        remaining = {tp for tp in tps if await consumer.position(tp) < ends[tp]}
        messages: list[Message] = []
        progress_at = time.monotonic()
        while remaining:
            batches = await consumer.getmany(*remaining, timeout_ms=500, max_records=10_000)
            for tp, batch in batches.items():
                messages.extend(Message(tp.partition, m.offset, m.timestamp, m.value,
                                        tuple((k, bytes(v)) for k, v in m.headers or ()))
                                for m in batch if m.offset < ends[tp])
            for tp in list(remaining):
                # The position passes transaction markers too, so it reaches the end offset even
                # when the last offsets hold no record.
                if await consumer.position(tp) >= ends[tp]:
                    remaining.discard(tp)
                    consumer.pause(tp)
            if batches:
                progress_at = time.monotonic()
            elif time.monotonic() - progress_at > STALL_S:
                stuck = {tp.partition: (await consumer.position(tp), ends[tp]) for tp in remaining}
                raise VerifyError(f"{topic}: no progress for {STALL_S:.0f}s at (position, end) {stuck}")
        return messages, {tp.partition: ends[tp] for tp in tps}
    finally:
        await consumer.stop()


# --- pure comparison -------------------------------------------------------------------------


def expected_stores(record: EnrichedRecord, topology: Topology) -> set[str]:
    """The stores the topology routes a record to (the same call the sink runners make)."""
    level, service = (record.level, record.service) if isinstance(record, LogRecord) else (None, None)
    return topology.sinks_for(record.kind, level, service)


@dataclass(frozen=True, slots=True)
class Expectation:
    """The countable records routed to one store, by state (see the module docstring)."""

    due: frozenset[str] = frozenset()
    pending: frozenset[str] = frozenset()
    expired: frozenset[str] = frozenset()
    dead: frozenset[str] = frozenset()

    @property
    def routed(self) -> frozenset[str]:
        return self.due | self.pending | self.expired | self.dead


def expectations(
    records: Mapping[str, TopicRecord], topology: Topology, positions: Mapping[str, Mapping[int, int]], *,
    now_ms: int, ttl_ms: Mapping[str, int] | None = None, dead: Mapping[str, Collection[str]] | None = None,
) -> dict[str, Expectation]:
    """Per store: which routed records must be there now. `positions` are the stores' next
    offsets per partition of the topic (absent: nothing consumed yet)."""
    ttl_ms, dead = ttl_ms or {}, dead or {}
    states: dict[str, dict[str, set[str]]] = {
        store: {"due": set(), "pending": set(), "expired": set(), "dead": set()} for store in STORES}
    for record_id, topic_record in records.items():
        record = topic_record.record
        for store in expected_stores(record, topology):
            if store not in states or record.kind not in COUNTABLE_KINDS[store]:
                continue
            stored = positions.get(store, {})
            if record_id in dead.get(store, ()):
                state = "dead"
            elif not any(offset < stored.get(partition, 0) for partition, offset in topic_record.copies):
                state = "pending"
            elif store in ttl_ms and topic_record.appended_ms + ttl_ms[store] <= now_ms:
                state = "expired"
            else:
                state = "due"
            states[store][state].add(record_id)
    return {store: Expectation(**{k: frozenset(v) for k, v in by_state.items()}) for store, by_state in states.items()}


def bucket_of(ts: datetime | None, minutes: int) -> str:
    """The start of the `minutes`-wide bucket holding `ts` (UTC, ISO), or "unknown"."""
    if ts is None:
        return "unknown"
    aware = ts if ts.tzinfo is not None else ts.replace(tzinfo=UTC)  # naive store times are UTC
    width = minutes * 60
    start = datetime.fromtimestamp(int(aware.timestamp()) // width * width, tz=UTC)
    return start.strftime("%Y-%m-%dT%H:%MZ")


@dataclass(frozen=True, slots=True)
class BucketDiff:
    bucket: str
    kafka: int
    store: int


def bucket_diffs(kafka: Mapping[str, int], store: Mapping[str, int], span: tuple[str, str] | None = None,
                 ) -> list[BucketDiff]:
    """Only the buckets whose counts differ, oldest first ("unknown" last); with `span`, only
    the buckets from its first to its last (inclusive)."""
    buckets = sorted(set(kafka) | set(store), key=lambda b: (b == "unknown", b))
    if span is not None:
        buckets = [b for b in buckets if span[0] <= b <= span[1]]  # ISO labels sort as times
    return [BucketDiff(b, kafka.get(b, 0), store.get(b, 0)) for b in buckets if kafka.get(b, 0) != store.get(b, 0)]


def time_span(records: Mapping[str, TopicRecord], minutes: int) -> tuple[str, str] | None:
    """The first and last buckets of the topic's records: outside them a store can only hold
    records the topic no longer has, which the "not on the topic" count already tells."""
    if not records:
        return None
    stamps = [r.record.timestamp for r in records.values()]
    return bucket_of(min(stamps), minutes), bucket_of(max(stamps), minutes)


@dataclass(slots=True)
class StoreReport:
    store: str
    expected: int  # due records: must be there now
    present: int  # distinct record_ids the store holds
    missing: list[str]
    unrouted: list[str]  # held, on the topic, not routed to this store
    not_on_topic: int  # held, not on the topic (retention, or another topic)
    duplicates: int | None  # None: the store cannot hold a record_id twice
    pending: int = 0
    expired: int = 0
    dead_lettered: int = 0
    buckets: list[BucketDiff] = field(default_factory=list)
    sample_missing: list[str] = field(default_factory=list)

    @property
    def unexpected(self) -> int:
        return len(self.unrouted) + self.not_on_topic

    @property
    def drift(self) -> bool:
        return bool(self.missing or self.duplicates or self.sample_missing)


def diff_store(
    store: str, expectation: Expectation, held: Mapping[str, datetime | None],
    records: Mapping[str, TopicRecord], *, duplicates: int | None, bucket_minutes: int,
    span: tuple[str, str] | None = None,
) -> StoreReport:
    on_topic = held.keys() & records.keys()
    # Bucket counts compare like with like: Kafka's due records against the held records that
    # are not pending, expired or dead-lettered, so a differing bucket is missing or unexpected data.
    kafka_counts = Counter(bucket_of(records[r].record.timestamp, bucket_minutes) for r in expectation.due)
    skipped = expectation.pending | expectation.expired | expectation.dead
    store_counts = Counter(
        bucket_of(ts if ts is not None else (records[r].record.timestamp if r in records else None), bucket_minutes)
        for r, ts in held.items() if r not in skipped)
    return StoreReport(
        store=store, expected=len(expectation.due), present=len(held),
        missing=sorted(expectation.due - held.keys()), unrouted=sorted(on_topic - expectation.routed),
        not_on_topic=len(held) - len(on_topic), duplicates=duplicates,
        pending=len(expectation.pending), expired=len(expectation.expired), dead_lettered=len(expectation.dead),
        buckets=bucket_diffs(kafka_counts, store_counts, span),
    )


@dataclass(slots=True)
class VerifyReport:
    topic: str
    messages: int
    records: int
    unreadable: int
    bucket_minutes: int
    stores: list[StoreReport]
    sampled: int = 0

    @property
    def drift(self) -> bool:
        return any(store.drift for store in self.stores)

    def store(self, name: str) -> StoreReport:
        return next(s for s in self.stores if s.store == name)

    def to_json(self) -> dict[str, Any]:
        stores = {}
        for s in self.stores:
            figures = asdict(s)
            figures.pop("store")
            stores[s.store] = {**figures, "unexpected": s.unexpected, "drift": s.drift}
        return {"topic": self.topic, "messages": self.messages, "records": self.records,
                "unreadable": self.unreadable, "bucket_minutes": self.bucket_minutes, "sampled": self.sampled,
                "drift": self.drift, "stores": stores}


@dataclass(slots=True)
class RepairResult:
    written: dict[str, int] = field(default_factory=dict)
    rejected: dict[str, dict[str, str]] = field(default_factory=dict)  # store -> record_id -> reason


# --- rendering -------------------------------------------------------------------------------


def _cell(value: int | None) -> str:
    return "-" if value is None else str(value)


def render(report: VerifyReport) -> list[str]:
    """The human report: one row per store, then only what needs a look."""
    lines = [f"topic {report.topic}: {report.messages} messages, {report.records} distinct records"
             + (f", {report.unreadable} unreadable" if report.unreadable else "")]
    header = ("store", "expected", "present", "missing", "unexpected", "duplicates", "pending", "expired", "dlq")
    rows = [header] + [
        (s.store, str(s.expected), str(s.present), str(len(s.missing)), str(s.unexpected), _cell(s.duplicates),
         str(s.pending), str(s.expired) if s.store == "redis" else "-", str(s.dead_lettered))
        for s in report.stores]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines += ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True)))
              for row in rows]
    for s in report.stores:
        if s.missing:
            more = f" (+{len(s.missing) - SHOWN_IDS} more)" if len(s.missing) > SHOWN_IDS else ""
            lines.append(f"{s.store}: missing {', '.join(s.missing[:SHOWN_IDS])}{more}")
        if s.unrouted:
            lines.append(f"{s.store}: {len(s.unrouted)} held record(s) on the topic are not routed to it "
                         f"(a topology change?), e.g. {', '.join(s.unrouted[:SHOWN_IDS])}")
        if s.not_on_topic:
            lines.append(f"{s.store}: {s.not_on_topic} held record(s) are not on the topic: older than its "
                         f"retention, or written from another topic (reported only)")
        if s.sample_missing:
            lines.append(f"{s.store}: sampled ids not found by lookup: {', '.join(s.sample_missing[:SHOWN_IDS])}")
    differing = [(s.store, b) for s in report.stores for b in s.buckets]
    if differing:
        lines.append(f"buckets that differ ({report.bucket_minutes} min, within the topic's time span; "
                     f"kafka = due records, store = held):")
        lines.append(f"  {'store':<9} {'bucket':<17} {'kafka':>7} {'store':>7}")
        lines += [f"  {name:<9} {b.bucket:<17} {b.kafka:>7} {b.store:>7}" for name, b in differing[:SHOWN_BUCKETS]]
        if len(differing) > SHOWN_BUCKETS:
            lines.append(f"  ... {len(differing) - SHOWN_BUCKETS} more (see --json)")
    if report.sampled:
        misses = sum(len(s.sample_missing) for s in report.stores)
        lines.append(f"sample: {report.sampled} due id(s) looked up one by one: "
                     + ("all found" if not misses else f"{misses} not found"))
    pending = sum(s.pending for s in report.stores)
    if pending:
        lines.append(f"{pending} routed record(s) are past a sink's stored position (sink lag): not checked yet")
    lines.append("drift: " + (", ".join(f"{s.store} ({len(s.missing)} missing, {s.duplicates or 0} duplicates)"
                                        for s in report.stores if s.drift) if report.drift else "none"))
    return lines


# --- the stores ------------------------------------------------------------------------------


async def open_sinks(settings: Settings, names: Sequence[str] = STORES) -> dict[str, Sink]:
    """The sinks as the fleet builds them (`build_sink`), started; all closed if one fails."""
    sinks = {name: build_sink(settings, name) for name in names}
    try:
        await asyncio.gather(*(sink.start() for sink in sinks.values()))
    except BaseException:
        await close_sinks(sinks)
        raise
    return sinks


async def close_sinks(sinks: Mapping[str, Sink]) -> None:
    await asyncio.gather(*(sink.close() for sink in sinks.values()), return_exceptions=True)


async def held_records(sink: Sink) -> tuple[dict[str, datetime | None], int | None]:
    """The record_ids a store holds with their timestamps, and its duplicate count (None: impossible)."""
    try:
        if sink.name == "postgres":
            return await _postgres_held(sink)
        if sink.name == "neo4j":
            from sinks.neo4j import Neo4jSink

            assert isinstance(sink, Neo4jSink)
            return {record_id: ts async for record_id, ts in sink.held_records()}, await sink.duplicate_records()
        if sink.name == "weaviate":
            from sinks.weaviate import WeaviateSink

            assert isinstance(sink, WeaviateSink)
            listed = [item async for item in sink.held_records()]
            held = dict(listed)
            return held, len(listed) - len(held)
        if sink.name == "redis":
            return await _redis_held(sink), None
    except RetriableError:
        raise
    except Exception as exc:  # a driver's own error type: the store cannot be listed right now
        raise RetriableError(f"{sink.name}: cannot list records: {exc.__class__.__name__}: {exc}") from exc
    raise ValueError(f"unknown store {sink.name!r}")


async def _postgres_held(sink: Sink) -> tuple[dict[str, datetime | None], int]:
    from sinks.postgres import TABLES, PostgresSink

    assert isinstance(sink, PostgresSink)
    held: dict[str, datetime | None] = {}
    duplicates = 0
    async with sink.pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
        for table in TABLES.values():  # one snapshot for the ids and the duplicate counts
            for row in await conn.fetch(f"SELECT record_id, ts FROM {table.name}"):
                held[row["record_id"]] = row["ts"]
            duplicates += int(await conn.fetchval(
                f"SELECT count(*) - count(DISTINCT record_id) FROM {table.name}"))
    return held, duplicates


async def _redis_held(sink: Sink) -> dict[str, datetime | None]:
    from sinks.redis import RedisSink, record_key

    assert isinstance(sink, RedisSink)
    prefix = record_key("")
    # Strings only: `polaris:log:{service}:anomalies` sorted sets share the prefix.
    keys = [key async for key in sink.client.scan_iter(match=f"{prefix}*", count=1000, _type="string")]
    held: dict[str, datetime | None] = {}
    for start in range(0, len(keys), 1000):
        chunk = keys[start:start + 1000]
        for key, raw in zip(chunk, await sink.client.mget(chunk), strict=True):
            if raw is None:
                continue  # expired between SCAN and MGET
            name = key.decode() if isinstance(key, bytes) else str(key)
            try:
                stamp: datetime | None = datetime.fromisoformat(json.loads(raw)["ts"])
            except (ValueError, KeyError, TypeError):
                stamp = None
            held[name.removeprefix(prefix)] = stamp
    return held


def _ttl_ms(sinks: Mapping[str, Sink]) -> dict[str, int]:
    from sinks.redis import RedisSink

    redis = sinks.get("redis")
    return {"redis": redis.record_ttl_s * 1000} if isinstance(redis, RedisSink) else {}


async def compare(
    settings: Settings, sinks: Mapping[str, Sink], snapshot: TopicSnapshot, topology: Topology, *,
    dead: Mapping[str, Collection[str]] | None = None, bucket_minutes: int = 60, sample: int = 0,
    rng: random.Random | None = None,
) -> VerifyReport:
    partitions = sorted(snapshot.end_offsets)
    # Positions before listings: a record the sink writes in between then shows as pending or
    # present, never as missing.
    positions: dict[str, dict[int, int]] = {}
    for name, sink in sinks.items():
        stored = await sink.committed_offsets(snapshot.topic, partitions)
        positions[name] = {partition: position.next_offset for partition, position in stored.items()}
    plan = expectations(snapshot.records, topology, positions, now_ms=int(time.time() * 1000),
                        ttl_ms=_ttl_ms(sinks), dead=dead)
    listed = dict(zip(sinks, await asyncio.gather(*(held_records(sink) for sink in sinks.values())), strict=True))
    span = time_span(snapshot.records, bucket_minutes) or ("", "")  # an empty topic: no bucket to compare
    reports = [diff_store(name, plan[name], held, snapshot.records, duplicates=duplicates,
                          bucket_minutes=bucket_minutes, span=span) for name, (held, duplicates) in listed.items()]
    report = VerifyReport(snapshot.topic, snapshot.messages, len(snapshot.records), snapshot.unreadable,
                          bucket_minutes, reports)
    if sample > 0:
        await _sample(settings, report, plan, sample, rng or random.Random())
    return report


async def _sample(settings: Settings, report: VerifyReport, plan: Mapping[str, Expectation], n: int,
                  rng: random.Random) -> None:
    """Point lookups (`find_record`) of random due ids: a check of the bulk listings themselves."""
    due = sorted(set[str]().union(*(plan[s.store].due for s in report.stores)))
    chosen = rng.sample(due, min(n, len(due)))
    for record_id in chosen:
        found = await find_record(settings, record_id)
        for store in report.stores:
            if record_id in plan[store.store].due and not found.get(store.store):
                store.sample_missing.append(record_id)
    report.sampled = len(chosen)


async def repair_missing(sinks: Mapping[str, Sink], report: VerifyReport, snapshot: TopicSnapshot) -> RepairResult:
    """Write each store's missing records through its sink's `repair` (no position moves)."""
    result = RepairResult()
    for store in report.stores:
        if not store.missing:
            continue
        sink, records = sinks[store.store], [snapshot.records[r].record for r in store.missing]
        written, rejected = 0, {}
        for start in range(0, len(records), REPAIR_CHUNK):
            chunk = records[start:start + REPAIR_CHUNK]
            try:
                await sink.repair(chunk)
                written += len(chunk)
            except RecordRejected:
                for record in chunk:  # find the refused ones, write the rest
                    try:
                        await sink.repair([record])
                        written += 1
                    except RecordRejected as exc:
                        rejected[record.record_id] = exc.reason
        result.written[store.store] = written
        if rejected:
            result.rejected[store.store] = rejected
        log.info("repaired", store=store.store, written=written, rejected=len(rejected))
    return result


@dataclass(slots=True)
class VerifyRun:
    before: VerifyReport
    repair: RepairResult | None = None
    after: VerifyReport | None = None

    @property
    def final(self) -> VerifyReport:
        return self.after or self.before

    def to_json(self) -> dict[str, Any]:
        out = self.before.to_json()
        if self.repair is not None:
            out["repair"] = asdict(self.repair)
        if self.after is not None:
            out["after_repair"] = self.after.to_json()
        return out


async def verify(
    settings: Settings, *, topic: str | None = None, bucket_minutes: int = 60, sample: int = 0,
    repair: bool = False, topology: Topology | None = None, rng: random.Random | None = None,
) -> VerifyRun:
    """Compare the stores with the topic (and, with `repair`, fix the missing and compare again)."""
    if bucket_minutes < 1:
        raise ValueError(f"bucket_minutes must be >= 1 (got {bucket_minutes})")
    topology = topology or load_topology(settings.topology_file)
    topic = topic or topology.enriched_topic
    messages, ends = await read_to_end(settings, topic)
    snapshot = snapshot_of(topic, messages, ends)
    dead = dead_lettered((await read_to_end(settings, dlq_topic(topic), must_exist=False))[0])
    log.info("topic read", topic=topic, messages=snapshot.messages, records=len(snapshot.records), end_offsets=ends)
    sinks = await open_sinks(settings)
    try:
        before = await compare(settings, sinks, snapshot, topology, dead=dead, bucket_minutes=bucket_minutes,
                               sample=sample, rng=rng)
        if not repair or not any(s.missing for s in before.stores):
            return VerifyRun(before)
        result = await repair_missing(sinks, before, snapshot)
        after = await compare(settings, sinks, snapshot, topology, dead=dead, bucket_minutes=bucket_minutes,
                              sample=sample, rng=rng)
        return VerifyRun(before, result, after)
    finally:
        await close_sinks(sinks)


def run(settings: Settings, *, topic: str | None, bucket_minutes: int, sample: int, repair: bool,
        json_file: Path | None, say: Callable[[str], None]) -> int:
    """`polaris verify`: 0 no drift, 1 drift (after the repair, with --repair), 2 cannot verify."""
    try:
        outcome = asyncio.run(verify(settings, topic=topic, bucket_minutes=bucket_minutes, sample=sample,
                                     repair=repair))
    except (VerifyError, RetriableError) as exc:
        print(f"polaris verify: {exc}", file=sys.stderr)
        return 2
    for line in render(outcome.before):
        say(line)
    if outcome.repair is not None and outcome.after is not None:
        say("repair: " + ", ".join(f"{store} {n} written" for store, n in outcome.repair.written.items())
            + "".join(f"; {store} refused {len(ids)}: {next(iter(ids.values()))}"
                      for store, ids in outcome.repair.rejected.items()))
        say("after repair:")
        for line in render(outcome.after):
            say(line)
    elif repair:
        say("repair: nothing missing")
    if json_file is not None:
        json_file.write_text(json.dumps(outcome.to_json(), indent=2, default=str) + "\n")
        say(f"wrote {json_file}")
    return 1 if outcome.final.drift else 0
