"""Redis sink: hot state with TTLs, keys named `{service}:{resource}:{id}`.

Guarantee: exactly once, counters included. Atomicity: WATCH the partition's position key,
read it and apply the shared fencing rule, then MULTI/EXEC the state changes together with
the new position and origin marks; if the position changed meanwhile (another owner), EXEC
fails and the batch is re-decided. Idempotency: the fence for replayed batches, and the
origin marks (`sinks.base.first_emissions`) for records the process tier emitted twice, so
counters and "latest" state move once per record. Retriable: connection errors, timeouts, a
lost WATCH race.
Keys (all under the `polaris:` prefix):
  polaris:log:{record_id}                    the record's summary (JSON), TTL `record_ttl_s`
  polaris:service:{service}:latest           the latest record of a service (hash), TTL `state_ttl_s`
  polaris:host:{host}:latest                 the latest record of a host (hash), TTL `state_ttl_s`
  polaris:service:{service}:levels           records per level (hash of counters)
  polaris:metric:{series}:latest             the latest sample of a metric series (hash), TTL `state_ttl_s`
  polaris:user:{user}:latest                 the latest event of a user (hash), TTL `state_ttl_s`
  polaris:user:{user}:events                 events per type of a user (hash of counters)
  polaris:template:{template_id}:minutes:{hour}  records per minute of a template within an hour
                                             (hash: epoch minute -> count), TTL `window_ttl_s`;
                                             sliding-window rates sum the minutes they span
  polaris:{kind}:{subject}:anomalies         recent anomalies (sorted set of record ids by event time)
  polaris:offsets:{sink}:{topic}:{partition} the stored position (hash: next, epoch)
  polaris:origins:{sink}:{topic}:{partition} origin marks (hash: raw topic/partition -> offset.index)
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import (
    BusyLoadingError,
    MasterDownError,
    OutOfMemoryError,
    ReadOnlyError,
    RedisError,
    ResponseError,
    TryAgainError,
    WatchError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from schemas.records import EnrichedRecord, EventRecord, MetricRecord, subject_of
from sinks.base import (
    ANOMALY_THRESHOLD,
    Batch,
    Decision,
    OriginMarks,
    Position,
    RetriableError,
    decide,
    first_emissions,
)

# The server refuses writes for a while, not because of the records: out of memory under
# `maxmemory` with noeviction, a replica that became read-only, loading its dataset, or unable
# to persist (MISCONF: typically a full disk). Retried with backoff; the position does not move.
_STORE_REFUSES = (OutOfMemoryError, ReadOnlyError, BusyLoadingError, MasterDownError, TryAgainError)


def store_error(exc: BaseException) -> RetriableError | None:
    """The retriable view of a Redis error that is about the server, None for any other error."""
    if isinstance(exc, (RedisConnectionError, RedisTimeoutError, OSError, *_STORE_REFUSES)) or (
            isinstance(exc, ResponseError) and "MISCONF" in str(exc)):
        return RetriableError(f"redis: {exc.__class__.__name__}: {exc}")
    return None


# Replace a "latest" hash only with a newer one (by event time): partitions and replays can
# deliver an older record after a newer one. KEYS[1] the hash; ARGV[1] event time (ms),
# ARGV[2] TTL (s), then field/value pairs.
_SET_IF_NEWER = """
local stored = redis.call('HGET', KEYS[1], 'ts_ms')
if (not stored) or tonumber(stored) <= tonumber(ARGV[1]) then
  redis.call('HSET', KEYS[1], 'ts_ms', ARGV[1], unpack(ARGV, 3))
