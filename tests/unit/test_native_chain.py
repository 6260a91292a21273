"""The native log chain (NativeLogEnricher, polaris_native.LogChain) against LogEnricher:
the same record JSON byte for byte, the same dead letters, the same saved state, and
states that move between the two implementations mid-stream."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from functools import lru_cache

import pytest

from schemas.records import LogRecord, Origin
from workers.bench.process import loghub_mix
from workers.evals import SHARED_DATA
from workers.pipeline import MAX_LINE_BYTES, LogEnricher, RawLine, Rejected
from workers.pipeline_native import EncodedLogRecord, NativeLogEnricher
from workers.steps.entities import EntityExtractor

NOW = datetime(2026, 12, 2, 10, 30, tzinfo=UTC)
BATCH = 1000


@lru_cache(maxsize=1)
def extractor() -> EntityExtractor:
    return EntityExtractor()


def raws(lines: Sequence[bytes | None], first_offset: int = 0, partition: int = 0,
         timestamp_ms: int | None = None) -> list[RawLine]:
    return [RawLine(Origin(topic="raw.logs", partition=partition, offset=first_offset + i), line, timestamp_ms)
            for i, line in enumerate(lines)]


def run(enricher: LogEnricher | NativeLogEnricher, batch: Sequence[RawLine]) -> list[bytes | Rejected]:
    """Each output as comparable values: a record's JSON, or the Rejected itself."""
    out: list[bytes | Rejected] = []
    for i in range(0, len(batch), BATCH):
        for result in enricher.enrich(batch[i:i + BATCH], now=NOW):
            if isinstance(result, Rejected):
                out.append(result)
            elif isinstance(result, EncodedLogRecord):
                out.append(result.json)
            else:
                out.append(result.model_dump_json().encode())
    return out


def assert_same(python: Sequence[bytes | Rejected], native: Sequence[bytes | Rejected]) -> None:
    assert len(python) == len(native)
    differing = [(p, n) for p, n in zip(python, native, strict=True) if p != n]
    assert not differing, f"{len(differing)} of {len(python)} outputs differ; first: {differing[:2]}"


@lru_cache(maxsize=1)
def mix() -> list[bytes]:
    return loghub_mix(SHARED_DATA / "loghub", 20_000)


def test_the_benchmark_mix_gives_the_same_records_and_state() -> None:
    python, native = LogEnricher(extractor=extractor()), NativeLogEnricher(extractor=extractor())
    batch = raws(mix())
    assert_same(run(python, batch), run(native, batch))
    assert python.state() == native.state()
    assert json.loads(native.state_json()) == native.state()
    assert native.reference is not None and native.reference.deferred_lines == 0


def test_state_moves_between_implementations_mid_stream() -> None:
    lines = mix()[:6000]
    uninterrupted = run(LogEnricher(extractor=extractor()), raws(lines))
    # Python for the first third, native (restored from Python's state) for the second,
    # Python again (restored from the native state) for the rest.
    first = LogEnricher(extractor=extractor())
    out = run(first, raws(lines[:2000]))
    second = NativeLogEnricher(extractor=extractor())
    second.restore(json.loads(json.dumps(first.state())))
    out += run(second, raws(lines[2000:4000], 2000))
    third = LogEnricher(extractor=extractor())
    third.restore(json.loads(second.state_json()))
    out += run(third, raws(lines[4000:], 4000))
    assert_same(uninterrupted, out)


def test_bad_input_is_dead_lettered_with_the_same_reasons() -> None:
    lines: list[bytes | None] = [
        None, b"", b"  \t\n", b"caf\xc3 \xff broken utf-8", b"nul \x00 inside", b"x" * (MAX_LINE_BYTES + 1),
        b"Dec 10 07:07:38 LabSZ sshd[24206]: input_userauth_request: invalid user test9 [preauth]",
    ]
    python, native = run(LogEnricher(extractor=extractor()), raws(lines)), run(
        NativeLogEnricher(extractor=extractor()), raws(lines))
    assert_same(python, native)
    assert [r.reason.split(":")[0] for r in native if isinstance(r, Rejected)] == [
        "empty", "empty", "empty", "not_utf8", "binary", "too_large"]


