from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta

import pytest

from schemas.records import MetricRecord, Origin, record_id_for
from workers.pipeline import RawLine, Rejected
from workers.pipeline_metrics import (
        MetricEnricher,
    MetricSample,
    metric_record_id,
    parse_metric_line,
    series_key,
)

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
T0 = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)


def _raw(value: str | bytes | None, offset: int = 0, timestamp_ms: int | None = None) -> RawLine:
    data = value.encode() if isinstance(value, str) else value
    return RawLine(Origin(topic="metrics.raw", partition=3, offset=offset), data, timestamp_ms)


def _one(text: str) -> MetricSample:
    samples = parse_metric_line(text)
    assert isinstance(samples, list) and len(samples) == 1, samples
    return samples[0]


# ------------------------------------------------------------------ formats


@pytest.mark.parametrize("name_key", ["name", "metric", "__name__"])
@pytest.mark.parametrize("time_key", ["timestamp", "ts", "time"])
@pytest.mark.parametrize("when", ["2026-11-23T10:00:00Z", "2026-11-23T11:00:00+01:00", T0.timestamp(),
                                  int(T0.timestamp() * 1000), str(int(T0.timestamp()))])
def test_json_objects_with_every_key_alias_and_timestamp_form(name_key: str, time_key: str, when: object) -> None:
    sample = _one(json.dumps({name_key: "cpu_busy", "value": 1.5, "labels": {"host": "a"}, time_key: when}))
    assert sample == MetricSample("cpu_busy", {"host": "a"}, 1.5, T0)


def test_json_labels_are_text_empty_ones_dropped_and_name_may_sit_among_them() -> None:
    sample = _one('{"labels": {"__name__": "up", "port": 8080, "ok": true, "zone": "", "gone": null}, "value": "2"}')
    assert sample == MetricSample("up", {"port": "8080", "ok": "true"}, 2.0, None)


def test_a_json_array_gives_several_samples_in_order() -> None:
    samples = parse_metric_line('[{"name": "a", "value": 1}, {"metric": "b", "value": 2, "ts": 1700000000000}]')
    assert isinstance(samples, list)
    assert [(s.name, s.value) for s in samples] == [("a", 1.0), ("b", 2.0)]
    assert samples[1].timestamp == datetime.fromtimestamp(1_700_000_000, UTC)


def test_prometheus_exposition_lines_with_labels_escapes_and_timestamps() -> None:
    sample = _one('http_requests_total{method="post",code="200",} 1027 1395066363000')
    assert sample == MetricSample("http_requests_total", {"method": "post", "code": "200"}, 1027.0,
                                  datetime.fromtimestamp(1395066363, UTC))
    escaped = _one(r'file_seconds{path="C:\\DIR\\F.TXT",error="Cannot find:\n\"F.TXT\""} 1.458255915e9')
    assert escaped.labels == {"path": "C:\\DIR\\F.TXT", "error": 'Cannot find:\n"F.TXT"'}
    assert escaped.value == 1.458255915e9 and escaped.timestamp is None
    assert _one("plain_metric -3.5") == MetricSample("plain_metric", {}, -3.5, None)
    assert _one('{__name__="up", job="x"} 1') == MetricSample("up", {"job": "x"}, 1.0, None)


def test_comment_lines_give_no_sample_and_a_scrape_gives_one_per_line() -> None:
    assert parse_metric_line("# HELP up Whether the target is up.\n# TYPE up gauge") == []
    samples = parse_metric_line('# TYPE up gauge\nup{job="a"} 1\n\nup{job="b"} 0\n')
    assert isinstance(samples, list) and [s.labels["job"] for s in samples] == ["a", "b"]


