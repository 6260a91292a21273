"""`polaris demo`: the stack, the fleet and a replay of real Loghub lines, watched arriving."""

from __future__ import annotations

import asyncio
import itertools
import json
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta

from sinks.postgres import migrate
from workers import fleet
from workers.evals import SHARED_DATA
from workers.settings import Settings
from workers.stack import manager
from workers.stack.process import StackError
from workers.stores import STORES, find_record, store_counts


def say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def loghub_lines(per_system: int) -> list[bytes]:
    files = sorted((SHARED_DATA / "loghub").glob("*/*_2k.log"))
    if not files:
        raise StackError(f"no Loghub samples under {SHARED_DATA / 'loghub'} (expected ../shared/data beside the repo)")
    per_file = [f.read_bytes().splitlines()[:per_system] for f in files]
    # Interleave the systems, as a shipper fed by many hosts would.
    return [line for group in itertools.zip_longest(*per_file) for line in group if line and line.strip()]


def publish(settings: Settings, topic: str, lines: list[bytes], keys: list[bytes] | None = None) -> None:
    """Publish with kcat, a Kafka client nobody here wrote (one message per line). With `keys`,
    each message gets its key (kcat's default partitioner: one key, one partition)."""
    argv = ["kcat", "-P", "-b", settings.kafka_bootstrap, "-t", topic]
    if keys is not None:
        if any(b"\t" in key or b"\n" in key for key in keys) or len(keys) != len(lines):
            raise ValueError("publish: one key per line, without tabs or newlines")
        argv += ["-K", "\t"]
        lines = [key + b"\t" + line for key, line in zip(keys, lines, strict=True)]
    done = subprocess.run(argv, input=b"\n".join(lines) + b"\n", capture_output=True, timeout=120, check=False)
    if done.returncode != 0:
        raise StackError(f"kcat could not publish to {topic}: {done.stderr.decode(errors='replace')[-500:]}")


def show_sample(settings: Settings) -> None:
    """The most anomalous record of the replay, as each store holds it."""
    import asyncpg

    async def most_anomalous() -> str | None:
        conn = await asyncpg.connect(settings.postgres_dsn.get_secret_value())
        try:
            return await conn.fetchval(  # type: ignore[no-any-return]
                "SELECT record_id FROM log_records WHERE written_at > now() - interval '10 minutes' "
                "ORDER BY anomaly_score DESC LIMIT 1")
        finally:
            await conn.close()

    record_id = asyncio.run(most_anomalous())
    if record_id is None:
        return
    found = asyncio.run(find_record(settings, record_id))
    pg, rd, neo, wv = found["postgres"], found["redis"], found["neo4j"], found["weaviate"]
    say(f"== one record, {record_id}, in each store")
    if pg:
        say(f"   postgres  {pg['ts']} {pg['level']} {pg['service']}@{pg['host']} template={pg['template']!r} "
            f"category={pg['category']} anomaly={pg['anomaly_score']:.3f}")
        say(f"             why: {pg['anomaly_reason']}")
    if rd:
        say(f"   redis     polaris:log:{record_id} -> service={rd['service']} level={rd['level']}")
    if neo:
        say(f"   neo4j     (:LogRecord)-[:FROM]->(:Service {{name: {neo['service']!r}}}) host={neo['host']!r}")
    if wv:
        vector = wv.get("_vector") or []
        say(f"   weaviate  LogRecord object, message={str(wv['message'])[:60]!r}, vector of {len(vector)} dims")


def demo_metrics_and_events(run: str) -> tuple[list[bytes], list[bytes], list[bytes], list[bytes]]:
    """Metric samples (three hosts, ten quiet hours at one a minute, then a spike on one) and user
    events (a few people browsing, one bot at 20 clicks a second), with the keys producers
    must give them: the series, the user."""
    start = datetime(2026, 11, 1, tzinfo=UTC)
    metrics, metric_keys = [], []
    for minute in range(600):
        for index in range(3):
            host = f"demo-{run}-{index}"
            value = 40.0 + 8 * index + (minute % 5) * 0.4 + (350.0 if index == 0 and minute == 590 else 0.0)
            metrics.append(json.dumps({"name": "cpu_busy_percent", "labels": {"host": host}, "value": value,
                                       "timestamp": (start + timedelta(minutes=minute)).isoformat()}).encode())
            metric_keys.append(host.encode())
    events: list[dict[str, str]] = []
    for person in range(5):
        user = f"demo-{run}-user{person}"
        events += [{"user_id": user, "event_type": kind,
                    "timestamp": (start + timedelta(minutes=person, seconds=45 * step)).isoformat()}
                   for step, kind in enumerate(["login", "view", "search", "view", "add_to_cart", "purchase"])]
    bot = f"demo-{run}-bot"
    events += [{"user_id": bot, "event_type": "view",
                "timestamp": (start + timedelta(hours=1, milliseconds=50 * step)).isoformat()} for step in range(300)]
    return (metrics, metric_keys, [json.dumps(e).encode() for e in events],
            [e["user_id"].encode() for e in events])


