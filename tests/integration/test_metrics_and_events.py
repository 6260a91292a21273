"""Metric samples and user events, published by kcat, scored by the process tier and stored:
rows in PostgreSQL (with anomaly events for the anomalous ones) and hot state in Redis."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import redis.asyncio as aioredis

from workers.demo import publish
from workers.settings import Settings

TIMEOUT_S = 120


async def _rows(settings: Settings, sql: str, *args: Any, at_least: int) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(settings.postgres_dsn.get_secret_value())
    try:
        deadline = time.monotonic() + TIMEOUT_S
        rows: list[asyncpg.Record] = []
        while time.monotonic() < deadline:
            rows = await conn.fetch(sql, *args)
            if len(rows) >= at_least:
                return rows
            await asyncio.sleep(0.5)
    finally:
        await conn.close()
    raise AssertionError(f"{len(rows)} rows, expected {at_least}, after {TIMEOUT_S}s: {sql}")


async def _redis_hash(settings: Settings, key: str) -> dict[bytes, bytes]:
    client = aioredis.from_url(settings.redis_url)
    try:
        deadline = time.monotonic() + TIMEOUT_S
        while time.monotonic() < deadline:
            if found := await client.hgetall(key):
                return found
            await asyncio.sleep(0.5)
    finally:
        await client.aclose()
    raise AssertionError(f"no Redis hash {key} after {TIMEOUT_S}s")


def test_a_metric_series_is_stored_and_its_spike_becomes_an_anomaly(running_fleet: Settings) -> None:
    host = f"probe-{uuid.uuid4().hex[:10]}"
    start = datetime(2026, 11, 1, tzinfo=UTC)
    samples = []
    for minute in range(600):  # ten quiet hours, then one spike
        value = 50.0 + (minute % 7) * 0.5 + (400.0 if minute == 590 else 0.0)
        samples.append(json.dumps({"name": "cpu_busy_percent", "labels": {"host": host}, "value": value,
                                   "timestamp": (start + timedelta(minutes=minute)).isoformat()}))
    # Keyed by series, as producers must: a series' detector lives with one partition.
    publish(running_fleet, "metrics.raw", [s.encode() for s in samples], keys=[host.encode()] * len(samples))

    rows = asyncio.run(_rows(running_fleet, "SELECT ts, value, anomaly_score, anomaly_reason FROM metric_samples "
                             "WHERE labels->>'host' = $1 ORDER BY ts", host, at_least=600))
    assert len(rows) == 600, "each sample stored once"
    spike = max(rows, key=lambda row: row["anomaly_score"])
    assert spike["value"] > 400 and spike["anomaly_score"] >= 0.75 and spike["anomaly_reason"]
    anomalies = asyncio.run(_rows(running_fleet, "SELECT kind, subject, score FROM anomalies WHERE subject LIKE $1",
                                  f"%{host}%", at_least=1))
    assert all(row["kind"] == "metric" for row in anomalies)
    latest = asyncio.run(_redis_hash(running_fleet, f'polaris:metric:cpu_busy_percent{{host="{host}"}}:latest'))
    assert float(latest[b"value"]) > 0


def test_user_events_are_stored_and_a_bot_burst_is_flagged(running_fleet: Settings) -> None:
    human, bot = f"user-{uuid.uuid4().hex[:8]}", f"bot-{uuid.uuid4().hex[:8]}"
    start = datetime(2026, 11, 2, 9, tzinfo=UTC)
    events = [{"user_id": human, "event_type": kind, "timestamp": (start + timedelta(seconds=40 * i)).isoformat()}
              for i, kind in enumerate(["login", "view", "view", "add_to_cart", "purchase", "logout"])]
    events += [{"user_id": bot, "event_type": "view", "timestamp": (start + timedelta(milliseconds=50 * i)).isoformat()}
               for i in range(300)]
    publish(running_fleet, "events.raw", [json.dumps(e).encode() for e in events],
            keys=[e["user_id"].encode() for e in events])  # keyed by user, as producers must

    rows = asyncio.run(_rows(running_fleet, "SELECT user_id, anomaly_score FROM user_events WHERE user_id = ANY($1)",
                             [human, bot], at_least=306))
    assert len(rows) == 306
    assert max(r["anomaly_score"] for r in rows if r["user_id"] == bot) >= 0.75
    assert max(r["anomaly_score"] for r in rows if r["user_id"] == human) < 0.75
    latest = asyncio.run(_redis_hash(running_fleet, f"polaris:user:{human}:latest"))
    assert latest[b"event_type"] in {b"logout", b"purchase", b"view", b"login", b"add_to_cart"}