@pytest.mark.parametrize(("text", "reason"), [
    ('{"name": "1bad", "value": 1}', "invalid_name"),
    ("bad-name 1", "invalid_name"),
    ('{"name": "x", "value": NaN}', "non_finite"),
    ('{"name": "x", "value": 1e999}', "non_finite"),
    ('x{a="b"} NaN', "non_finite"),
    ("x +Inf", "non_finite"),
    ('{"name": "x"}', "missing_value"),
    ('{"name": "x", "value": null}', "missing_value"),
    ('x{a="b"}', "missing_value"),
    ("x", "missing_value"),
    ('{"value": 1}', "missing_name"),
    ('{"name": "x", "value": "abc"}', "invalid_value"),
    ('{"name": "x", "value": true}', "invalid_value"),
    ("x 1..2", "invalid_value"),
    ('{"name": "x", "value": 1, "ts": "yesterday"}', "invalid_timestamp"),
    ("x 1 12:00", "invalid_timestamp"),
    ("x 1 99999999999999999999", "invalid_timestamp"),
    ('{"name": "x", "value": 1, "labels": {"a.b": "c"}}', "invalid_labels"),
    ('{"name": "x", "value": 1, "labels": [1]}', "invalid_labels"),
    (r'x{a="\q"} 1', "invalid_labels"),
    ('x{a="1",a="2"} 1', "invalid_labels"),
    ("x{a=b} 1", "invalid_labels"),
    ('{"name": "x", "value": 1', "invalid_json"),
    ("[]", "invalid_sample"),
    ('[{"name": "x", "value": 1}, 7]', "invalid_sample"),
    ("x 1 2 3", "invalid_sample"),
])
def test_invalid_samples_are_errors_with_a_reason(text: str, reason: str) -> None:
    result = parse_metric_line(text)
    assert isinstance(result, str) and result.split(":")[0] == reason, result
    assert len(result) > len(reason) + 2  # a detail follows the kind


def test_an_error_names_the_sample_or_line_it_is_in() -> None:
    assert parse_metric_line('[{"name": "a", "value": 1}, {"name": "b"}]') == "missing_value: no value (sample 1)"
    result = parse_metric_line("a 1\nb{c=\"d\"} 2\n# note\nbad-name 3")
    assert isinstance(result, str) and result.startswith("invalid_name") and result.endswith("(line 4)")


def test_series_key_is_canonical() -> None:
    assert series_key("up", {}) == "up"
    assert series_key("cpu", {"z": "1", "a": 'say "hi"\\'}) == 'cpu{a="say \\"hi\\"\\\\",z="1"}'
    assert series_key("cpu", {"b": "2", "a": "1"}) == series_key("cpu", {"a": "1", "b": "2"})


# ------------------------------------------------------------------ enricher


def test_record_ids_are_deterministic_and_distinct_for_several_samples_of_a_line() -> None:
    line = '[{"name": "a", "value": 1}, {"name": "b", "value": 2}, {"name": "a", "value": 3}]'
    first = MetricEnricher().enrich([_raw(line, 5), _raw("a 4", 6)], now=NOW)
    again = MetricEnricher().enrich([_raw(line, 5), _raw("a 4", 6)], now=NOW)
    ids = [r.record_id for r in first if isinstance(r, MetricRecord)]
    assert ids == [r.record_id for r in again if isinstance(r, MetricRecord)]
    assert len(ids) == len(set(ids)) == 4
    assert ids[0] == record_id_for("metrics.raw", 3, 5) == metric_record_id("metrics.raw", 3, 5)
    assert ids[1] == metric_record_id("metrics.raw", 3, 5, 1) and ids[3] == record_id_for("metrics.raw", 3, 6)
    assert all(re.fullmatch(r"[A-Za-z0-9_.:-]{1,128}", i) for i in ids)


def test_records_carry_series_and_time_from_the_line_kafka_or_now() -> None:
    kafka_ms = int(T0.timestamp() * 1000)
    own, from_kafka, from_now = MetricEnricher().enrich([
        _raw('cpu{host="b",dc="x"} 1 1700000000000', 0), _raw("cpu 2", 1, kafka_ms), _raw("cpu 3", 2)], now=NOW)
    assert isinstance(own, MetricRecord) and isinstance(from_kafka, MetricRecord) and isinstance(from_now, MetricRecord)
    assert own.series == 'cpu{dc="x",host="b"}' and own.labels == {"host": "b", "dc": "x"}
    assert own.timestamp == datetime.fromtimestamp(1_700_000_000, UTC)
    assert (from_kafka.timestamp, from_now.timestamp) == (T0, NOW)


def test_unreadable_lines_are_rejected_with_their_reason_and_comments_give_nothing() -> None:
    results = MetricEnricher().enrich([_raw(b"\xff bad"), _raw("x NaN", 1), _raw("# TYPE x gauge", 2),
                                       _raw("x 1", 3)], now=NOW)
    assert [r.reason.split(":")[0] if isinstance(r, Rejected) else r.kind for r in results] == [
        "not_utf8", "non_finite", "metric"]
    assert isinstance(results[1], Rejected) and results[1].value == b"x NaN"