end
redis.call('EXPIRE', KEYS[1], ARGV[2])
"""


def record_key(record_id: str) -> str:
    return f"polaris:log:{record_id}"


class RedisSink:
    name = "redis"

    def __init__(self, url: str, *, record_ttl_s: int = 86_400, state_ttl_s: int = 3_600, window_ttl_s: int = 7_200,
                 anomaly_threshold: float = ANOMALY_THRESHOLD, recent_anomalies: int = 100) -> None:
        self._url, self.record_ttl_s, self.state_ttl_s = url, record_ttl_s, state_ttl_s
        self.window_ttl_s = window_ttl_s
        self.anomaly_threshold, self.recent_anomalies = anomaly_threshold, recent_anomalies
        self._client: aioredis.Redis | None = None

    @property
    def client(self) -> aioredis.Redis:
        if self._client is None:
            raise RetriableError("redis: not started")
        return self._client

    def _position_key(self, topic: str, partition: int) -> str:
        return f"polaris:offsets:{self.name}:{topic}:{partition}"

    def _origins_key(self, topic: str, partition: int) -> str:
        return f"polaris:origins:{self.name}:{topic}:{partition}"

    async def start(self) -> None:
        self._client = aioredis.from_url(self._url, socket_timeout=10, socket_connect_timeout=5)
        await self.health()

    async def write_batch(self, batch: Batch) -> bool:
        key = self._position_key(batch.topic, batch.partition)
        origins_key = self._origins_key(batch.topic, batch.partition)
        try:
            async with self.client.pipeline(transaction=True) as pipe:
                await pipe.watch(key)  # the marks move only with the position: one watch covers both
                stored = _position(await pipe.hgetall(key))
                if decide(stored, batch) is Decision.SKIP:
                    return False
                fresh, marks = first_emissions(batch.records, _marks(await pipe.hgetall(origins_key)))
                pipe.multi()  # type: ignore[no-untyped-call]
                for record in fresh:
                    self._apply(pipe, record)
                if marks:
                    pipe.hset(origins_key, mapping={k: f"{o}.{i}" for k, (o, i) in marks.items()})
                pipe.hset(key, mapping={"next": batch.next_offset, "epoch": batch.epoch})
                await pipe.execute()
                return True
        except WatchError as exc:
            raise RetriableError(f"redis: position of {batch.topic}[{batch.partition}] moved under us") from exc
        except (RedisError, OSError) as exc:
            if (retriable := store_error(exc)) is None:
                raise  # a command the server rejects for its content: a bug here, not a pause
            raise retriable from exc

    def _apply(self, pipe: aioredis.client.Pipeline, record: EnrichedRecord) -> None:
        if record.anomaly_score >= self.anomaly_threshold:
            # Recent anomalies of a service / series / user: a sorted set by event time, capped.
            key = f"polaris:{record.kind}:{subject_of(record)}:anomalies"
            pipe.zadd(key, {record.record_id: record.timestamp.timestamp()})
            pipe.zremrangebyrank(key, 0, -self.recent_anomalies - 1)
            pipe.expire(key, self.record_ttl_s)
        if isinstance(record, MetricRecord):
            latest_metric = {"ts": record.timestamp.isoformat(), "value": repr(record.value),
                             "anomaly_score": str(record.anomaly_score), "record_id": record.record_id}
            self._latest(pipe, f"polaris:metric:{record.series}:latest", record, latest_metric)
            return
        if isinstance(record, EventRecord):
            latest_event = {"ts": record.timestamp.isoformat(), "event_type": record.event_type,
                            "anomaly_score": str(record.anomaly_score), "record_id": record.record_id}
            self._latest(pipe, f"polaris:user:{record.user_id}:latest", record, latest_event)
            pipe.hincrby(f"polaris:user:{record.user_id}:events", record.event_type, 1)
            pipe.expire(f"polaris:user:{record.user_id}:events", self.record_ttl_s)
            return
        summary = {
            "record_id": record.record_id, "ts": record.timestamp.isoformat(), "level": record.level or "",
            "host": record.host or "", "service": record.service or "", "message": record.message[:1024],
            "template_id": record.template_id or "", "anomaly_score": record.anomaly_score,
        }
        pipe.set(record_key(record.record_id), json.dumps(summary), ex=self.record_ttl_s)
        service = record.service or "unknown"
        latest = {k: str(v) for k, v in summary.items()}
        self._latest(pipe, f"polaris:service:{service}:latest", record, latest)
        if record.host:
            self._latest(pipe, f"polaris:host:{record.host}:latest", record, latest)
        pipe.hincrby(f"polaris:service:{service}:levels", record.level or "NONE", 1)
        if record.template_id:
            minute = int(record.timestamp.timestamp()) // 60
            window = f"polaris:template:{record.template_id}:minutes:{minute // 60}"
            pipe.hincrby(window, str(minute), 1)
            pipe.expire(window, self.window_ttl_s)

    def _latest(self, pipe: aioredis.client.Pipeline, key: str, record: EnrichedRecord,
                fields: Mapping[str, str]) -> None:
        pairs = [item for pair in fields.items() for item in pair]
        # EVAL, not EVALSHA: a restarted Redis has an empty script cache, and inside MULTI a
        # NOSCRIPT error would surface only at EXEC.
        pipe.eval(_SET_IF_NEWER, 1, key, int(record.timestamp.timestamp() * 1000), self.state_ttl_s, *pairs)

    async def committed_offsets(
        self, topic: str, partitions: Sequence[int], *, claim: bool = False
    ) -> dict[int, Position]:
        positions: dict[int, Position] = {}
        try:
            for partition in partitions:
                key = self._position_key(topic, partition)
                if claim:
                    # HINCRBY is atomic: two claimants get different epochs.
                    epoch = await self.client.hincrby(key, "epoch", 1)
                    stored = _position(await self.client.hgetall(key))
                    positions[partition] = Position(stored.next_offset if stored else 0, int(epoch))
                elif (stored := _position(await self.client.hgetall(key))) is not None:
                    positions[partition] = stored
        except (RedisError, OSError) as exc:
            raise RetriableError(f"redis: {exc}") from exc
        return positions

    async def health(self) -> None:
        try:
            await self.client.ping()
        except (RedisError, OSError) as exc:
            raise RetriableError(f"redis: {exc}") from exc

    async def count_records(self) -> int:
        count = 0
        async for _ in self.client.scan_iter(match="polaris:log:*", count=1000):
            count += 1
        return count

    async def repair(self, records: Sequence[EnrichedRecord]) -> None:
        """`_apply` in one MULTI/EXEC, without the position or origin marks: `verify` repairs only
        records whose key is absent (never applied, TTL not yet due), so counters move once."""
        try:
            async with self.client.pipeline(transaction=True) as pipe:
                for record in records:
                    self._apply(pipe, record)
                await pipe.execute()
        except (RedisError, OSError) as exc:
            if (retriable := store_error(exc)) is None:
                raise  # a command the server rejects for its content: a bug here, not a pause
            raise retriable from exc

    async def close(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            await client.aclose()


def _marks(raw: Mapping[Any, Any]) -> OriginMarks:
    marks: OriginMarks = {}
    for key, value in raw.items():
        offset, _, index = (value.decode() if isinstance(value, bytes) else value).partition(".")
        marks[key.decode() if isinstance(key, bytes) else key] = (int(offset), int(index or 0))
    return marks


def _position(raw: Mapping[Any, Any]) -> Position | None:
    if not raw:
        return None
    return Position(int(raw.get(b"next", b"0")), int(raw.get(b"epoch", b"0")))
