"""Each worker serves /metrics and registers itself with the local Prometheus (file_sd)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager

from workers.logs import get_logger
from workers.metrics import serve_metrics
from workers.settings import Settings

log = get_logger(__name__)


@contextmanager
def registered_metrics(settings: Settings, role: str) -> Iterator[int]:
    try:
        port = serve_metrics(settings.metrics_port)
    except OSError:
        port = serve_metrics(0)  # a second replica of the same role on this host
    targets = settings.stack_home / "data" / "prometheus" / "targets"
    target = targets / f"{role}-{os.getpid()}.json"
    try:
        targets.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps([{"targets": [f"127.0.0.1:{port}"], "labels": {"role": role}}]))
    except OSError:
        target = None  # type: ignore[assignment]
    log.info("worker metrics served", role=role, port=port)
    try:
        yield port
    finally:
        if target is not None:
            target.unlink(missing_ok=True)