def test_secrets_non_ascii_text_and_structured_fields_match() -> None:
    lines = [
        b'{"level":"error","msg":"login failed for j\xc3\xb6rg@example.com","password":"hunter2hunter2",'
        b'"service":"auth","ts":"2026-11-30T12:00:00Z"}',
        b"level=warn msg=\"token rotated\" api_key=AKIAABCDEFGHIJKLMNOP user=\xc3\xa5sa",
        b"2026-11-30 12:00:01,123 ERROR [db] connection to 10.0.0.7:5432 refused; Authorization: Bearer "
        b"eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJlc2lnbmF0dXJl",
        b"card 4111 1111 1111 1111 charged by na\xc3\xafve-user, password=s3cr\xc3\xa9t!",
        b"a line with no timestamp at all",
    ]
    batch = raws(lines, timestamp_ms=1_764_504_000_123)
    python = run(LogEnricher(extractor=extractor()), batch)
    native = run(NativeLogEnricher(extractor=extractor()), batch)
    assert_same(python, native)
    records = [LogRecord.model_validate_json(r) for r in native if isinstance(r, bytes)]
    assert len(records) == len(lines)
    for record in records:
        text = record.model_dump_json()
        assert "hunter2hunter2" not in text and "4111 1111" not in text and "s3cr" not in text
    assert records[-1].timestamp == datetime(2025, 11, 30, 12, 0, 0, 123000, tzinfo=UTC)


def test_a_replayed_batch_is_skipped() -> None:
    native = NativeLogEnricher(extractor=extractor())
    batch = raws(mix()[:50], partition=3)
    assert len(native.enrich(batch, now=NOW)) == 50
    assert native.enrich(batch, now=NOW) == []
    assert native.last_offsets == {"raw.logs/3": 49}


@pytest.mark.parametrize("partitions", [(0, 1), (1, 0, 1)])
def test_batches_of_several_partitions_keep_their_order(partitions: tuple[int, ...]) -> None:
    lines = mix()[:300]
    batch = [raw for p in partitions for raw in raws(lines[:100], first_offset=100 * p, partition=p)]
    python, native = LogEnricher(extractor=extractor()), NativeLogEnricher(extractor=extractor())
    assert_same(run(python, batch), run(native, batch))
    assert python.last_offsets == native.last_offsets


def test_what_the_native_chain_hands_back_is_counted_and_reported() -> None:
    from prometheus_client import REGISTRY

    from workers.app import report_native_fallbacks

    native = NativeLogEnricher(extractor=extractor())
    lines = [b"2026-12-02 10:00:00,000 INFO svc: password=hunter2 caf\xc3\xa9 ready",
             b"2026-12-02 10:00:01,000 INFO svc: plain ascii line 42"]
    run(native, raws(lines))
    assert native.reference is not None
    first = native.reference.take_fallbacks()
    assert first.get("redact", 0) >= 1  # the non-ASCII message goes to the Python rules
    assert first.get("plan", 0) >= 1  # new entity shapes are planned by spaCy
    assert native.reference.take_fallbacks() == {}  # taken: counting starts again

    run(native, raws(lines, first_offset=10))
    again = native.reference.fallbacks
    assert "plan" not in again  # the shapes are known now
    assert again.get("redact", 0) >= 1  # non-ASCII text always goes back

    def sample(step: str) -> float:
        return REGISTRY.get_sample_value(
            "polaris_stage_native_fallbacks_total", {"stage": "logs-test", "step": step}) or 0.0

    before = sample("redact")
    report_native_fallbacks("logs-test", native)
    assert sample("redact") == before + again["redact"]
    assert native.reference.fallbacks == {}
