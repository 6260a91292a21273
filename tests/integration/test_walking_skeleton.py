"""One raw line, published by kcat (a Kafka client nobody here wrote), through the fleet into
all four stores; and a line the fleet cannot read, into the dead-letter topic."""

from __future__ import annotations

import asyncio
import json
import time
import uuid

from aiokafka import AIOKafkaConsumer

from tests.integration.helpers import TIMEOUT_S, in_every_store, record_id_of
from workers.demo import publish
from workers.settings import Settings


def test_syslog_line_reaches_all_four_stores(running_fleet: Settings) -> None:
    token = f"probe-{uuid.uuid4().hex}"
    line = f"<38>Nov 23 10:00:00 edge-7 sshd[4242]: Accepted publickey for deploy from 10.1.2.3 port 5022 {token}"
    publish(running_fleet, "logs.raw", [line.encode()])

    row = asyncio.run(record_id_of(running_fleet, token))
    assert (row["format"], row["host"], row["service"], row["level"]) == ("rfc3164", "edge-7", "sshd", "INFO")
    assert row["fields"] and json.loads(row["fields"]).get("pid") == "4242"

    found = asyncio.run(in_every_store(running_fleet, row["record_id"]))
    assert token in found["redis"]["message"] and found["redis"]["host"] == "edge-7"
    assert token in found["weaviate"]["message"] and found["weaviate"]["service"] == "sshd"
    assert found["neo4j"]["service"] == "sshd" and found["neo4j"]["host"] == "edge-7"
    assert token in found["neo4j"]["message"]
    vector = found["weaviate"]["_vector"]
    assert vector is not None and len(vector) == 384, "Weaviate objects carry the template's embedding"
    assert abs(sum(x * x for x in vector) - 1.0) < 1e-3
    asyncio.run(_assert_cached_vector(running_fleet, row["template"] or row["message"]))


async def _assert_cached_vector(settings: Settings, text: str) -> None:
    import redis.asyncio as aioredis

    from workers.steps.embed import MODEL_NAME, embedding_cache_key

    client = aioredis.from_url(settings.redis_url)
    try:
        key = embedding_cache_key(text, MODEL_NAME)
        assert await client.exists(key), f"no cached vector under {key}"
        assert 0 < await client.ttl(key) <= 3600
    finally:
        await client.aclose()


def test_json_line_reaches_all_four_stores(running_fleet: Settings) -> None:
    token = f"probe-{uuid.uuid4().hex}"
    line = json.dumps({"time": "2026-11-23T10:00:00.250Z", "level": "error", "msg": f"db timeout {token}",
                       "service": "checkout", "host": "api-3"})
    publish(running_fleet, "logs.raw", [line.encode()])

    row = asyncio.run(record_id_of(running_fleet, token))
    assert (row["format"], row["level"], row["service"]) == ("json", "ERROR", "checkout")
    assert row["ts"].isoformat() == "2026-11-23T10:00:00.250000+00:00"
    found = asyncio.run(in_every_store(running_fleet, row["record_id"]))
    assert found["weaviate"]["level"] == "ERROR"


def test_line_no_format_fits_is_kept_as_unknown(running_fleet: Settings) -> None:
    token = f"probe-{uuid.uuid4().hex}"
    publish(running_fleet, "logs.raw", [f"~~ {token} ~~ free text with no header".encode()])
    row = asyncio.run(record_id_of(running_fleet, token))
    assert row["format"] == "unknown" and token in row["message"]
    asyncio.run(in_every_store(running_fleet, row["record_id"]))


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
