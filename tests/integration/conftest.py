"""Fixtures of the integration tests: the real stack must be up; the fleet is started here.

A service that is down makes every test here fail with its name and address, never skip.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from sinks.postgres import migrate
from workers import fleet
from workers.settings import Settings, get_settings
from workers.stack.services import all_services

REQUIRED = ("kafka", "postgres", "redis", "neo4j", "weaviate")


@pytest.fixture(scope="session")
def settings() -> Settings:
    return get_settings()


@pytest.fixture(scope="session")
def stack(settings: Settings) -> Settings:
    down = [f"{s.name} at {s.addresses()}" for s in all_services(settings) if s.name in REQUIRED and not s.ready()]
    if down:
        pytest.fail("services down: " + "; ".join(down) + " — start them with `polaris stack up`", pytrace=False)
    asyncio.run(migrate(settings.postgres_dsn.get_secret_value()))
    return settings


@pytest.fixture(scope="session")
def running_fleet(stack: Settings) -> Iterator[Settings]:
    lines: list[str] = []
    already = fleet.status(stack, lines.append)
    if not already:
        fleet.down(stack, lines.append)  # a partial fleet from an earlier run
        fleet.up(stack, lines.append)
    yield stack
    if not already:
        fleet.down(stack, lines.append)
