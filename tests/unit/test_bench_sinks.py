"""`polaris bench sinks`: the parts that need no service (the load, the records, the figures)."""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from schemas.records import EventRecord, LogRecord, MetricRecord
from schemas.topology import load_topology
from workers.bench import sinks
from workers.bench.process import loghub_mix
from workers.evals import SHARED_DATA
from workers.pipeline_events import parse_event_line
from workers.pipeline_metrics import parse_metric_line, series_key

END = 1_700_000_000.0
DEFAULT_TOPOLOGY = Path(__file__).resolve().parents[2] / "topologies" / "default.yaml"


def test_registered_under_bench() -> None:
    from workers.cli import build_parser

    args = build_parser().parse_args(["bench", "sinks", "--records", "10", "--batch", "5", "--e2e"])
    assert args.bench_run is sinks.run
    assert (args.records, args.batch, args.e2e) == (10, 5, True)


@pytest.mark.parametrize("total", [1, 9, 10, 5000, 6001])
def test_mix_is_mostly_logs(total: int) -> None:
    mix = sinks.mix_counts(total)
    assert sum(mix.values()) == total
    assert mix["metric"] == mix["event"] == total // 10
    assert mix["log"] >= 0.8 * total


def test_metric_lines_are_samples_the_process_tier_accepts() -> None:
    lines = sinks.metric_lines(100, "run-1", END)
    assert len(lines) == 100
    by_series: dict[str, list[float]] = {}
    for series, line in lines:
        samples = parse_metric_line(line.decode())
        assert not isinstance(samples, str), samples
        (sample,) = samples
        assert sample.labels["bench_run"] == "run-1"
        assert series == series_key(sample.name, sample.labels)
        assert sample.timestamp is not None and sample.timestamp.timestamp() <= END
        by_series.setdefault(series, []).append(sample.timestamp.timestamp())
    assert len(by_series) == len(sinks.METRIC_SHAPES) * sinks.METRIC_HOSTS
    assert all(a < b for times in by_series.values() for a, b in itertools.pairwise(times))
    assert max(t for times in by_series.values() for t in times) == pytest.approx(END)
    assert sinks.metric_lines(100, "run-1", END) == lines  # deterministic
    assert sinks.metric_lines(0, "run-1", END) == []


def test_event_lines_are_events_of_the_run_ending_now() -> None:
    lines = sinks.event_lines(200, "bench-run-1", END)
    assert len(lines) == 200
    events = [parse_event_line(line.decode()) for _, line in lines]
    assert all(not isinstance(event, str) for event in events)
    assert all(user == event.user_id and user.startswith("bench-run-1-") for (user, _), event in
               zip(lines, events, strict=True) if not isinstance(event, str))
    times = [event.timestamp.timestamp() for event in events if not isinstance(event, str) and event.timestamp]
    assert times == sorted(times) and times[-1] == pytest.approx(END)
    assert sinks.event_lines(0, "x", END) == []


def test_interleave_keeps_each_order_and_spreads_the_small_groups() -> None:
    logs, metrics, events = [f"l{i}" for i in range(8)], ["m0"], ["e0"]
    mixed = sinks.interleave(logs, metrics, events)
    assert sorted(mixed) == sorted(logs + metrics + events)
    assert [x for x in mixed if x.startswith("l")] == logs
    assert 3 <= mixed.index("m0") <= 6 and 3 <= mixed.index("e0") <= 6
    assert sinks.interleave([], [1, 2]) == [1, 2]


def test_build_records_runs_the_enrichers_on_real_lines() -> None:
    loghub = SHARED_DATA / "loghub"
    if not any(loghub.glob("*/*_2k.log")):
        pytest.fail(f"no Loghub samples under {loghub}: ../shared/data must sit beside the repository")
    mix = sinks.mix_counts(60)
    records = sinks.build_records(
        loghub_mix(loghub, mix["log"]), [line for _, line in sinks.metric_lines(mix["metric"], "r", END)],
        [line for _, line in sinks.event_lines(mix["event"], "bench-r", END)], "bench.sinks.test")
    assert [sum(isinstance(r, kind) for r in records) for kind in (LogRecord, MetricRecord, EventRecord)] == [
        mix["log"], mix["metric"], mix["event"]]
    assert len({r.record_id for r in records}) == len(records)
    assert {r.origin.topic for r in records} == {"bench.sinks.test.logs", "bench.sinks.test.metrics",
                                                 "bench.sinks.test.events"}
    logs = [r for r in records if isinstance(r, LogRecord)]
    assert all(r.template_id for r in logs) and len({r.format for r in logs}) > 3
    assert [r.origin.offset for r in logs] == list(range(len(logs)))
    other = sinks.build_records(loghub_mix(loghub, 3), [], [], "bench.sinks.other")
    assert not {r.record_id for r in other} & {r.record_id for r in records}  # ids are per run


