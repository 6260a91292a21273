from __future__ import annotations

from datetime import UTC, datetime

import pytest

from schemas.records import LogRecord, Origin, record_id_for
from workers.pipeline import MAX_LINE_BYTES, RawLine, Rejected, enrich_logs

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def _raw(value: bytes | None, offset: int = 0) -> RawLine:
    return RawLine(Origin(topic="logs.raw", partition=1, offset=offset), value)


def test_record_id_is_fixed_by_the_raw_position() -> None:
    assert record_id_for("logs.raw", 1, 7) == record_id_for("logs.raw", 1, 7)
    assert record_id_for("logs.raw", 1, 7) != record_id_for("logs.raw", 2, 7)
    [first] = enrich_logs([_raw(b"hello world", 7)], now=NOW)
    [again] = enrich_logs([_raw(b"hello world", 7)], now=NOW)
    assert isinstance(first, LogRecord) and isinstance(again, LogRecord)
    assert first.record_id == again.record_id == record_id_for("logs.raw", 1, 7)


def test_syslog_and_json_lines_are_parsed() -> None:
    syslog, json_line = enrich_logs([
        _raw(b"<34>Oct 11 22:14:15 mymachine su: 'su root' failed for lonvick on /dev/pts/8"),
        _raw(b'{"time":"2026-11-23T10:00:00Z","level":"warning","msg":"disk 91% full","service":"store"}', 1),
    ], now=NOW)
    assert isinstance(syslog, LogRecord) and isinstance(json_line, LogRecord)
    assert (syslog.format, syslog.host, syslog.service) == ("rfc3164", "mymachine", "su")
    assert (json_line.format, json_line.level, json_line.service) == ("json", "WARN", "store")
    assert json_line.timestamp == datetime(2026, 11, 23, 10, 0, tzinfo=UTC)


def test_a_line_no_format_fits_is_kept_with_ingest_time() -> None:
    [record] = enrich_logs([_raw(b"~~ nothing to see ~~")], now=NOW)
    assert isinstance(record, LogRecord)
    assert record.format == "unknown" and "nothing to see" in record.message and record.timestamp == NOW


def test_unreadable_input_is_rejected_with_a_reason_and_nothing_is_dropped() -> None:
    values = [b"\xff\xfe bad", b"   ", None, b"a\x00b", b"x" * (MAX_LINE_BYTES + 1)]
    inputs = [_raw(value, offset) for offset, value in enumerate(values)]
    results = enrich_logs(inputs, now=NOW)
    assert len(results) == len(inputs)
    reasons = [r.reason.split(":")[0] for r in results if isinstance(r, Rejected)]
    assert reasons == ["not_utf8", "empty", "empty", "binary", "too_large"]


def test_secrets_are_redacted_before_any_other_step_sees_them() -> None:
    secret_line = (b'{"time":"2026-11-23T10:00:00Z","level":"info","msg":"login ok password=hunter2 '
                   b'card 4111 1111 1111 1111","api_key":"sk_live_abcdef0123456789abcdef","service":"auth"}')
    [record] = enrich_logs([_raw(secret_line)], now=NOW)
    assert isinstance(record, LogRecord)
    dumped = record.model_dump_json()
    for secret in ("hunter2", "4111 1111 1111 1111", "sk_live_abcdef0123456789abcdef"):
        assert secret not in dumped
    assert record.redacted and "password" in " ".join(record.redacted)


def test_records_are_enriched_with_template_entities_class_and_score() -> None:
    lines = [f"<38>Nov 23 10:00:0{i} edge-7 sshd[42]: Failed password for root from 10.0.0.{i} port 22 ssh2"
             .encode() for i in range(5)]
    records = enrich_logs([_raw(line, i) for i, line in enumerate(lines)], now=NOW)
    assert all(isinstance(r, LogRecord) for r in records)
    last = records[-1]
    assert isinstance(last, LogRecord)
    assert last.template is not None and "<*>" in last.template and last.template_id
    assert {"IP", "PORT"} <= {e.label for e in last.entities}
    assert last.category in {"auth", "security"} and last.severity is not None
    assert 0.0 <= last.anomaly_score <= 1.0


def test_a_restart_from_saved_state_skips_replays_and_continues_every_result_exactly() -> None:
    import json as json_module
    from pathlib import Path

    from workers.pipeline import LogEnricher

    loghub = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "loghub"
    lines = [line for f in sorted(loghub.glob("*/*_2k.log"))[:3] for line in f.read_bytes().splitlines()[:500]]
    raws = [_raw(line, offset) for offset, line in enumerate(lines)]
    uninterrupted = LogEnricher().enrich(raws, now=NOW)

    first = LogEnricher()
    before_crash = first.enrich(raws[:1000], now=NOW)
    saved = json_module.loads(json_module.dumps(first.state()))  # what the changelog holds
    restarted = LogEnricher(extractor=first.extractor)
    restarted.restore(saved)
    after_restart = restarted.enrich(raws[700:], now=NOW)  # offsets 700..999 come again
    # Already applied (their outputs went out before the state was saved): skipped, not redone.
    assert [r.origin.offset for r in after_restart] == list(range(1000, len(raws)))

    def outcome(record: LogRecord | Rejected) -> tuple[object, ...]:
        assert isinstance(record, LogRecord)
        return record.record_id, record.template_id, record.anomaly_score, record.anomaly_reason

    expected = {outcome(r)[0]: outcome(r) for r in uninterrupted}
    for record in [*before_crash, *after_restart]:
        assert outcome(record) == expected[outcome(record)[0]]
    assert any(r.anomaly_score > 0 for r in uninterrupted if isinstance(r, LogRecord))


def test_a_line_that_fails_after_the_state_moved_is_dead_lettered_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    from workers.pipeline import LogEnricher

    enricher = LogEnricher()
    lines = [f"<38>Nov 23 10:00:0{i} edge-7 sshd[42]: Accepted password for u{i} from 10.0.0.{i} port 22"
             .encode() for i in range(4)]
    update = enricher.scorer.update

    def failing_on_third(service: str, template_id: str, level: str | None, message: str, t: float) -> object:
        if "u2 " in message:
            raise RuntimeError("scorer bug")
        return update(service, template_id, level, message, t)

    monkeypatch.setattr(enricher.scorer, "update", failing_on_third)
    out = enricher.enrich([_raw(line, i) for i, line in enumerate(lines)], now=NOW)
    assert [type(r).__name__ for r in out] == ["LogRecord", "LogRecord", "Rejected", "LogRecord"]
    rejected = out[2]
    assert isinstance(rejected, Rejected) and rejected.reason.startswith("processing_error: RuntimeError: scorer bug")
    assert rejected.value == lines[2]  # the DLQ keeps the raw line, to be fixed and replayed
    assert enricher.last_offsets == {"logs.raw/1": 3}