def _regular_series(host: str, points: int, spike_at: int | None = None, offset: int = 0) -> list[RawLine]:
    lines = []
    for minute in range(points):
        value = 50.0 + (minute % 7) * 0.5 + (400.0 if minute == spike_at else 0.0)
        when = (T0 + timedelta(minutes=minute)).isoformat()
        lines.append(_raw(json.dumps({"name": "cpu_busy_percent", "labels": {"host": host}, "value": value,
                                      "timestamp": when}), offset + minute))
    return lines


def test_a_spike_in_a_regular_series_scores_high_with_an_explanation() -> None:
    records = [r for r in MetricEnricher().enrich(_regular_series("h1", 600, spike_at=590), now=NOW)
               if isinstance(r, MetricRecord)]
    spike = max(records, key=lambda r: r.anomaly_score)
    assert spike.value > 400 and spike.anomaly_score >= 0.75
    assert spike.anomaly_reason and f"{spike.value:g} vs expected" in spike.anomaly_reason
    assert max(r.anomaly_score for r in records if r is not spike) < 0.5


def test_the_series_cap_evicts_the_least_recently_updated_and_restarts_its_learning() -> None:
    enricher = MetricEnricher(max_series=2)
    enricher.enrich([_raw("a 1", 0), _raw("b 1", 1), _raw("a 2", 2), _raw("c 1", 3)], now=NOW)
    assert enricher.series == ["a", "c"] and enricher.take_evicted_series() == ["b"]
    assert enricher.take_evicted_series() == []
    enricher.take_dirty_series()
    enricher.enrich([_raw("b 2", 4)], now=NOW)
    dirty = enricher.take_dirty_series()
    assert list(dirty) == ["b"] and dirty["b"]["detector"]["n"] == 1  # learning from scratch
    assert enricher.take_dirty_series() == {} and enricher.take_evicted_series() == ["a"]


def test_a_replay_of_applied_lines_is_skipped_and_moves_no_detector() -> None:
    enricher = MetricEnricher()
    enricher.enrich([_raw(f"x {i}", i) for i in range(5)], now=NOW)
    enricher.take_dirty_series()
    restarted = MetricEnricher()
    restarted.restore(json.loads(json.dumps(enricher.state_header())), {})
    # offsets 0..4 were applied (their records went out before the header was saved): skipped
    out = restarted.enrich([_raw("x 0", 0), _raw("x 4", 4), _raw("x 5", 5), _raw("x 5", 5)], now=NOW)
    assert [(r.origin.offset, type(r).__name__) for r in out] == [(5, "MetricRecord")]
    assert list(restarted.take_dirty_series()) == ["x"] and restarted.last_offsets == {"metrics.raw/3": 5}


def test_restore_refuses_an_unknown_version() -> None:
    with pytest.raises(ValueError, match="version"):
        MetricEnricher().restore({"version": 99}, {})


def _mixed_lines() -> list[RawLine]:
    """Five busy series in three formats (arrays of two samples, exposition lines with their own
    time, objects timed by Kafka), spikes, a series seen only before the crash and one only after."""
    hosts = ["h0", "h1", "h2", "h3", "h4"]
    lines = []
    for offset in range(1500):
        minute = T0 + timedelta(minutes=offset)
        ms = int(minute.timestamp() * 1000)
        spike = 300.0 if offset % 397 == 396 else 0.0
        host = hosts[offset % 5]
        value = 20.0 + (offset % 11) * 0.7 + spike
        if offset % 3 == 0:
            other = hosts[(offset + 2) % 5]
            text = json.dumps([{"name": "load", "labels": {"host": host}, "value": value, "ts": ms},
                               {"name": "load", "labels": {"host": other}, "value": value / 2, "ts": ms}])
        elif offset % 3 == 1:
            text = f'load{{host="{host}"}} {value} {ms}'
        else:
            text = json.dumps({"metric": "load", "labels": {"host": host}, "value": value})
        if offset < 50 and offset % 10 == 5:
            text = f"zz_early {offset} {ms}"
        if offset >= 1000 and offset % 10 == 0:  # from the first offset after the crash
            text = f"late_only {offset} {ms}"
        lines.append(_raw(text, offset, ms))
    return lines


