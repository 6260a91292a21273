"""Read-side helpers over the four stores: counts and a record by id (demo, verify, tests)."""

from __future__ import annotations

import asyncio
from typing import Any

from workers.settings import Settings
from workers.sink_runner import build_sink

STORES = ("postgres", "weaviate", "neo4j", "redis")


async def store_counts(settings: Settings) -> dict[str, int]:
    async def one(name: str) -> tuple[str, int]:
        sink = build_sink(settings, name)
        await sink.start()
        try:
            return name, await sink.count_records()
        finally:
            await sink.close()

    return dict(await asyncio.gather(*(one(name) for name in STORES)))


async def find_record(settings: Settings, record_id: str) -> dict[str, Any]:
    """The record as each store holds it (None where it is missing)."""
    import json

    import asyncpg
    import redis.asyncio as aioredis
    from neo4j import AsyncGraphDatabase

    from sinks.redis import record_key
    from sinks.weaviate import WeaviateSink

    found: dict[str, Any] = {}
    conn = await asyncpg.connect(settings.postgres_dsn.get_secret_value())
    try:
        row = None
        for table in ("log_records", "metric_samples", "user_events"):  # a record_id is in one of them
            row = await conn.fetchrow(f"SELECT * FROM {table} WHERE record_id = $1", record_id)
            if row is not None:
                break
        found["postgres"] = dict(row) if row else None
    finally:
        await conn.close()
    client = aioredis.from_url(settings.redis_url)
    try:
        raw = await client.get(record_key(record_id))
        found["redis"] = json.loads(raw) if raw else None
    finally:
        await client.aclose()
    driver = AsyncGraphDatabase.driver(
        settings.neo4j_uri, auth=(settings.neo4j_user, settings.neo4j_password.get_secret_value()))
    try:
        records, _, _ = await driver.execute_query(
            "MATCH (l:LogRecord {record_id: $id})-[:FROM]->(s:Service) "
            "OPTIONAL MATCH (l)-[:OCCURS_ON]->(h:Host) RETURN l, s.name AS service, h.name AS host", id=record_id)
        found["neo4j"] = ({**dict(records[0]["l"]), "service": records[0]["service"], "host": records[0]["host"]}
                          if records else None)
    finally:
        await driver.close()
    weaviate = WeaviateSink(settings.weaviate_http, settings.weaviate_grpc)
    await weaviate.start()
    try:
        found["weaviate"] = await weaviate.fetch(record_id)
    finally:
        await weaviate.close()
    return found
