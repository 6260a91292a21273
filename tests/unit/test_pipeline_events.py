from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from schemas.records import EventRecord, Origin, record_id_for
from workers.pipeline import RawLine, Rejected
from workers.pipeline_events import EventEnricher, UserEvent, parse_event_line

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


def _raw(value: str | bytes | None, offset: int = 0, timestamp_ms: int | None = None) -> RawLine:
    data = value.encode() if isinstance(value, str) else value
    return RawLine(Origin(topic="events.raw", partition=2, offset=offset), data, timestamp_ms)


def _event(user: str, kind: str, when: datetime | None, **extra: object) -> str:
    body: dict[str, object] = {"user_id": user, "event_type": kind, **extra}
    if when is not None:
        body["timestamp"] = when.isoformat()
    return json.dumps(body)


# ------------------------------------------------------------------ parsing


@pytest.mark.parametrize("user_key", ["user_id", "user", "userId"])
@pytest.mark.parametrize("type_key", ["event_type", "type", "event", "name"])
@pytest.mark.parametrize("time_key", ["timestamp", "time", "ts"])
def test_every_key_alias_is_read(user_key: str, type_key: str, time_key: str) -> None:
    line = json.dumps({user_key: "u1", type_key: "login", time_key: "2026-11-02T09:00:00Z"})
    assert parse_event_line(line) == UserEvent("u1", "login", T0, {})


@pytest.mark.parametrize("when", ["2026-11-02T10:00:00+01:00", T0.timestamp(), int(T0.timestamp() * 1000),
                                  str(int(T0.timestamp() * 1000))])
def test_iso_and_epoch_seconds_or_milliseconds_timestamps(when: object) -> None:
    event = parse_event_line(json.dumps({"user": "u1", "type": "view", "ts": when}))
    assert isinstance(event, UserEvent) and event.timestamp == T0


def test_properties_are_text_with_nested_values_as_json() -> None:
    line = json.dumps({"userId": 42, "event": "purchase", "props": {
        "sku": "A-1", "qty": 2, "gift": False, "note": None, "cart": {"b": 1, "a": [1, 2]}}})
    assert parse_event_line(line) == UserEvent("42", "purchase", None, {
        "sku": "A-1", "qty": "2", "gift": "false", "note": "null", "cart": '{"a":[1,2],"b":1}'})
    event = parse_event_line('{"user_id": "u", "event_type": "view", "properties": {"page": "/"}}')
    assert isinstance(event, UserEvent) and event.properties == {"page": "/"}


@pytest.mark.parametrize(("text", "reason"), [
    ('{"event_type": "login"}', "missing_user"),
    ('{"user_id": "", "event_type": "login"}', "missing_user"),
    ('{"user_id": "u1"}', "missing_event_type"),
    ('{"user_id": "u1", "type": null}', "missing_event_type"),
    ('{"user_id": {"id": 1}, "event_type": "login"}', "invalid_user"),
    ('{"user_id": true, "event_type": "login"}', "invalid_user"),
    ('{"user_id": "   ", "event_type": "login"}', "invalid_user"),
    (json.dumps({"user_id": "u" * 201, "event_type": "login"}), "invalid_user"),
    ('{"user_id": "u1", "event_type": ["a"]}', "invalid_event_type"),
    ('{"user_id": "u1", "event_type": "login", "ts": "yesterday"}', "invalid_timestamp"),
    ('{"user_id": "u1", "event_type": "login", "ts": NaN}', "invalid_timestamp"),
    ('{"user_id": "u1", "event_type": "login", "props": [1]}', "invalid_properties"),
    ('{"user_id": "u1", "event_type": ', "invalid_json"),
    ("login u1", "invalid_json"),
    ('["u1", "login"]', "invalid_event"),
])
def test_invalid_events_are_errors_with_a_reason(text: str, reason: str) -> None:
    result = parse_event_line(text)
    assert isinstance(result, str) and result.split(":")[0] == reason, result
    assert len(result) > len(reason) + 2


# ------------------------------------------------------------------ enricher


def test_records_have_position_ids_and_time_from_the_line_kafka_or_now() -> None:
    kafka_ms = int(T0.timestamp() * 1000)
    lines = [_raw(_event("u1", "login", T0 + timedelta(seconds=5)), 7), _raw(_event("u1", "view", None), 8, kafka_ms),
             _raw(_event("u1", "view", None), 9)]
    first = [r for r in EventEnricher().enrich(lines, now=NOW) if isinstance(r, EventRecord)]
    again = [r for r in EventEnricher().enrich(lines, now=NOW) if isinstance(r, EventRecord)]
    assert [r.record_id for r in first] == [r.record_id for r in again] == [
        record_id_for("events.raw", 2, offset) for offset in (7, 8, 9)]
    assert [r.timestamp for r in first] == [T0 + timedelta(seconds=5), T0, NOW]


