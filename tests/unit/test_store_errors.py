"""Which store errors pause a sink (retriable: the store, not the records) and which do not."""

from __future__ import annotations

from datetime import UTC, datetime

import asyncpg
import pytest
from neo4j.exceptions import ClientError, DatabaseError
from redis.exceptions import OutOfMemoryError, ReadOnlyError, ResponseError

from schemas.records import LogRecord, Origin, record_id_for
from sinks.base import RecordRejected, RetriableError
from sinks.neo4j import _as_sink_error
from sinks.postgres import STORE_ERRORS
from sinks.redis import store_error

RECORD = LogRecord(record_id=record_id_for("logs.raw", 0, 1), origin=Origin(topic="logs.raw", partition=0, offset=1),
                   timestamp=datetime(2026, 1, 1, tzinfo=UTC), format="unknown", message="x")


@pytest.mark.parametrize("exc", [
    OutOfMemoryError("command not allowed when used memory > 'maxmemory'."),
    ReadOnlyError("You can't write against a read only replica."),
    ResponseError("MISCONF Redis is configured to save RDB snapshots, but it's currently unable to persist to disk"),
    ConnectionResetError("reset by peer"),
])
def test_redis_full_or_read_only_is_retriable(exc: Exception) -> None:
    assert isinstance(store_error(exc), RetriableError)


def test_redis_rejecting_a_command_itself_is_not_a_pause() -> None:
    assert store_error(ResponseError("WRONGTYPE Operation against a key holding the wrong kind of value")) is None


@pytest.mark.parametrize("exc", [
    asyncpg.exceptions.DiskFullError("could not extend file: No space left on device"),
    asyncpg.exceptions.OutOfMemoryError("out of memory"),
    asyncpg.exceptions.TooManyConnectionsError("sorry, too many clients already"),
    asyncpg.exceptions.ReadOnlySQLTransactionError("cannot execute INSERT in a read-only transaction"),
    asyncpg.exceptions.AdminShutdownError("terminating connection due to administrator command"),
])
def test_postgres_full_or_failing_over_is_retriable(exc: Exception) -> None:
    assert isinstance(exc, STORE_ERRORS)


def test_postgres_bad_data_is_not_a_store_error() -> None:
    assert not isinstance(asyncpg.exceptions.InvalidTextRepresentationError("invalid input"), STORE_ERRORS)


def test_neo4j_server_failure_is_retriable_and_a_client_error_rejects_the_record() -> None:
    assert isinstance(_as_sink_error(DatabaseError("No space left on device"), [RECORD]), RetriableError)
    rejected = _as_sink_error(ClientError("Property values can only be of primitive types"), [RECORD])
    assert isinstance(rejected, RecordRejected) and rejected.record_id == RECORD.record_id
