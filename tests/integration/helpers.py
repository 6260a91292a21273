"""Waiting for records to arrive in the real stores."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import asyncpg

from workers.settings import Settings
from workers.stores import find_record

TIMEOUT_S = 120


async def record_id_of(settings: Settings, token: str) -> dict[str, Any]:
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


async def in_every_store(settings: Settings, record_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + TIMEOUT_S
    found: dict[str, Any] = {}
    while time.monotonic() < deadline:
        found = await find_record(settings, record_id)
        if all(found.values()):
            return found
        await asyncio.sleep(0.5)
    missing = [store for store, value in found.items() if not value]
    raise AssertionError(f"record {record_id} missing from {missing} after {TIMEOUT_S}s")
