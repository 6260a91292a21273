"""`polaris chaos`: try hard to break exactly-once, then count what was lost or doubled.

A private fleet (its own topics, Faust app id and sink consumer groups, so it never touches
the demo fleet's data) gets a mixed load of logs, metric samples and user events published
with kcat in waves. While the records flow, every worker — the process tier and each sink —
is killed with SIGKILL at random moments and restarted, and one store (PostgreSQL) is
restarted. When the fleet has caught up, each store is compared with what its routes name,
record by record, and the counters the stores keep (Neo4j relationship counts, Redis
per-service level counters and per-user event counters, the latest sample of each metric
series) with the true counts computed from the records themselves.

The records' truth is the enriched topic, read whole and de-duplicated by record_id: it also
shows how many records the process tier emitted twice after its kills (they must be
identical, and the stores must hold them once).
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml
from aiokafka import AIOKafkaConsumer, TopicPartition

from schemas.records import ENRICHED_RECORD, EventRecord, LogRecord, MetricRecord
from schemas.topology import Topology, load_topology
from sinks.base import origin_mark
from workers.bench.process import loghub_mix
from workers.demo import publish
from workers.settings import Settings
from workers.topics import ensure_topics

Say = Callable[[str], None]
ROLES: tuple[tuple[str, ...], ...] = (("process",), ("sink", "postgres"), ("sink", "weaviate"),
                                      ("sink", "neo4j"), ("sink", "redis"))
PARTITIONS = 2
BAD_LINES = 20  # malformed metric samples and events: each must reach a DLQ, none a store


@dataclass
class ChaosReport:
    records: dict[str, int] = field(default_factory=dict)  # published per kind
    kills: dict[str, int] = field(default_factory=dict)  # SIGKILLs per worker
    store_restarts: list[str] = field(default_factory=list)
    expected: dict[str, int] = field(default_factory=dict)  # per store
    missing: dict[str, int] = field(default_factory=dict)
    duplicated: dict[str, int] = field(default_factory=dict)
    unexpected: dict[str, int] = field(default_factory=dict)
    counters_checked: dict[str, int] = field(default_factory=dict)
    wrong_counters: dict[str, int] = field(default_factory=dict)
    wrong_examples: list[str] = field(default_factory=list)
    dead_lettered: int = 0
    dead_letters_expected: int = BAD_LINES
    reemitted: int = 0  # records the process tier emitted more than once (after its kills)
    reemitted_differing: int = 0  # ... whose copies differ (must be 0)
    catch_up_s: float = 0.0
    wall_s: float = 0.0

    def failures(self) -> list[str]:
        problems = [f"{store}: {n} missing" for store, n in self.missing.items() if n]
        problems += [f"{store}: {n} duplicated" for store, n in self.duplicated.items() if n]
        problems += [f"{store}: {n} not routed there" for store, n in self.unexpected.items() if n]
        problems += [f"{kind}: {n} wrong counters" for kind, n in self.wrong_counters.items() if n]
        if self.reemitted_differing:
            problems.append(f"{self.reemitted_differing} re-emitted records differ from their first copy")
        if self.dead_lettered != self.dead_letters_expected:
            problems.append(f"{self.dead_lettered} dead letters, expected {self.dead_letters_expected}")
        return problems


# -- the load ---------------------------------------------------------------------------------

def chaos_load(run: str, logs: int, metrics: int, events: int, loghub: Path) -> dict[str, list[bytes]]:
    """Logs: half real Loghub lines, half syslog lines of services and hosts unique to this run
    (their counters are checked exactly), some with Java exception chains. Metrics: JSON
    samples of per-host series, one per line. Events: JSON user events. Plus `BAD_LINES`
    malformed metric and event lines, which belong in the DLQs."""
    rng = random.Random(run)
    real = loghub_mix(loghub, logs - logs // 2)
    start = datetime(2026, 11, 20, tzinfo=UTC)
    synthetic = []
    for i in range(logs // 2):
        service, host = f"chaos{run}svc{i % 7}", f"chaos{run}h{i % 5}"
        stamp = (start + timedelta(seconds=i)).strftime("%b %d %H:%M:%S")
        body = rng.choice([
            f"request {i} served in {rng.randint(1, 900)} ms",
            f"order write failed: chaos{run}.db.OrderWriteException: timeout; "
            f"Caused by: chaos{run}.net.ReadTimeoutException: read timed out",
            f"user u{i % 40} logged in from 10.1.{i % 250}.{i % 200}",
            f"ERROR java.lang.IllegalStateException: queue full (size {i % 100})",
            f"redis GET timed out after {rng.randint(100, 900)} ms; falling back to mysql",
            f"upstream nginx returned 502 for request {i}",
        ])
        synthetic.append(f"<{11 + (i % 5)}>{stamp} {host} {service}[{100 + i % 9}]: {body}".encode())
    log_lines = [line for pair in zip(real, synthetic, strict=False) for line in pair]
    metric_lines = [json.dumps({
        "name": "chaos_cpu_percent", "labels": {"host": f"chaos{run}h{i % 12}"},
        "value": round(40 + 10 * rng.random() + (300 if i % 997 == 500 else 0), 3),
        "timestamp": (start + timedelta(seconds=10 * (i // 12))).isoformat()}).encode() for i in range(metrics)]
    kinds = ["login", "view", "view", "search", "add_to_cart", "purchase", "logout"]
    event_lines = [json.dumps({
        "user_id": f"chaos{run}u{i % 60}", "event_type": rng.choice(kinds),
        "timestamp": (start + timedelta(seconds=3 * i)).isoformat()}).encode() for i in range(events)]
    for i in range(BAD_LINES):  # spread through the stream: a poison line must not block the rest
        target = metric_lines if i % 2 else event_lines
        target.insert(rng.randrange(len(target) + 1), b'{"name": "broken", "value": "not a number"}' if i % 2
                      else b'{"event_type": "view"}')
    return {"logs": log_lines, "metrics": metric_lines, "events": event_lines}


def chaos_topology(run: str, base: Topology) -> dict[str, Any]:
    """The base topology's routes over topics private to this run."""
    prefix = f"chaos-{run}"
    return {
        "raw_topics": {f"{prefix}.{kind}": {"partitions": PARTITIONS} for kind in ("logs", "metrics", "events")},
        "log_topic": f"{prefix}.logs", "metric_topic": f"{prefix}.metrics", "event_topic": f"{prefix}.events",
        "enriched_topic": f"{prefix}.enriched", "enriched": {"partitions": PARTITIONS},
        "routes": [route.model_dump(mode="json", exclude_none=True) for route in base.routes],
    }


