"""Redis cache of sentence vectors, so a repeated log template costs one lookup.

Per batch of texts: one MGET for all of them, one embedder call for the distinct misses,
one pipeline of SET EX writing those back. Values are the raw little-endian float32 bytes
of the vector under `embedding_cache_key(text, model)`; a value of the wrong size (another
model's dimension, a truncated write) counts as a miss and is overwritten.

Redis errors propagate: whether a cache outage should fall back to embedding everything
is the caller's decision, not something to hide here.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Protocol

import numpy as np
import redis.asyncio as aioredis
from numpy.typing import NDArray

from workers.steps.embed import embedding_cache_key

_WIRE_DTYPE = np.dtype("<f4")


class Embedder(Protocol):
    """What the cache needs of an embedder (SentenceEmbedder, or a test double)."""

    model_name: str
    dim: int

    def embed(self, texts: Sequence[str]) -> NDArray[np.float32]: ...


EMBED_CHUNK = 64  # texts per forward pass and cache write


class EmbeddingCache:
    """Vectors for texts, from Redis when cached, from `embedder` (then cached) when not."""

    def __init__(self, redis_client: aioredis.Redis, embedder: Embedder, ttl_s: int = 3600) -> None:
        if ttl_s <= 0:
            raise ValueError(f"ttl_s must be positive seconds (got {ttl_s})")
        self._redis, self._embedder, self.ttl_s = redis_client, embedder, ttl_s

    def key(self, text: str) -> str:
        return embedding_cache_key(text, self._embedder.model_name)

    async def vectors_for(self, texts: Sequence[str]) -> NDArray[np.float32]:
        """Vectors of `texts` in order, shape (len(texts), dim), float32."""
        if isinstance(texts, str):
            raise TypeError("vectors_for() takes a sequence of texts, not one str")
        dim = self._embedder.dim
        if not texts:
            return np.zeros((0, dim), dtype=np.float32)
        text_by_key = {self.key(text): text for text in texts}  # dedups, keeps first-seen order
        keys = list(text_by_key)
        cached = await self._redis.mget(keys)
        found: dict[str, NDArray[np.float32]] = {}
        for key, blob in zip(keys, cached, strict=True):
            if blob is None:
                continue
            if not isinstance(blob, bytes):
                raise TypeError("EmbeddingCache needs a Redis client with decode_responses=False")
            if len(blob) == dim * _WIRE_DTYPE.itemsize:
                found[key] = np.frombuffer(blob, dtype=_WIRE_DTYPE).astype(np.float32)
        missing = [key for key in keys if key not in found]
        # In chunks, each cached as soon as it is computed: a caller that times out (a sink's
        # write deadline) and retries resumes where it stopped instead of starting over.
        for start in range(0, len(missing), EMBED_CHUNK):
            chunk = missing[start:start + EMBED_CHUNK]
            # The forward pass is CPU-bound numpy (BLAS releases the GIL): keep the loop free.
            computed = await asyncio.to_thread(self._embedder.embed, [text_by_key[key] for key in chunk])
            async with self._redis.pipeline(transaction=False) as pipe:
                for key, vector in zip(chunk, computed, strict=True):
                    found[key] = vector
                    pipe.set(key, vector.astype(_WIRE_DTYPE).tobytes(), ex=self.ttl_s)
                await pipe.execute()
        return np.stack([found[self.key(text)] for text in texts]).astype(np.float32, copy=False)