def show_metrics_and_events(settings: Settings, run: str, expected: tuple[int, int], timeout_s: float) -> bool:
    """Wait for the demo's samples and events in PostgreSQL, then show their strongest anomalies."""
    import asyncpg

    async def poll() -> bool:
        conn = await asyncpg.connect(settings.postgres_dsn.get_secret_value())
        try:
            started = time.monotonic()
            while True:
                samples = await conn.fetchval("SELECT count(*) FROM metric_samples WHERE series LIKE $1",
                                              f"%demo-{run}-%")
                events = await conn.fetchval("SELECT count(*) FROM user_events WHERE user_id LIKE $1", f"demo-{run}-%")
                say(f"  {time.monotonic() - started:5.1f}s  metric samples {samples}/{expected[0]}  "
                    f"user events {events}/{expected[1]}")
                if (samples, events) >= expected:
                    break
                if time.monotonic() - started > timeout_s:
                    return False
                await asyncio.sleep(2)
            rows = await conn.fetch(
                "SELECT DISTINCT ON (kind) kind, subject, score, reason FROM anomalies WHERE subject LIKE $1 "
                "ORDER BY kind, score DESC", f"%demo-{run}-%")
            for row in rows:
                say(f"   strongest {row['kind']} anomaly: {row['subject']} score {row['score']:.2f}: {row['reason']}")
            return True
        finally:
            await conn.close()

    return asyncio.run(poll())


def run_demo(settings: Settings, *, lines_per_system: int, keep_running: bool, timeout_s: float = 300) -> int:
    say("== stack")
    manager.up(settings, None, say)
    applied = asyncio.run(migrate(settings.postgres_dsn.get_secret_value()))
    say(f"  migrations applied: {applied or 'none pending'}")
    say("== fleet")
    fleet.up(settings, say)
    try:
        before = asyncio.run(store_counts(settings))
        lines = loghub_lines(lines_per_system)
        say(f"== replaying {len(lines)} Loghub lines into logs.raw with kcat")
        publish(settings, "logs.raw", lines)
        started = time.monotonic()
        while True:
            counts = asyncio.run(store_counts(settings))
            arrived = {name: counts[name] - before[name] for name in STORES}
            say(f"  {time.monotonic() - started:5.1f}s  " + "  ".join(f"{n} +{arrived[n]}" for n in STORES))
            if all(value >= len(lines) for value in arrived.values()):
                say(f"== all {len(lines)} records arrived in all four stores "
                    f"in {time.monotonic() - started:.1f}s")
                break
            if time.monotonic() - started > timeout_s:
                say(f"== timed out: not every store got {len(lines)} records; see .polaris/run/worker-*.log")
                return 1
            time.sleep(2)
        show_sample(settings)
        run = f"{int(time.time()) % 100000:05d}"
        metrics, metric_keys, events, event_keys = demo_metrics_and_events(run)
        say(f"== {len(metrics)} metric samples into metrics.raw and {len(events)} user events into events.raw")
        publish(settings, "metrics.raw", metrics, keys=metric_keys)
        publish(settings, "events.raw", events, keys=event_keys)
        if not show_metrics_and_events(settings, run, (len(metrics), len(events)), timeout_s):
            say("== timed out waiting for metric samples and events; see .polaris/run/worker-*.log")
            return 1
        say(f"   Prometheus: http://{settings.prometheus_listen}  (query polaris_sink_records_written_total)")
    finally:
        if keep_running:
            say("== the fleet keeps running: `polaris fleet down` then `polaris stack down` to stop")
        else:
            say("== stopping the fleet (the stack stays up: `polaris stack down` stops it)")
            fleet.down(settings, say)
    return 0
