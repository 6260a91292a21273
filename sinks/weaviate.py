"""Weaviate sink (weaviate-client 4): log records as searchable objects (BM25 + vectors).

Guarantee: effectively once, not transactionally once. Weaviate has no multi-object
transactions and no conditional writes, so: objects carry UUIDs derived from record_id
(a rewrite is an upsert and can never duplicate), and the partition's position object
moves only after every object of the batch was accepted. A crash between the two re-writes
the same objects. Fencing is checked before each batch, not under a lock: a zombie owner
can at worst re-upsert identical objects. Per-object errors are always checked: an error
that names the object's content dead-letters it, anything else is retried.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any

import weaviate
from weaviate.classes.config import Configure, DataType, Property, VectorDistances
from weaviate.classes.data import DataObject
from weaviate.exceptions import WeaviateBaseError
from weaviate.util import generate_uuid5

from schemas.records import EnrichedRecord, LogRecord
from sinks.base import Batch, Decision, Position, RecordRejected, RetriableError, decide, log_records_of

Vectorize = Callable[[Sequence[str]], Awaitable[Sequence[Sequence[float]]]]
COLLECTION = "LogRecord"
POSITIONS = "PolarisSinkOffset"
_CONTENT_ERRORS = ("invalid", "parse", "wrong type", "not a valid", "unknown property", "too long")


def object_uuid(record_id: str) -> str:
    return str(generate_uuid5(record_id))


def _properties(record: LogRecord) -> dict[str, Any]:
    return {
        "record_id": record.record_id, "message": record.message, "template": record.template or "",
        "template_id": record.template_id or "", "level": record.level or "", "host": record.host or "",
        "service": record.service or "", "category": record.category or "",
        "entities": [f"{entity.label}:{entity.text}" for entity in record.entities],
        "anomaly_score": record.anomaly_score, "timestamp": record.timestamp,
    }


class WeaviateSink:
    name = "weaviate"

    def __init__(self, http: str, grpc: str, vectorize: Vectorize | None = None) -> None:
        """`vectorize` maps texts to vectors (the template, or the message when there is none)."""
        self._vectorize = vectorize
        host, port = http.rsplit(":", 1)
        self._client = weaviate.use_async_with_local(host=host, port=int(port), grpc_port=int(grpc.rsplit(":", 1)[1]))

    async def start(self) -> None:
        try:
            await self._client.connect()
            await self._ensure_collections()
        except (WeaviateBaseError, OSError) as exc:
            raise RetriableError(f"weaviate: {exc}") from exc

    async def _ensure_collections(self) -> None:
        if not await self._client.collections.exists(COLLECTION):
            text = [Property(name=n, data_type=DataType.TEXT) for n in ("message", "template")]
            keyword = [Property(name=n, data_type=DataType.TEXT, skip_vectorization=True, index_searchable=False)
                       for n in ("record_id", "template_id", "level", "host", "service", "category")]
            await self._client.collections.create(
                COLLECTION,
                properties=[*text, *keyword,
                            Property(name="entities", data_type=DataType.TEXT_ARRAY),
                            Property(name="anomaly_score", data_type=DataType.NUMBER),
                            Property(name="timestamp", data_type=DataType.DATE)],
                vector_config=Configure.Vectors.self_provided(
                    name="default",
                    # Records share their template's vector, so the index holds many identical
                    # vectors; HNSW's default build (ef 128, 32 links) spends ~17x more CPU on
                    # them than this lighter one (4,800 objects with 277 distinct vectors: 38.9 s
                    # vs 2.2 s of Weaviate CPU), which would starve the rest of the fleet.
                    vector_index_config=Configure.VectorIndex.hnsw(
                        distance_metric=VectorDistances.COSINE, ef_construction=64, max_connections=16)),
                inverted_index_config=Configure.inverted_index(index_timestamps=True),
            )
        if not await self._client.collections.exists(POSITIONS):
            await self._client.collections.create(
                POSITIONS,
                properties=[Property(name="key", data_type=DataType.TEXT),
                            Property(name="next_offset", data_type=DataType.INT),
                            Property(name="epoch", data_type=DataType.INT)],
                vector_config=Configure.Vectors.self_provided(name="default"),
            )

    def _position_uuid(self, topic: str, partition: int) -> str:
        return str(generate_uuid5(f"{self.name}/{topic}/{partition}"))

    async def _read_position(self, topic: str, partition: int) -> Position | None:
        found = await self._client.collections.get(POSITIONS).query.fetch_object_by_id(
            self._position_uuid(topic, partition))
        if found is None:
            return None
        props = found.properties
        return Position(int(props["next_offset"]), int(props["epoch"]))  # type: ignore[arg-type]

    async def _write_position(self, topic: str, partition: int, position: Position) -> None:
        key = f"{self.name}/{topic}/{partition}"
        result = await self._client.collections.get(POSITIONS).data.insert_many([DataObject(
            properties={"key": key, "next_offset": position.next_offset, "epoch": position.epoch},
            uuid=self._position_uuid(topic, partition))])
        if result.errors:
            raise RetriableError(f"weaviate: position not stored: {next(iter(result.errors.values())).message}")

    async def write_batch(self, batch: Batch) -> bool:
        records = log_records_of(batch, self.name)
        try:
            if decide(await self._read_position(batch.topic, batch.partition), batch) is Decision.SKIP:
                return False
            if records:
                await self._upsert(records)
            await self._write_position(batch.topic, batch.partition, Position(batch.next_offset, batch.epoch))
            return True
        except (WeaviateBaseError, OSError) as exc:
            raise RetriableError(f"weaviate: {exc.__class__.__name__}: {exc}") from exc

    async def _upsert(self, records: Sequence[LogRecord]) -> None:
        """Vectorize and upsert the objects (UUIDs from record_id); per-object errors are raised."""
        vectors: Sequence[Sequence[float] | None] = [None] * len(records)
        if self._vectorize is not None:
            vectors = await self._vectorize([r.template or r.message for r in records])
        objects = [DataObject(properties=_properties(r), uuid=object_uuid(r.record_id),
                              vector={"default": list(map(float, v))} if v is not None else None)
                   for r, v in zip(records, vectors, strict=True)]
        result = await self._client.collections.get(COLLECTION).data.insert_many(objects)
        if result.errors:
            index, error = min(result.errors.items())
            message = str(error.message)
            if any(marker in message.lower() for marker in _CONTENT_ERRORS):
                raise RecordRejected(records[index].record_id, f"weaviate: {message}")
            raise RetriableError(f"weaviate: {len(result.errors)} object(s) failed: {message}")

    async def committed_offsets(
        self, topic: str, partitions: Sequence[int], *, claim: bool = False
    ) -> dict[int, Position]:
        positions: dict[int, Position] = {}
        try:
            for partition in partitions:
                stored = await self._read_position(topic, partition)
                if claim:
                    stored = Position(stored.next_offset if stored else 0, (stored.epoch if stored else 0) + 1)
                    await self._write_position(topic, partition, stored)
                if stored is not None:
                    positions[partition] = stored
        except (WeaviateBaseError, OSError) as exc:
            raise RetriableError(f"weaviate: {exc}") from exc
        return positions

    async def health(self) -> None:
        try:
            if not await self._client.is_ready():
                raise RetriableError("weaviate: not ready")
        except (WeaviateBaseError, OSError) as exc:
            raise RetriableError(f"weaviate: {exc}") from exc

    async def count_records(self) -> int:
        result = await self._client.collections.get(COLLECTION).aggregate.over_all(total_count=True)
        return int(result.total_count or 0)

    async def fetch(self, record_id: str) -> dict[str, Any] | None:
        found = await self._client.collections.get(COLLECTION).query.fetch_object_by_id(
            object_uuid(record_id), include_vector=True)
        if found is None:
            return None
        return {**found.properties, "_vector": found.vector.get("default") if found.vector else None}

    async def repair(self, records: Sequence[EnrichedRecord]) -> None:
        """`_upsert` alone: the position object is neither read nor written."""
        logs = log_records_of(records, self.name)
        try:
            if logs:
                await self._upsert(logs)
        except (WeaviateBaseError, OSError) as exc:
            raise RetriableError(f"weaviate: {exc.__class__.__name__}: {exc}") from exc

    async def held_records(self) -> AsyncIterator[tuple[str, datetime | None]]:
        """(record_id, timestamp) of every log object, paged by the client's cursor (`polaris verify`)."""
        try:
            async for obj in self._client.collections.get(COLLECTION).iterator(
                    return_properties=["record_id", "timestamp"], cache_size=2000):
                stamp = obj.properties.get("timestamp")
                yield str(obj.properties["record_id"]), stamp if isinstance(stamp, datetime) else None
        except (WeaviateBaseError, OSError) as exc:
            raise RetriableError(f"weaviate: {exc.__class__.__name__}: {exc}") from exc

    async def close(self) -> None:
        await self._client.close()


__all__ = ["WeaviateSink", "object_uuid", "uuid"]
