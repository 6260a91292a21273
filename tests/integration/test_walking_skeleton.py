"""One raw line, published by kcat (a Kafka client nobody here wrote), through the fleet into
all four stores; and a line the fleet cannot read, into the dead-letter topic."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from typing import Any

import asyncpg
from aiokafka import AIOKafkaConsumer

from workers.demo import publish
from workers.settings import Settings
from workers.stores import find_record

TIMEOUT_S = 120


async def _record_id_of(settings: Settings, token: str) -> dict[str, Any]:
    conn = await asyncpg.connect(settings.postgres_dsn.get_secret_value())
    try:
        deadline = time.monotonic() + TIMEOUT_S
        while time.monotonic() < deadline:
            row = await conn.fetchrow("SELECT * FROM log_records WHERE message LIKE $1", f"%{token}%")
            if row is not None:
                return dict(row)
            await asyncio.sleep(0.5)
    finally:
        await conn.close()
    raise AssertionError(f"no PostgreSQL row with {token} after {TIMEOUT_S}s (see .polaris/run/worker-*.log)")


async def _in_every_store(settings: Settings, record_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + TIMEOUT_S
    found: dict[str, Any] = {}
    while time.monotonic() < deadline:
        found = await find_record(settings, record_id)
        if all(found.values()):
            return found
        await asyncio.sleep(0.5)
    missing = [store for store, value in found.items() if not value]
    raise AssertionError(f"record {record_id} missing from {missing} after {TIMEOUT_S}s")


def test_syslog_line_reaches_all_four_stores(running_fleet: Settings) -> None:
    token = f"probe-{uuid.uuid4().hex}"
    line = f"<38>Nov 23 10:00:00 edge-7 sshd[4242]: Accepted publickey for deploy from 10.1.2.3 port 5022 {token}"
    publish(running_fleet, "logs.raw", [line.encode()])

    row = asyncio.run(_record_id_of(running_fleet, token))
    assert (row["format"], row["host"], row["service"], row["level"]) == ("rfc3164", "edge-7", "sshd", "INFO")
    assert row["fields"] and json.loads(row["fields"]).get("pid") == "4242"

    found = asyncio.run(_in_every_store(running_fleet, row["record_id"]))
    assert token in found["redis"]["message"] and found["redis"]["host"] == "edge-7"
    assert token in found["weaviate"]["message"] and found["weaviate"]["service"] == "sshd"
    assert found["neo4j"]["service"] == "sshd" and found["neo4j"]["host"] == "edge-7"
    assert token in found["neo4j"]["message"]


def test_json_line_reaches_all_four_stores(running_fleet: Settings) -> None:
    token = f"probe-{uuid.uuid4().hex}"
    line = json.dumps({"time": "2026-11-23T10:00:00.250Z", "level": "error", "msg": f"db timeout {token}",
                       "service": "checkout", "host": "api-3"})
    publish(running_fleet, "logs.raw", [line.encode()])

    row = asyncio.run(_record_id_of(running_fleet, token))
    assert (row["format"], row["level"], row["service"]) == ("json", "ERROR", "checkout")
    assert row["ts"].isoformat() == "2026-11-23T10:00:00.250000+00:00"
    found = asyncio.run(_in_every_store(running_fleet, row["record_id"]))
    assert found["weaviate"]["level"] == "ERROR"


def test_line_no_format_fits_is_kept_as_unknown(running_fleet: Settings) -> None:
    token = f"probe-{uuid.uuid4().hex}"
    publish(running_fleet, "logs.raw", [f"~~ {token} ~~ free text with no header".encode()])
    row = asyncio.run(_record_id_of(running_fleet, token))
    assert row["format"] == "unknown" and token in row["message"]
    asyncio.run(_in_every_store(running_fleet, row["record_id"]))


async def _dead_letter_with(settings: Settings, token: bytes) -> tuple[bytes, dict[str, bytes]]:
    consumer = AIOKafkaConsumer("logs.raw.dlq", bootstrap_servers=settings.kafka_bootstrap,
                                auto_offset_reset="earliest", enable_auto_commit=False)
    await consumer.start()
    try:
        deadline = time.monotonic() + TIMEOUT_S
        while time.monotonic() < deadline:
            for messages in (await consumer.getmany(timeout_ms=500)).values():
                for message in messages:
                    if message.value and token in message.value:
                        return message.value, dict(message.headers)
    finally:
        await consumer.stop()
    raise AssertionError(f"no dead letter holding {token!r} in logs.raw.dlq after {TIMEOUT_S}s")


def test_undecodable_line_goes_to_the_dead_letter_topic(running_fleet: Settings) -> None:
    token = f"probe-{uuid.uuid4().hex}".encode()
    raw = b"\xff\xfe\xfa " + token
    publish(running_fleet, "logs.raw", [raw])
    value, headers = asyncio.run(_dead_letter_with(running_fleet, token))
    assert value == raw  # the original bytes, untouched
    assert headers["polaris.reason"].startswith(b"not_utf8")
    assert headers["polaris.stage"] == b"process.logs"
    assert headers["polaris.origin.topic"] == b"logs.raw"
    assert int(headers["polaris.origin.partition"]) >= 0 and int(headers["polaris.origin.offset"]) >= 0
