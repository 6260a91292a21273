"""The demo's metric and event load, without services."""

from __future__ import annotations

import json

from workers.demo import demo_metrics_and_events


def test_demo_load_is_keyed_by_series_and_user_and_holds_one_spike_and_one_bot() -> None:
    metrics, metric_keys, events, event_keys = demo_metrics_and_events("00001")
    assert len(metrics) == len(metric_keys) == 1800 and len(events) == len(event_keys) == 330
    samples = [json.loads(line) for line in metrics]
    assert all(key.decode() == sample["labels"]["host"] for key, sample in zip(metric_keys, samples, strict=True))
    assert sum(sample["value"] > 300 for sample in samples) == 1
    users = [json.loads(line)["user_id"] for line in events]
    assert [key.decode() for key in event_keys] == users
    assert users.count("demo-00001-bot") == 300