# -- the workers ------------------------------------------------------------------------------

class Worker:
    """One fleet worker as a child process that can be killed with SIGKILL and restarted."""

    def __init__(self, role: Sequence[str], env: dict[str, str], log_dir: Path) -> None:
        self.role, self.env, self.name = tuple(role), env, "-".join(role)
        self.log_file = log_dir / f"{self.name}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log_file.open("ab") as out:
            self.proc = subprocess.Popen([sys.executable, "-m", "workers.cli", "worker", *self.role], env=self.env,
                                         stdout=out, stderr=subprocess.STDOUT, start_new_session=True)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def ensure_running(self) -> bool:
        """Restart a worker that exited on its own (a crash-only worker may exit on a store error)."""
        if self.proc is None or self.proc.poll() is not None:
            self.start()
            return True
        return False

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()


# -- reading the truth and the stores ----------------------------------------------------------

async def _read_topic(settings: Settings, topic: str) -> list[tuple[bytes | None, list[tuple[str, bytes]]]]:
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, enable_auto_commit=False,
                                max_partition_fetch_bytes=8 << 20)
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        end = await consumer.end_offsets(partitions)
        values: list[tuple[bytes | None, list[tuple[str, bytes]]]] = []
        async def behind() -> bool:
            return any([await consumer.position(tp) < end[tp] for tp in partitions])

        while await behind():
            for messages in (await consumer.getmany(timeout_ms=1000, max_records=10000)).values():
                values += [(m.value, list(m.headers or ())) for m in messages if m.offset < end[TopicPartition(
                    m.topic, m.partition)]]
        return values
    finally:
        await consumer.stop()


async def _end_offsets(settings: Settings, topic: str) -> dict[int, int]:
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap)
    await consumer.start()
    try:
        ends = await consumer.end_offsets([TopicPartition(topic, p) for p in range(PARTITIONS)])
        return {tp.partition: offset for tp, offset in ends.items()}
    finally:
        await consumer.stop()


async def _held(settings: Settings) -> dict[str, tuple[set[str], int]]:
    """Each store's record ids and its duplicate count, listed as `polaris verify` lists them."""
    from workers.verify import close_sinks, held_records, open_sinks

    sinks = await open_sinks(settings)
    try:
        held = {name: await held_records(sink) for name, sink in sinks.items()}
    finally:
        await close_sinks(sinks)
    return {name: (set(ids), duplicates or 0) for name, (ids, duplicates) in held.items()}


