"""`polaris verify`'s pure parts on plain values: dedupe, routing, states, diffs, buckets, rendering."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from schemas.records import EnrichedRecord, EventRecord, LogRecord, MetricRecord, Origin
from schemas.topology import Topology
from sinks.base import RecordRejected
from workers.cli import build_parser
from workers.verify import (
    BucketDiff,
    Expectation,
    Message,
    StoreReport,
    TopicRecord,
    VerifyReport,
    bucket_diffs,
    bucket_of,
    dead_lettered,
    diff_store,
    expectations,
    expected_stores,
    render,
    repair_missing,
    snapshot_of,
    time_span,
)

T0 = datetime(2026, 3, 1, 10, 5, tzinfo=UTC)
ORIGIN = Origin(topic="logs.raw", partition=0, offset=0)
DEFAULT = Topology.model_validate({
    "raw_topics": {"logs.raw": {}},
    "routes": [{"name": "logs", "kinds": ["log"], "sinks": ["postgres", "weaviate", "neo4j", "redis"]},
               {"name": "rest", "kinds": ["metric", "event"], "sinks": ["postgres", "redis"]}],
})
ERRORS_TO_REDIS = Topology.model_validate({
    "raw_topics": {"logs.raw": {}},
    "routes": [{"name": "all", "kinds": ["log"], "sinks": ["postgres"]},
               {"name": "hot", "kinds": ["log"], "sinks": ["redis"], "where": {"min_level": "ERROR"}}],
})


def log(record_id: str, *, level: str | None = "INFO", at: datetime = T0) -> LogRecord:
    return LogRecord(record_id=record_id, origin=ORIGIN, timestamp=at, format="json", level=level, message="m")


def metric(record_id: str, at: datetime = T0) -> MetricRecord:
    return MetricRecord(record_id=record_id, origin=ORIGIN, timestamp=at, name="cpu", series="cpu", value=1.0)


def event(record_id: str, at: datetime = T0) -> EventRecord:
    return EventRecord(record_id=record_id, origin=ORIGIN, timestamp=at, user_id="u", event_type="login")


def msg(record: EnrichedRecord, partition: int, offset: int, ts_ms: int = 1_000) -> Message:
    return Message(partition, offset, ts_ms, record.model_dump_json().encode())


def topic_record(record: EnrichedRecord, *copies: tuple[int, int], appended_ms: int = 1_000) -> TopicRecord:
    return TopicRecord(record, copies or ((0, 0),), appended_ms)


def test_snapshot_dedupes_by_record_id_and_keeps_every_copy() -> None:
    a, b = log("a"), metric("b")
    messages = [msg(a, 0, 0, 5), msg(b, 1, 0), msg(a, 0, 7, 9), Message(1, 1, 1, b"{not json")]
    snapshot = snapshot_of("t", messages, {0: 8, 1: 2})
    assert (snapshot.messages, snapshot.unreadable, sorted(snapshot.records)) == (4, 1, ["a", "b"])
    assert snapshot.records["a"].copies == ((0, 0), (0, 7))
    assert snapshot.records["a"].appended_ms == 5, "the first copy is when a sink could first see it"
    assert snapshot.records["a"].record == a


def test_dead_lettered_reads_the_sink_stage_only() -> None:
    a, b = log("a"), log("b")
    messages = [
        Message(0, 0, 1, a.model_dump_json().encode(), (("polaris.stage", b"sink.neo4j"),)),
        Message(0, 1, 1, b.model_dump_json().encode(), (("polaris.stage", b"process"),)),
        Message(0, 2, 1, b"garbage", (("polaris.stage", b"sink.postgres"),)),
    ]
    dead = dead_lettered(messages)
    assert dead["neo4j"] == {"a"} and dead["postgres"] == set() and dead["redis"] == set()


def test_expected_stores_follow_the_routes_and_their_filters() -> None:
    assert expected_stores(log("a"), DEFAULT) == {"postgres", "weaviate", "neo4j", "redis"}
    assert expected_stores(metric("m"), DEFAULT) == {"postgres", "redis"}
    assert expected_stores(log("a", level="INFO"), ERRORS_TO_REDIS) == {"postgres"}
    assert expected_stores(log("a", level="FATAL"), ERRORS_TO_REDIS) == {"postgres", "redis"}


def test_expectations_states() -> None:
    records = {  # appended at 20 s, except "old" at 0 s
        "due": topic_record(log("due"), (0, 3), appended_ms=20_000),
        "pending": topic_record(log("pending"), (0, 10), appended_ms=20_000),
        # a crash replay: one copy is past the position, the other behind it, so it was applied
        "replayed": topic_record(log("replayed"), (1, 50), (0, 4), appended_ms=20_000),
        "old": topic_record(log("old"), (0, 1), appended_ms=0),
        "dead": topic_record(log("dead"), (0, 2), appended_ms=20_000),
        "metric": topic_record(metric("metric"), (0, 5), appended_ms=20_000),
        "event": topic_record(event("event"), (0, 6), appended_ms=20_000),
    }
    positions = {store: {0: 10, 1: 0} for store in ("postgres", "weaviate", "neo4j", "redis")}
    plan = expectations(records, DEFAULT, positions, now_ms=40_000, ttl_ms={"redis": 30_000},
                        dead={"neo4j": {"dead"}})
    assert plan["postgres"].due == {"due", "replayed", "old", "dead", "metric", "event"}
    assert plan["postgres"].pending == {"pending"}
    assert plan["neo4j"].dead == {"dead"} and "dead" not in plan["neo4j"].due
    assert plan["weaviate"].due == {"due", "replayed", "old", "dead"}, "weaviate holds log records only"
    # Redis: logs only (metrics/events leave latest-state hashes), and past the TTL may be gone.
    assert plan["redis"].due == {"due", "replayed", "dead"} and plan["redis"].expired == {"old"}
    assert plan["redis"].routed == {"due", "replayed", "dead", "old", "pending"}


def test_no_stored_position_means_nothing_is_due_yet() -> None:
    plan = expectations({"a": topic_record(log("a"))}, DEFAULT, {}, now_ms=0)
    assert plan["postgres"] == Expectation(pending=frozenset({"a"}))


def test_bucket_of_floors_to_the_bucket_in_utc() -> None:
    assert bucket_of(T0, 60) == "2026-03-01T10:00Z"
    assert bucket_of(T0, 15) == "2026-03-01T10:00Z"
    assert bucket_of(T0 + timedelta(minutes=14, seconds=59), 15) == "2026-03-01T10:15Z"
    assert bucket_of(datetime(2026, 3, 1, 10, 5), 60) == "2026-03-01T10:00Z", "naive store times are UTC"
    cet = T0.astimezone(ZoneInfo("Europe/Paris"))
    assert bucket_of(cet, 60) == "2026-03-01T10:00Z"
    assert bucket_of(None, 60) == "unknown"


def test_bucket_diffs_only_the_differing_buckets_oldest_first() -> None:
    diffs = bucket_diffs({"b": 2, "a": 1, "c": 3}, {"a": 1, "b": 1, "unknown": 1, "d": 4})
    assert diffs == [BucketDiff("b", 2, 1), BucketDiff("c", 3, 0), BucketDiff("d", 0, 4), BucketDiff("unknown", 0, 1)]


def test_bucket_diffs_within_a_span_and_the_topic_span() -> None:
    diffs = bucket_diffs({"2026-03-01T10:00Z": 2}, {"2026-03-01T10:00Z": 1, "2005-01-01T00:00Z": 7, "unknown": 1},
                         span=("2026-03-01T10:00Z", "2026-03-01T11:00Z"))
    assert diffs == [BucketDiff("2026-03-01T10:00Z", 2, 1)]
    records = {"a": topic_record(log("a", at=T0)), "b": topic_record(log("b", at=T0 + timedelta(hours=3)))}
    assert time_span(records, 60) == ("2026-03-01T10:00Z", "2026-03-01T13:00Z")
    assert time_span({}, 60) is None


def test_diff_store_missing_unexpected_and_buckets() -> None:
    later = T0 + timedelta(hours=2)
    records = {"a": topic_record(log("a")), "b": topic_record(log("b", at=later)), "c": topic_record(log("c")),
               "m": topic_record(metric("m")), "p": topic_record(log("p"))}
    expectation = Expectation(due=frozenset({"a", "b", "c"}), pending=frozenset({"p"}))
    # "m" is on the topic but not routed here; "old" is not on the topic; "p" is pending yet already held.
    held = {"a": T0, "c": None, "m": T0, "old": T0 - timedelta(days=30), "p": T0}
    report = diff_store("neo4j", expectation, held, records, duplicates=0, bucket_minutes=60)
    assert report.missing == ["b"] and report.unrouted == ["m"] and report.not_on_topic == 1
    assert (report.expected, report.present, report.unexpected, report.pending) == (3, 5, 2, 1)
    assert report.drift, "a missing record is drift"
    assert report.buckets == [
        BucketDiff("2026-01-30T10:00Z", 0, 1),  # the old record
        BucketDiff("2026-03-01T10:00Z", 2, 3),  # a, c (no store time: Kafka's) and the unrouted m
        BucketDiff("2026-03-01T12:00Z", 1, 0),  # b is missing
    ]


def test_drift_is_missing_or_duplicates_never_unexpected_alone() -> None:
    clean = StoreReport("redis", 1, 3, [], ["x"], 1, None)
    assert clean.unexpected == 2 and not clean.drift
    assert StoreReport("postgres", 1, 1, [], [], 0, 2).drift
    assert StoreReport("postgres", 1, 1, [], [], 0, 0, sample_missing=["a"]).drift


def _report(*stores: StoreReport) -> VerifyReport:
    return VerifyReport("records.enriched", 12, 10, 1, 60, list(stores), sampled=2)


def test_render_and_json() -> None:
    report = _report(StoreReport("postgres", 10, 9, ["r-1"], [], 0, 0, buckets=[BucketDiff("2026-03-01T10:00Z", 5, 4)]),
                     StoreReport("redis", 4, 6, [], [], 2, None, expired=3))
    lines = render(report)
    assert lines[0] == "topic records.enriched: 12 messages, 10 distinct records, 1 unreadable"
    assert lines[1].split() == ["store", "expected", "present", "missing", "unexpected", "duplicates", "pending",
                                "expired", "dlq"]
    assert lines[2].split() == ["postgres", "10", "9", "1", "0", "0", "0", "-", "0"]
    assert lines[3].split() == ["redis", "4", "6", "0", "2", "-", "0", "3", "0"]
    text = "\n".join(lines)
    assert "postgres: missing r-1" in text and "older than its retention" in text
    assert "2026-03-01T10:00Z" in text and lines[-1] == "drift: postgres (1 missing, 0 duplicates)"
    figures = json.loads(json.dumps(report.to_json()))
    assert figures["drift"] is True and figures["stores"]["postgres"]["missing"] == ["r-1"]
    redis = figures["stores"]["redis"]
    assert (redis["unexpected"], redis["duplicates"], redis["expired"], redis["drift"]) == (2, None, 3, False)
    assert render(_report(StoreReport("neo4j", 1, 1, [], [], 0, 0)))[-1] == "drift: none"


def test_cli_parses_verify() -> None:
    args = build_parser().parse_args(["verify", "--repair", "--topic", "t", "--bucket-minutes", "15", "--sample", "3",
                                      "--json", "out.json"])
    assert (args.repair, args.topic, args.bucket_minutes, args.sample, args.json) == (True, "t", 15, 3, "out.json")
    defaults = build_parser().parse_args(["verify"])
    assert (defaults.repair, defaults.topic, defaults.bucket_minutes) == (False, None, 60)


class _RepairingSink:
    def __init__(self, name: str, refuse: set[str]) -> None:
        self.name, self.refuse = name, refuse
        self.written: list[str] = []

    async def repair(self, records: Sequence[EnrichedRecord]) -> None:
        bad = [r.record_id for r in records if r.record_id in self.refuse]
        if bad:
            raise RecordRejected(bad[0] if len(records) == 1 else None, "refused")
        self.written.extend(r.record_id for r in records)


async def test_repair_writes_only_the_missing_and_isolates_refused_records() -> None:
    snapshot = snapshot_of("t", [msg(log(i), 0, n) for n, i in enumerate(["a", "b", "c"])], {0: 3})
    report = _report(StoreReport("postgres", 3, 1, ["a", "b"], [], 0, 0), StoreReport("neo4j", 3, 3, [], [], 0, 0))
    postgres, neo4j = _RepairingSink("postgres", {"b"}), _RepairingSink("neo4j", set())
    result = await repair_missing({"postgres": postgres, "neo4j": neo4j}, report, snapshot)  # type: ignore[dict-item]
    assert postgres.written == ["a"] and neo4j.written == []
    assert result.written == {"postgres": 1} and result.rejected == {"postgres": {"b": "refused"}}


@pytest.mark.parametrize("minutes", [0, -5])
async def test_bucket_minutes_must_be_positive(minutes: int) -> None:
    from workers.settings import Settings
    from workers.verify import verify

    with pytest.raises(ValueError, match="bucket_minutes"):
        await verify(Settings(), bucket_minutes=minutes)
