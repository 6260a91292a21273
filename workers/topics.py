"""Create the topology's topics before any worker starts.

Faust does not create an agent's source topic, and a topic auto-created with the wrong
partition count breaks the tables keyed by it (STACK.md): so topics are made here, once.
"""

from __future__ import annotations

import asyncio

from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from schemas.topology import load_topology
from workers.settings import Settings


async def _ensure(settings: Settings) -> list[str]:
    topology = load_topology(settings.topology_file)
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        wanted = [
            NewTopic(name, spec.partitions, 1,
                     topic_configs={"retention.ms": str(spec.retention_hours * 3_600_000)})
            for name, spec in topology.all_topics().items() if name not in existing
        ]
        if wanted:
            await admin.create_topics(wanted)
        return [topic.name for topic in wanted]
    finally:
        await admin.close()


def ensure_topics(settings: Settings) -> list[str]:
    return asyncio.run(_ensure(settings))


async def _ensure_state_topic(settings: Settings, name: str, partitions: int) -> bool:
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    try:
        if name in set(await admin.list_topics()):
            return False
        # Compacted: only the latest state of each partition matters.
        await admin.create_topics([NewTopic(name, partitions, 1, topic_configs={
            "cleanup.policy": "compact", "max.message.bytes": str(16 << 20)})])
        return True
    finally:
        await admin.close()


def ensure_state_topic(settings: Settings, name: str, partitions: int) -> bool:
    """Create a Faust table's changelog topic (Faust is not allowed to declare topics)."""
    return asyncio.run(_ensure_state_topic(settings, name, partitions))