async def _true_vs_stored_counters(settings: Settings, run: str, records: Sequence[Any]) -> dict[str, list[str]]:
    """Counter name -> list of mismatches ("key: stored != true"), per store."""
    import redis.asyncio as aioredis

    from sinks.neo4j import graph_rows_for_counting  # the sink's own pure mapping: the truth it must reach

    logs = [r for r in records if isinstance(r, LogRecord) and (r.service or "").startswith(f"chaos{run}")]
    events = [r for r in records if isinstance(r, EventRecord)]
    metrics = [r for r in records if isinstance(r, MetricRecord)]
    wrong: dict[str, list[str]] = {"neo4j": [], "redis": []}
    checked: dict[str, int] = {"neo4j": 0, "redis": 0}

    prefix = f"chaos{run}"
    true_edges: Counter[tuple[str, str, str]] = Counter()
    for record in logs:  # the edges `stored_edge_counts` selects: an end named after this run
        true_edges.update(edge for edge in graph_rows_for_counting(record)
                          if edge[1].startswith(prefix) or edge[2].startswith(prefix))
    stored_edges = await _neo4j_edge_counts(settings, f"chaos{run}")
    for edge in set(true_edges) | set(stored_edges):
        checked["neo4j"] += 1
        if true_edges[edge] != stored_edges.get(edge, 0):
            wrong["neo4j"].append(f"{edge}: stored {stored_edges.get(edge, 0)} != true {true_edges[edge]}")

    client = aioredis.from_url(settings.redis_url)
    try:
        levels: dict[str, Counter[str]] = defaultdict(Counter)
        for record in logs:
            levels[record.service or "unknown"][record.level or "NONE"] += 1
        per_user: dict[str, Counter[str]] = defaultdict(Counter)
        for event in events:
            per_user[event.user_id][event.event_type] += 1
        latest: dict[str, MetricRecord] = {}
        for sample in sorted(metrics, key=lambda m: m.timestamp):
            latest[sample.series] = sample  # "latest" is by event time, whatever order the partitions arrive in
        for key, truth in [*((f"polaris:service:{s}:levels", c) for s, c in levels.items()),
                           *((f"polaris:user:{u}:events", c) for u, c in per_user.items())]:
            stored = {_text(k): int(v) for k, v in (await client.hgetall(key)).items()}
            checked["redis"] += 1
            if stored != dict(truth):
                wrong["redis"].append(f"{key}: stored {stored} != true {dict(truth)}")
        for series, sample in latest.items():
            stored_id = await client.hget(f"polaris:metric:{series}:latest", "record_id")
            checked["redis"] += 1
            if _text(stored_id or b"") != sample.record_id:
                wrong["redis"].append(f"latest of {series}: stored {stored_id!r} != true {sample.record_id}")
    finally:
        await client.aclose()
    wrong["checked"] = [f"{store}={n}" for store, n in checked.items()]
    return wrong


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


async def _neo4j_edge_counts(settings: Settings, prefix: str) -> dict[tuple[str, str, str], int]:
    from sinks.neo4j import stored_edge_counts

    return await stored_edge_counts(settings.neo4j_uri, settings.neo4j_user,
                                    settings.neo4j_password.get_secret_value(), prefix)


# -- the run ------------------------------------------------------------------------------------

