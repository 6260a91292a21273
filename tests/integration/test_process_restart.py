"""Kill the process worker (kill -9) mid-stream, restart it, and get the same scores.

Two runs of the real process worker (Faust, real Kafka) over the same raw topics (logs,
metric samples keyed by series, user events keyed by user), each with
its own app id (consumer group and state changelog) and its own output topic: one left
alone, one killed twice mid-stream and restarted. Every record the interrupted run emitted —
duplicates from the replays included — must carry the template id and anomaly score the
uninterrupted run gave it, and no record may be missing.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from aiokafka import AIOKafkaConsumer, TopicPartition

from schemas.records import ENRICHED_RECORD, EventRecord, LogRecord, MetricRecord
from workers.bench.process import loghub_mix
from workers.demo import publish
from workers.evals import SHARED_DATA
from workers.settings import Settings
from workers.topics import ensure_topics

LINES = 20011
METRICS, EVENTS = 4000, 3000
PARTITIONS = 2
TIMEOUT_S = 240


def _topology(tmp: Path, raw: str, out: str) -> Path:
    path = tmp / f"{out}.yaml"
    path.write_text(yaml.safe_dump({
        "raw_topics": {f"{raw}.{kind}": {"partitions": PARTITIONS} for kind in ("logs", "metrics", "events")},
        "log_topic": f"{raw}.logs", "metric_topic": f"{raw}.metrics", "event_topic": f"{raw}.events",
        "enriched_topic": out, "enriched": {"partitions": PARTITIONS},
        "routes": [{"name": "all", "kinds": ["log", "metric", "event"], "sinks": ["postgres"]}],
    }))
    return path


def _publish_load(settings: Settings, raw: str) -> int:
    publish(settings, f"{raw}.logs", loghub_mix(SHARED_DATA / "loghub", LINES))
    start = datetime(2026, 11, 1, tzinfo=UTC)
    series = [f"probe-{i}" for i in range(8)]
    samples = [json.dumps({"name": "load", "labels": {"host": series[i % 8]},
                           "value": 5 + (i % 13) * 0.3 + (60 if i % 1499 == 700 else 0),
                           "timestamp": (start + timedelta(minutes=i // 8)).isoformat()}).encode()
               for i in range(METRICS)]
    publish(settings, f"{raw}.metrics", samples, keys=[series[i % 8].encode() for i in range(METRICS)])
    users = [f"user-{i}" for i in range(40)]
    events = [json.dumps({"user_id": users[i % 40], "event_type": ("view", "search", "buy")[i % 3],
                          "timestamp": (start + timedelta(seconds=(7 if i % 40 else 0.05) * i)).isoformat()}).encode()
              for i in range(EVENTS)]
    publish(settings, f"{raw}.events", events, keys=[users[i % 40].encode() for i in range(EVENTS)])
    return LINES + METRICS + EVENTS


def _start_worker(settings: Settings, topology: Path, app_id: str, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "POLARIS_TOPOLOGY_FILE": str(topology), "POLARIS_PROCESS_APP_ID": app_id,
           "POLARIS_METRICS_PORT": "0", "POLARIS_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
           # Rare commits: a kill then always leaves delivered-but-uncommitted records to replay.
           "POLARIS_PROCESS_COMMIT_EVERY": "2500", "POLARIS_PROCESS_COMMIT_INTERVAL_S": "30"}
    with log.open("ab") as out:
        return subprocess.Popen([sys.executable, "-m", "workers.cli", "worker", "process"], env=env,
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


async def _outputs(settings: Settings, topic: str) -> list[LogRecord | MetricRecord | EventRecord]:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=settings.kafka_bootstrap, auto_offset_reset="earliest",
                                enable_auto_commit=False, max_partition_fetch_bytes=8 << 20)
    await consumer.start()
    records: list[LogRecord | MetricRecord | EventRecord] = []
    try:
        while batch := await consumer.getmany(timeout_ms=1500, max_records=20000):
            records += [ENRICHED_RECORD.validate_json(m.value or b"") for ms in batch.values() for m in ms]
    finally:
        await consumer.stop()
    return records


async def _emitted(settings: Settings, topic: str) -> int:
    """Messages in the topic so far (sum of its end offsets): cheap enough to poll often."""
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap)
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        return sum((await consumer.end_offsets(partitions)).values())
    finally:
        await consumer.stop()


def _wait_for(settings: Settings, topic: str, count: int, worker: subprocess.Popen[bytes], log: Path,
              *, distinct: bool = False) -> None:
    deadline = time.monotonic() + TIMEOUT_S
    while time.monotonic() < deadline:
        if worker.poll() is not None:
            pytest.fail(f"process worker exited with {worker.returncode}; log {log}", pytrace=False)
        if asyncio.run(_emitted(settings, topic)) >= count and (
                not distinct or len({r.record_id for r in asyncio.run(_outputs(settings, topic))}) >= count):
            return
        time.sleep(0.05 if not distinct else 1)
    pytest.fail(f"{topic}: fewer than {distinct} records after {TIMEOUT_S}s; log {log}", pytrace=False)


def _kill(worker: subprocess.Popen[bytes]) -> None:
    os.killpg(worker.pid, signal.SIGKILL)
    worker.wait(timeout=30)


def _stop(worker: subprocess.Popen[bytes]) -> None:
    if worker.poll() is None:
        os.killpg(worker.pid, signal.SIGTERM)
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            _kill(worker)


def test_scores_survive_kill_9_and_restart(stack: Settings, tmp_path: Path) -> None:
    run = uuid.uuid4().hex[:8]
    raw, calm_out, chaos_out = f"test.{run}.raw", f"test.{run}.calm", f"test.{run}.chaos"
    calm_topology, chaos_topology = _topology(tmp_path, raw, calm_out), _topology(tmp_path, raw, chaos_out)
    ensure_topics(stack.model_copy(update={"topology_file": calm_topology}))
    ensure_topics(stack.model_copy(update={"topology_file": chaos_topology}))
    total = _publish_load(stack, raw)

    calm_log = tmp_path / "calm.log"
    calm = _start_worker(stack, calm_topology, f"test-{run}-calm", calm_log)
    try:
        _wait_for(stack, calm_out, total, calm, calm_log, distinct=True)
    finally:
        _stop(calm)
    expected = {r.record_id: _result(r) for r in asyncio.run(_outputs(stack, calm_out))}
    assert len(expected) == total

    chaos_log, kills = tmp_path / "chaos.log", 0
    chaos = _start_worker(stack, chaos_topology, f"test-{run}-chaos", chaos_log)
    try:
        for share in (0.25, 0.6):
            _wait_for(stack, chaos_out, int(total * share), chaos, chaos_log)
            _kill(chaos)
            kills += 1
            chaos = _start_worker(stack, chaos_topology, f"test-{run}-chaos", chaos_log)
        _wait_for(stack, chaos_out, total, chaos, chaos_log, distinct=True)
    finally:
        _stop(chaos)

    emitted = asyncio.run(_outputs(stack, chaos_out))
    got = {r.record_id for r in emitted}
    differing = [r.record_id for r in emitted if _result(r) != expected.get(r.record_id)]
    print(f"\nrestart proof: {total} records, {kills} kill -9, {len(emitted)} emitted "
          f"({len(emitted) - len(got)} replayed duplicates), missing {len(set(expected) - got)}, "
          f"differing {len(differing)}")
    assert kills == 2 and got == set(expected)
    by_id = {r.record_id: r for r in emitted}
    examples = [(rid, expected.get(rid), _result(by_id[rid])) for rid in differing[:3]]
    kinds = sorted({by_id[rid].kind for rid in differing})
    assert not differing, (f"{len(differing)} records ({', '.join(kinds)}) scored differently after the "
                           f"restarts; (id, uninterrupted, after restarts): {examples}")
    for kind in ("log", "metric", "event"):
        assert any(k == kind and score > 0.5 for k, _, score, _ in expected.values()), f"no {kind} anomaly at all"


def _result(record: LogRecord | MetricRecord | EventRecord) -> tuple[str, str | None, float, str | None]:
    template = record.template_id if isinstance(record, LogRecord) else None
    return record.kind, template, record.anomaly_score, record.anomaly_reason
