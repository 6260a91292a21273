"""The dead-letter convention: `<topic>.dlq`, the original bytes, and why, in headers.

Headers: `polaris.reason` (a short code and a sentence), `polaris.stage`, and the origin:
`polaris.origin.topic`, `polaris.origin.partition`, `polaris.origin.offset`.
"""

from __future__ import annotations

from schemas.records import Origin


def dlq_topic(topic: str) -> str:
    return f"{topic}.dlq"


def dlq_headers(origin: Origin, stage: str, reason: str) -> list[tuple[str, bytes]]:
    return [
        ("polaris.reason", reason.encode()[:1000]),
        ("polaris.stage", stage.encode()),
        ("polaris.origin.topic", origin.topic.encode()),
        ("polaris.origin.partition", str(origin.partition).encode()),
        ("polaris.origin.offset", str(origin.offset).encode()),
    ]