def run_chaos(settings: Settings, say: Say, *, records: int = 20_000, kills: int = 5, seed: int | None = None,
              loghub: Path | None = None, catch_up_timeout_s: float = 600) -> ChaosReport:
    from workers.evals import SHARED_DATA
    from workers.stack import manager

    started = time.monotonic()
    run = uuid.uuid4().hex[:8]
    rng = random.Random(seed if seed is not None else run)
    report = ChaosReport()
    work_dir = settings.stack_home / "chaos" / run
    work_dir.mkdir(parents=True, exist_ok=True)
    topology_path = work_dir / "topology.yaml"
    topology_path.write_text(yaml.safe_dump(chaos_topology(run, load_topology(settings.topology_file))))
    topology = load_topology(topology_path)
    private = settings.model_copy(update={"topology_file": topology_path, "process_app_id": f"chaos-{run}",
                                          "sink_group_prefix": f"chaos-{run}-sink"})
    ensure_topics(private)
    env = {**os.environ, **{k: v for k, v in os.environ.items() if k.startswith("POLARIS_")},
           "POLARIS_TOPOLOGY_FILE": str(topology_path), "POLARIS_PROCESS_APP_ID": private.process_app_id,
           "POLARIS_SINK_GROUP_PREFIX": private.sink_group_prefix, "POLARIS_METRICS_PORT": "0",
           # Rare commits: a kill always leaves delivered-but-uncommitted records to replay.
           "POLARIS_PROCESS_COMMIT_EVERY": "2000", "POLARIS_PROCESS_COMMIT_INTERVAL_S": "15"}
    workers = [Worker(role, env, work_dir) for role in ROLES]
    report.kills = {w.name: 0 for w in workers}

    n_logs, n_metrics = records * 6 // 10, records * 25 // 100
    load = chaos_load(run, n_logs, n_metrics, records - n_logs - n_metrics, loghub or SHARED_DATA / "loghub")
    report.records = {kind: len(lines) for kind, lines in load.items()}
    topics = {"logs": topology.log_topic, "metrics": topology.metric_topic, "events": topology.event_topic}
    say(f"chaos run {run}: {sum(report.records.values())} lines "
        f"({', '.join(f'{n} {k}' for k, n in report.records.items())}), workers' logs in {work_dir}")

    waves = kills + 2
    try:
        for worker in workers:
            worker.start()
        for wave in range(waves):
            for kind, lines in load.items():
                share = lines[wave * len(lines) // waves:(wave + 1) * len(lines) // waves]
                publish(private, str(topics[kind]), share)
            if wave >= kills:
                continue
            # Each worker dies once per wave, at its own random moment; the first seconds let the
            # restarted ones get back to work, so kills land mid-batch, not only mid-start-up.
            moments = sorted((rng.uniform(4.0, 14.0), w) for w in workers)
            clock = 0.0
            for moment, worker in moments:
                time.sleep(moment - clock)
                clock = moment
                worker.kill()
                report.kills[worker.name] += 1
                time.sleep(rng.uniform(0.2, 2.0))
                worker.start()
            if wave == kills // 2:
                say("  restarting postgres ...")
                manager.down(settings, ["postgres"], lambda _: None)
                time.sleep(rng.uniform(1.0, 4.0))
                manager.up(settings, ["postgres"], lambda _: None)
                report.store_restarts.append("postgres")
            say(f"  wave {wave + 1}/{kills}: killed {', '.join(w.name for _, w in moments)}")
        report.catch_up_s = _wait_until_caught_up(private, topology, workers, report, say, catch_up_timeout_s)
        _check(private, topology, run, report)
    finally:
        for worker in workers:
            worker.stop()
    report.wall_s = round(time.monotonic() - started, 1)
    return report


def _expected_ids(settings: Settings, topology: Topology) -> dict[str, int]:
    ends: dict[str, int] = {}
    for topic in (topology.log_topic, topology.metric_topic, topology.event_topic):
        assert topic is not None
        ends.update({f"{topic}/{p}": n for p, n in asyncio.run(_end_offsets(settings, topic)).items()})
    return ends


def _wait_until_caught_up(settings: Settings, topology: Topology, workers: list[Worker], report: ChaosReport,
                          say: Say, timeout_s: float) -> float:
    """Until every store holds every record routed to it (or the timeout), restarting any worker
    that exited by itself (crash-only workers exit on errors they cannot handle)."""
    started = time.monotonic()
    while True:
        for worker in workers:
            if worker.ensure_running():
                say(f"  {worker.name} had exited; restarted")
        truth = _truth(settings, topology)
        if truth is None:
            say("  catching up: the process tier has not emitted every raw record yet")
        else:
            held = asyncio.run(_held(settings))
            missing = {store: sum(1 for i in ids if i not in held[store][0]) for store, ids in truth.routed.items()}
            if not any(missing.values()):
                return round(time.monotonic() - started, 1)
            say(f"  catching up: missing {missing}")
        if time.monotonic() - started > timeout_s:
            say(f"  not caught up after {timeout_s:.0f}s")
            return round(time.monotonic() - started, 1)
        time.sleep(5)


@dataclass
class _Truth:
    records: list[Any]  # one per record_id, first copy
    ids: set[str]
    routed: dict[str, list[str]]  # store -> record ids its routes name
    reemitted: int
    differing: int


def _truth(settings: Settings, topology: Topology) -> _Truth | None:
    """The enriched topic, de-duplicated; None while the process tier has not emitted every raw record."""
    raw_ends = _expected_ids(settings, topology)
    values = asyncio.run(_read_topic(settings, topology.enriched_topic))
    first: dict[str, Any] = {}
    copies: dict[str, bytes] = {}
    reemitted = differing = 0
    for value, _ in values:
        record = ENRICHED_RECORD.validate_json(value or b"")
        if record.record_id in first:
            reemitted += 1
            differing += copies[record.record_id] != value
            continue
        first[record.record_id] = record
        copies[record.record_id] = value or b""
    # Every raw line ends as records (sample 0 of it counted) or as a dead letter.
    covered = Counter(key for key, (_, index) in map(origin_mark, first.values()) if index == 0)
    covered.update(f"{topic}/{partition}" for topic, partition, _ in _dead_letters(settings, topology))
    if any(covered[key] < end for key, end in raw_ends.items()):
        return None
    routed: dict[str, list[str]] = {store: [] for store in ("postgres", "weaviate", "neo4j", "redis")}
    for record in first.values():
        level = record.level if isinstance(record, LogRecord) else None
        service = record.service if isinstance(record, LogRecord) else None
        for store in topology.sinks_for(record.kind, level, service):
            routed[store].append(record.record_id)
    # Redis keeps a key per log record only; metric and event records are checked by their state.
    routed["redis"] = [i for i in routed["redis"] if isinstance(first[i], LogRecord)]
    return _Truth(list(first.values()), set(first), routed, reemitted, differing)


def _dead_letters(settings: Settings, topology: Topology) -> set[tuple[str, int, int]]:
    """Distinct raw positions in the raw topics' DLQs (a replay may dead-letter a line twice)."""
    found: set[tuple[str, int, int]] = set()
    for topic in (topology.log_topic, topology.metric_topic, topology.event_topic):
        for _, headers in asyncio.run(_read_topic(settings, f"{topic}.dlq")):
            h = dict(headers)
            found.add((h["polaris.origin.topic"].decode(), int(h["polaris.origin.partition"]),
                       int(h["polaris.origin.offset"])))
    return found


def _check(settings: Settings, topology: Topology, run: str, report: ChaosReport) -> None:
    truth = _truth(settings, topology)
    if truth is None:
        report.missing = {"process": 1}
        return
    report.reemitted, report.reemitted_differing = truth.reemitted, truth.differing
    held = asyncio.run(_held(settings))
    for store, ids in truth.routed.items():
        routed = set(ids)
        mine = {i for i in held[store][0] if i in truth.ids}  # this run's records only
        report.expected[store] = len(routed)
        report.missing[store] = len(routed - mine)
        report.unexpected[store] = len(mine - routed)
        report.duplicated[store] = held[store][1]  # store-wide: any duplicate at all is a failure
    wrong = asyncio.run(_true_vs_stored_counters(settings, run, truth.records))
    checked = dict(item.split("=") for item in wrong.pop("checked"))
    report.counters_checked = {store: int(n) for store, n in checked.items()}
    report.wrong_counters = {store: len(items) for store, items in wrong.items()}
    report.wrong_examples = [item for items in wrong.values() for item in items[:5]]
    report.dead_lettered = len(_dead_letters(settings, topology))


def print_report(report: ChaosReport, say: Say) -> None:
    say(f"records published: {report.records}  (+ {report.dead_letters_expected} malformed among them)")
    say(f"kills (SIGKILL): {report.kills}; store restarts: {report.store_restarts or 'none'}")
    say(f"process tier re-emitted {report.reemitted} records after its kills "
        f"({report.reemitted_differing} differing from their first copy)")
    say(f"{'store':<10}{'expected':>10}{'missing':>9}{'duplicated':>12}{'counters':>10}{'wrong':>7}")
    for store in ("postgres", "weaviate", "neo4j", "redis"):
        say(f"{store:<10}{report.expected.get(store, 0):>10}{report.missing.get(store, 0):>9}"
            f"{report.duplicated.get(store, 0):>12}{report.counters_checked.get(store, 0):>10}"
            f"{report.wrong_counters.get(store, 0):>7}")
    say(f"dead letters: {report.dead_lettered} distinct of {report.dead_letters_expected} malformed lines")
    say(f"caught up {report.catch_up_s}s after the last wave; wall {report.wall_s}s")
    for example in report.wrong_examples:
        say(f"  wrong: {example}")
    problems = report.failures()
    say("RESULT: " + ("exactly once held" if not problems else "; ".join(problems)))
