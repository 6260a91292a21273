"""EmbeddingCache against the real Redis of the local stack (fails, never skips, if it is down)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Sequence

import numpy as np
import pytest
import redis.asyncio as aioredis
from numpy.typing import NDArray
from redis.exceptions import RedisError

from workers.embedding_cache import EmbeddingCache
from workers.settings import get_settings
from workers.steps.embed import SentenceEmbedder

pytestmark = pytest.mark.integration


class CountingEmbedder:
    """The real embedder, recording every batch it is asked for."""

    def __init__(self, inner: SentenceEmbedder) -> None:
        self._inner = inner
        self.model_name, self.dim = inner.model_name, inner.dim
        self.calls: list[list[str]] = []

    def embed(self, texts: Sequence[str]) -> NDArray[np.float32]:
        self.calls.append(list(texts))
        return self._inner.embed(texts)


@pytest.fixture(scope="module")
def sentence_embedder() -> SentenceEmbedder:
    return SentenceEmbedder()


@pytest.fixture
async def redis_client() -> AsyncIterator[aioredis.Redis]:
    url = get_settings().redis_url
    client = aioredis.from_url(url, socket_connect_timeout=5, socket_timeout=10)
    try:
        await client.ping()
    except (RedisError, OSError) as exc:
        await client.aclose()
        pytest.fail(f"redis at {url} is down ({exc}) — start it with `polaris stack up`", pytrace=False)
    yield client
    await client.aclose()


async def test_second_batch_is_served_from_redis(
    redis_client: aioredis.Redis, sentence_embedder: SentenceEmbedder
) -> None:
    run = uuid.uuid4().hex  # fresh texts, so the first call is all misses
    texts = [f"{run} PacketResponder <*> terminating", f"{run} Failed password for <*>", f"{run} disk full"]
    batch = [texts[0], texts[1], texts[0], texts[2]]  # a repeated template within the batch
    embedder = CountingEmbedder(sentence_embedder)
    cache = EmbeddingCache(redis_client, embedder, ttl_s=3600)
    try:
        first = await cache.vectors_for(batch)
        assert embedder.calls == [[texts[0], texts[1], texts[2]]]  # one call, misses deduplicated
        assert first.shape == (4, 384) and first.dtype == np.float32
        assert np.array_equal(first[0], first[2])

        second = await cache.vectors_for(batch)
        assert len(embedder.calls) == 1  # everything came from Redis
        assert np.array_equal(first, second)
        np.testing.assert_allclose(second[:2], sentence_embedder.embed(texts[:2]), atol=1e-5)

        for text in texts:
            ttl = await redis_client.ttl(cache.key(text))
            assert 3590 <= ttl <= 3600
            raw = await redis_client.get(cache.key(text))
            assert raw is not None and len(raw) == 384 * 4  # float32 bytes

        partly_new = [texts[2], f"{run} kernel panic"]
        third = await cache.vectors_for(partly_new)
        assert embedder.calls[1:] == [[partly_new[1]]]  # only the miss is embedded
        assert np.array_equal(third[0], first[3])
        texts.append(partly_new[1])
    finally:
        await redis_client.delete(*(cache.key(text) for text in texts))


async def test_corrupt_entry_is_recomputed_and_overwritten(
    redis_client: aioredis.Redis, sentence_embedder: SentenceEmbedder
) -> None:
    embedder = CountingEmbedder(sentence_embedder)
    cache = EmbeddingCache(redis_client, embedder, ttl_s=3600)
    text = f"{uuid.uuid4().hex} truncated vector"
    await redis_client.set(cache.key(text), b"\x00" * 10, ex=60)
    try:
        vector = await cache.vectors_for([text])
        assert embedder.calls == [[text]]
        stored = await redis_client.get(cache.key(text))
        assert stored is not None
        assert np.array_equal(np.frombuffer(stored, dtype="<f4"), vector[0])
    finally:
        await redis_client.delete(cache.key(text))