def test_unreadable_lines_are_rejected_with_their_reason() -> None:
    results = EventEnricher().enrich([_raw(None), _raw('{"user_id": "u1"}', 1), _raw(_event("u1", "view", T0), 2)])
    assert [r.reason.split(":")[0] if isinstance(r, Rejected) else r.kind for r in results] == [
        "empty", "missing_event_type", "event"]


def test_a_bot_like_burst_scores_high_and_a_person_does_not() -> None:
    human = [_event("alice", kind, T0 + timedelta(seconds=40 * i))
             for i, kind in enumerate(["login", "view", "view", "add_to_cart", "purchase", "logout"])]
    bot = [_event("bot-7", "view", T0 + timedelta(milliseconds=50 * i)) for i in range(300)]
    records = EventEnricher().enrich([_raw(line, i) for i, line in enumerate(human + bot)], now=NOW)
    by_user: dict[str, list[EventRecord]] = {}
    for record in records:
        assert isinstance(record, EventRecord)
        by_user.setdefault(record.user_id, []).append(record)
    worst = max(by_user["bot-7"], key=lambda r: r.anomaly_score)
    assert worst.anomaly_score >= 0.75 and worst.anomaly_reason and "events/s" in worst.anomaly_reason
    assert max(r.anomaly_score for r in by_user["alice"]) < 0.75


def test_a_replay_of_applied_events_is_skipped_and_leaves_the_scorer_alone() -> None:
    enricher = EventEnricher()
    enricher.enrich([_raw(_event("u1", "view", T0 + timedelta(seconds=i)), i) for i in range(5)], now=NOW)
    saved = json.loads(json.dumps(enricher.state()))
    restarted = EventEnricher()
    restarted.restore(saved)
    out = restarted.enrich([_raw(_event("u1", "view", T0), 0), _raw(_event("u1", "view", T0), 5)], now=NOW)
    assert [r.origin.offset for r in out] == [5]
    assert restarted.enrich([_raw(_event("u1", "view", T0), 3)], now=NOW) == []
    assert json.loads(json.dumps(restarted.state()))["last_offsets"] == {"events.raw/2": 5}


def test_restore_refuses_an_unknown_version() -> None:
    with pytest.raises(ValueError, match="version"):
        EventEnricher().restore({"version": 99})


def _mixed_events() -> list[RawLine]:
    """People browsing, a scripted user on a timer, a burst, and sequence violations."""
    lines = []
    kinds = ["login", "view", "view", "search", "view", "add_to_cart", "purchase", "logout"]
    for offset in range(1500):
        when = T0 + timedelta(seconds=7 * offset)
        ms = int(when.timestamp() * 1000)
        if 600 <= offset < 660:
            text = _event("bot-1", "view", T0 + timedelta(seconds=7 * 600, milliseconds=40 * (offset - 600)))
        elif offset % 13 == 0:
            text = _event("script-9", "view", when)
        elif offset % 101 == 50:
            text = _event(f"user-{offset % 17}", "logout", None)  # timed by Kafka
        else:
            person = f"user-{(offset * 7) % 17}"
            text = json.dumps({"user": person, "type": kinds[(offset // 17) % len(kinds)], "ts": ms,
                               "props": {"page": f"/p/{offset % 9}"}})
        lines.append(_raw(text, offset, ms))
    return lines


def test_a_restart_from_saved_state_skips_replays_and_continues_every_result_exactly() -> None:
    raws = _mixed_events()
    uninterrupted = EventEnricher().enrich(raws, now=NOW)

    first = EventEnricher()
    before_crash = first.enrich(raws[:1000], now=NOW)
    saved = json.loads(json.dumps(first.state()))  # what the changelog holds
    restarted = EventEnricher()
    restarted.restore(saved)
    after_restart = restarted.enrich(raws[700:], now=NOW)  # offsets 700..999 come again
    assert min(r.origin.offset for r in after_restart) == 1000  # applied before: skipped

    def outcome(record: EventRecord | Rejected) -> tuple[object, ...]:
        assert isinstance(record, EventRecord)
        return record.record_id, record.timestamp, record.anomaly_score, record.anomaly_reason

    expected = {outcome(r)[0]: outcome(r) for r in uninterrupted}
    assert len(expected) == len(raws)
    for record in [*before_crash, *after_restart]:
        assert outcome(record) == expected[outcome(record)[0]]
    assert sum(1 for r in after_restart if isinstance(r, EventRecord) and r.anomaly_score > 0.5) >= 3
