"""Lines full of secrets go through the whole fleet; afterwards no store holds any of them.

Every store is searched whole (not just the test's records), as is the enriched topic: a
secret anywhere downstream of the process tier fails the test.
"""

from __future__ import annotations

import asyncio
import base64
import json
import random
import secrets
import time

import asyncpg
import redis.asyncio as aioredis
from aiokafka import AIOKafkaConsumer
from neo4j import AsyncGraphDatabase

from sinks.weaviate import COLLECTION, WeaviateSink
from tests.integration.helpers import in_every_store
from workers.demo import publish
from workers.settings import Settings

TIMEOUT_S = 120


def _luhn_card(rng: random.Random) -> str:
    digits = [4] + [rng.randrange(10) for _ in range(14)]
    total = 0
    for index, digit in enumerate(reversed(digits)):
        doubled = digit * 2 if index % 2 == 0 else digit
        total += doubled - 9 if doubled > 9 else doubled
    return "".join(map(str, digits)) + str((10 - total % 10) % 10)


def _b64(data: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def _secret_lines(marker: str) -> tuple[list[str], list[str]]:
    rng = random.Random(marker)
    password = f"Pw-{secrets.token_hex(6)}"
    aws = "AKIA" + "".join(rng.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567") for _ in range(16))
    jwt = f"{_b64({'alg': 'HS256'})}.{_b64({'sub': marker, 'n': secrets.token_hex(4)})}.{secrets.token_hex(16)}"
    bearer = secrets.token_urlsafe(24)
    card = _luhn_card(rng)
    email_user = f"alice.{secrets.token_hex(4)}"
    key_body = base64.b64encode(secrets.token_bytes(48)).decode()
    ghp = "ghp_" + "".join(rng.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(36))
    lines = [
        f"<38>Nov 23 10:00:00 db-1 app[7]: {marker} connect user=app password={password} host=db-1",
        json.dumps({"time": "2026-11-23T10:00:01Z", "level": "info", "service": "billing",
                    "msg": f"{marker} charged card {card} for {email_user}@example.com",
                    "password": password, "api_key": aws}),
        f"2026-11-23T10:00:02Z level=warn service=gateway msg=\"{marker} upstream auth\" "
        f"authorization=\"Bearer {bearer}\" token={jwt}",
        f"<38>Nov 23 10:00:03 ci-2 runner[9]: {marker} cloning with {ghp} and AWS key {aws}",
        f"<38>Nov 23 10:00:04 vault-1 agent[3]: {marker} loaded key -----BEGIN RSA PRIVATE KEY-----"
        f"\\n{key_body}\\n-----END RSA PRIVATE KEY-----",
    ]
    return lines, [password, aws, jwt, bearer, card, f"{email_user}@example.com", key_body, ghp]


async def _wait_for_rows(settings: Settings, marker: str, count: int) -> list[str]:
    conn = await asyncpg.connect(settings.postgres_dsn.get_secret_value())
    try:
        deadline = time.monotonic() + TIMEOUT_S
        while time.monotonic() < deadline:
            rows = await conn.fetch("SELECT record_id FROM log_records WHERE message LIKE $1", f"%{marker}%")
            if len(rows) >= count:
                return [row["record_id"] for row in rows]
            await asyncio.sleep(0.5)
    finally:
        await conn.close()
    raise AssertionError(f"only part of the {count} secret lines reached PostgreSQL within {TIMEOUT_S}s")


async def _everything_in_postgres(settings: Settings) -> str:
    conn = await asyncpg.connect(settings.postgres_dsn.get_secret_value())
    try:
        rows = await conn.fetch("SELECT log_records::text AS row FROM log_records")
        return "\n".join(row["row"] for row in rows)
    finally:
        await conn.close()


async def _everything_in_redis(settings: Settings) -> str:
    client = aioredis.from_url(settings.redis_url)
    parts: list[str] = []
    try:
        async for key in client.scan_iter(count=1000):
            parts.append(key.decode(errors="replace"))
            kind = (await client.type(key)).decode()
            if kind == "string":
                parts.append(((await client.get(key)) or b"").decode(errors="replace"))
            elif kind == "hash":
                parts.append(repr(await client.hgetall(key)))
            elif kind == "zset":
                parts.append(repr(await client.zrange(key, 0, -1)))
    finally:
        await client.aclose()
    return "\n".join(parts)


async def _everything_in_neo4j(settings: Settings) -> str:
    driver = AsyncGraphDatabase.driver(settings.neo4j_uri,
                                       auth=(settings.neo4j_user, settings.neo4j_password.get_secret_value()))
    try:
        records, _, _ = await driver.execute_query("MATCH (n) RETURN properties(n) AS p")
        relations, _, _ = await driver.execute_query("MATCH ()-[r]->() RETURN properties(r) AS p")
        return "\n".join(json.dumps(r["p"], default=str) for r in [*records, *relations])
    finally:
        await driver.close()


async def _records_in_weaviate(settings: Settings, record_ids: list[str]) -> str:
    sink = WeaviateSink(settings.weaviate_http, settings.weaviate_grpc)
    await sink.start()
    try:
        found = [await sink.fetch(record_id) for record_id in record_ids]
        assert all(found), "some secret lines are missing from Weaviate"
        # And a full-text search for each secret over the whole collection.
        return json.dumps(found, default=str)
    finally:
        await sink.close()


async def _bm25_hits(settings: Settings, needles: list[str]) -> list[str]:
    import weaviate

    host, port = settings.weaviate_http.rsplit(":", 1)
    client = weaviate.use_async_with_local(host=host, port=int(port),
                                           grpc_port=int(settings.weaviate_grpc.rsplit(":", 1)[1]))
    await client.connect()
    try:
        hits = []
        for needle in needles:
            result = await client.collections.get(COLLECTION).query.bm25(query=needle, limit=3)
            hits += [needle for obj in result.objects if needle in json.dumps(obj.properties, default=str)]
        return hits
    finally:
        await client.close()


async def _enriched_topic(settings: Settings, marker: str) -> str:
    consumer = AIOKafkaConsumer("records.enriched", bootstrap_servers=settings.kafka_bootstrap,
                                auto_offset_reset="earliest", enable_auto_commit=False)
    await consumer.start()
    parts: list[str] = []
    try:
        while True:
            batch = await consumer.getmany(timeout_ms=2000, max_records=10000)
            if not batch:
                return "\n".join(parts)
            parts += [m.value.decode(errors="replace") for ms in batch.values() for m in ms if m.value]
    finally:
        await consumer.stop()


def test_no_secret_reaches_any_store(running_fleet: Settings) -> None:
    marker = f"probe-{secrets.token_hex(8)}"
    lines, needles = _secret_lines(marker)
    publish(running_fleet, "logs.raw", [line.encode() for line in lines])
    record_ids = asyncio.run(_wait_for_rows(running_fleet, marker, len(lines)))
    for record_id in record_ids:  # every store has caught up with these records
        asyncio.run(in_every_store(running_fleet, record_id))
    haystacks = {
        "postgres": asyncio.run(_everything_in_postgres(running_fleet)),
        "weaviate": asyncio.run(_records_in_weaviate(running_fleet, record_ids)),
        "neo4j": asyncio.run(_everything_in_neo4j(running_fleet)),
        "redis": asyncio.run(_everything_in_redis(running_fleet)),
        "records.enriched": asyncio.run(_enriched_topic(running_fleet, marker)),
    }
    assert all(marker in text for text in haystacks.values()), "the probe lines did not reach every store"
    leaks = [(store, needle[:12] + "...") for store, text in haystacks.items() for needle in needles if needle in text]
    leaks += [("weaviate bm25", needle[:12] + "...") for needle in asyncio.run(_bm25_hits(running_fleet, needles))]
    assert not leaks, f"secrets found downstream of the process tier: {leaks}"