def test_a_restart_from_saved_state_skips_replays_and_continues_every_result_exactly() -> None:
    raws = _mixed_lines()
    uninterrupted = MetricEnricher(max_series=6).enrich(raws, now=NOW)

    # Before the crash: batches of 100, each committed with its header and dirty series.
    first = MetricEnricher(max_series=6)
    table: dict[str, str] = {}  # what the changelog holds: series -> JSON
    header = ""
    before_crash: list[MetricRecord | Rejected] = []
    for start in range(0, 1000, 100):
        before_crash += first.enrich(raws[start:start + 100], now=NOW)
        header = json.dumps(first.state_header())
        table.update({key: json.dumps(value) for key, value in first.take_dirty_series().items()})
        for key in first.take_evicted_series():
            table.pop(key, None)
    # The early series sorts last by name and by table order, yet is the least recently used:
    # only the saved LRU clock makes the restarted enricher evict it when the late one comes.
    assert "zz_early" in table
    restarted = MetricEnricher(max_series=6)
    restarted.restore(json.loads(header), {key: json.loads(value) for key, value in table.items()})
    assert restarted.series == first.series  # the LRU order survives the restart
    after_restart = restarted.enrich(raws[700:], now=NOW)  # offsets 700..999 come again
    assert min(r.origin.offset for r in after_restart) == 1000  # applied before: skipped

    def outcome(record: MetricRecord | Rejected) -> tuple[object, ...]:
        assert isinstance(record, MetricRecord)
        return record.record_id, record.series, record.timestamp, record.anomaly_score, record.anomaly_reason

    expected = {outcome(r)[0]: outcome(r) for r in uninterrupted}
    assert len(expected) == len(uninterrupted) > 1500
    for record in [*before_crash, *after_restart]:
        assert outcome(record) == expected[outcome(record)[0]]
    assert any(r.anomaly_score > 0.5 for r in [*before_crash, *after_restart] if isinstance(r, MetricRecord))
    assert "late_only" in restarted.series and "zz_early" not in restarted.series
    assert "zz_early" in restarted.take_evicted_series()


def test_a_crash_between_the_series_writes_and_the_header_write_applies_every_sample_once() -> None:
    raws = _mixed_lines()
    uninterrupted = MetricEnricher(max_series=6).enrich(raws, now=NOW)

    first = MetricEnricher(max_series=6)
    table: dict[str, str] = {}
    header = ""
    for start in range(0, 1000, 100):
        first.enrich(raws[start:start + 100], now=NOW)
        dirty = first.take_dirty_series()
        if start == 900:
            # the crash: half of the last save's series entries reached the changelog, the
            # header (written last) did not; the saved header still says offset 899
            for key in sorted(dirty)[: len(dirty) // 2]:
                table[key] = json.dumps(dirty[key])
            break
        header = json.dumps(first.state_header())
        table.update({key: json.dumps(value) for key, value in dirty.items()})
        for key in first.take_evicted_series():
            table.pop(key, None)
    assert json.loads(header)["last_offsets"] == {"metrics.raw/3": 899}
    restarted = MetricEnricher(max_series=6)
    restarted.restore(json.loads(header), {key: json.loads(value) for key, value in table.items()})
    after_restart = restarted.enrich(raws[900:], now=NOW)

    def outcome(record: MetricRecord | Rejected) -> tuple[object, ...]:
        assert isinstance(record, MetricRecord)
        return record.record_id, record.series, record.timestamp, record.anomaly_score, record.anomaly_reason

    expected = {outcome(r)[0]: outcome(r) for r in uninterrupted}
    # every record after the crash point is identical to the uninterrupted run's (none scored
    # on a detector that had already seen its sample), and every record from offset 1000 on is there
    for record in after_restart:
        assert outcome(record) == expected[outcome(record)[0]]
    got = {outcome(r)[0] for r in after_restart}
    assert {rid for rid, r in zip(expected, uninterrupted, strict=True) if r.origin.offset >= 1000} <= got
    # the series whose entries were saved skip their samples of 900..999 (delivered before)
    assert len([r for r in after_restart if r.origin.offset < 1000]) < len(
        [r for r in uninterrupted if 900 <= r.origin.offset < 1000])