def test_routing_follows_the_topology() -> None:
    topology = load_topology(DEFAULT_TOPOLOGY)
    lines = [b"081109 203615 148 INFO dfs.DataNode$PacketResponder: PacketResponder 1 terminating",
             b"bad \x00 line", b"   "]
    messages = sinks.log_messages("logs.raw", lines, topology)
    assert len(messages) == 1  # lines the process tier dead-letters are not expected anywhere
    assert messages[0].stores == {"postgres", "weaviate", "neo4j", "redis"}
    keyed = sinks.keyed_messages("metric", "metrics.raw", [("cpu{host=\"a\"}", b"{}")], topology)
    assert keyed[0].stores == {"postgres", "redis"} and keyed[0].key == b'cpu{host="a"}'


@pytest.mark.parametrize("values", [[5.0], [1.0, 2.0], [3.0, 1.0, 2.0, 10.0, 7.5], list(map(float, range(101)))])
@pytest.mark.parametrize("q", [0, 50, 95, 100])
def test_percentile_matches_numpy(values: list[float], q: float) -> None:
    assert sinks.percentile(values, q) == pytest.approx(float(np.percentile(values, q)))


def test_percentile_of_nothing() -> None:
    assert sinks.percentile([], 50) is None


def _rows() -> list[dict[str, Any]]:
    return sinks.with_ratios([
        sinks.store_row("postgres", 5000, 2.0, [100.0] * 9 + [300.0], epoch=1, offsets=5000, stored_position=5000,
                        retries=0, dead_letters=0),
        sinks.store_row("weaviate", 4000, 8.0, [400.0, 500.0], epoch=2, offsets=5000, stored_position=5000,
                        retries=1, dead_letters=0,
                        vectors={"distinct_texts": 40, "cached_before": 30, "embed_seconds": 1.5, "embed_calls": 8}),
        {"store": "neo4j", "error": "RetriableError: neo4j: down"},
    ])


def test_store_rows_and_ratios() -> None:
    postgres, weaviate, neo4j = _rows()
    assert postgres == {
        "store": "postgres", "records": 5000, "batches": 10, "seconds": 2.0, "records_per_s": 2500.0,
        "p50_ms": 100.0, "p95_ms": 210.0, "max_ms": 300.0, "epoch": 1, "offsets": 5000, "stored_position": 5000,
        "retries": 0, "dead_letters": 0, "of_fastest": 1.0}
    assert weaviate["records_per_s"] == 500.0 and weaviate["of_fastest"] == 0.2
    assert neo4j["of_fastest"] is None
    assert sinks.store_row("redis", 0, 0.0, [])["records_per_s"] is None


def test_report_prints_and_serialises() -> None:
    report: dict[str, Any] = {
        "bench": "sinks", "run": "r", "topic": "bench.sinks.r", "records": 5000, "batch": 500,
        "mix": {"log": 4000, "metric": 500, "event": 500}, "build_seconds": 3.2, "stores": _rows(),
        "fleet_running": False, "cpus": 2, "load_avg_1m_before": 0.5}
    text = sinks.format_stores(report)
    assert "postgres" in text and "2,500" in text and "neo4j      failed: RetriableError" in text
    assert "40 distinct texts" in text and "30 cached" in text and "10 computed" in text
    assert "1 retried flush" in text
    targets = [sinks.Target("postgres", "log", 80, _never, arrived=80, done_at=4.0),
               sinks.Target("postgres", "metric", 10, _never, arrived=10, done_at=5.0),
               sinks.Target("neo4j", "log", 80, _never, arrived=80, done_at=8.0)]
    rows, overall = sinks.e2e_rows(targets, 90)
    assert [(r["store"], r["records"], r["seconds"], r["records_per_s"]) for r in rows] == [
        ("postgres", 90, 5.0, 18.0), ("neo4j", 80, 8.0, 10.0)]
    assert overall == {"store": "all stores", "records": 90, "arrived": 90, "complete": True, "seconds": 8.0,
                       "records_per_s": 11.2, "store_writes": 170, "store_writes_per_s": 21.2}
    report["e2e"] = {"published": {"log": 80, "metric": 10, "event": 0}, "publish_seconds": 0.1,
                     "warmup_seconds": 2.0, "poll_s": 0.5, "marker": "r", "stores": rows, "overall": overall,
                     "fleet_started": False}
    assert "all stores" in sinks.format_e2e(report["e2e"])
    assert json.loads(json.dumps(report)) == report
    late = [sinks.Target("redis", "event", 10, _never, arrived=4)]
    rows, overall = sinks.e2e_rows(late, 10)
    assert rows[0]["complete"] is False and rows[0]["records_per_s"] is None and overall["arrived"] is None
    assert "4 of 10 (timed out)" in sinks.format_e2e({**report["e2e"], "stores": rows, "overall": overall})


async def _never() -> int:
    return 0
