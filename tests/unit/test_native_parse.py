"""Parity of the native parse step (polaris_native.LineParser) with workers/steps/parse.py.

The native parser is built from the catalog Python loaded (formats.yaml, zones) and parses
batches; each result is compared field by field (format, timestamp, level, host, service,
message, fields with their order) with Parser.parse at the same fixed reference time.

Inputs: every raw line of the Loghub samples (split as the eval and the unit tests split
them), every string literal of the parse unit tests, the year-rule cases of
test_log_timestamps.py, and derived records (CRI-wrapped, JSON-wrapped, with tracebacks,
ISO/epoch timestamps in JSON) that drive the same code paths harder.
"""

from __future__ import annotations

import ast
import json
import random
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import polaris_native
import pytest

from workers.pipeline_native import native_catalog_json
from workers.steps.parse import ParsedLine, Parser

TESTS = Path(__file__).resolve().parent
LOGHUB = TESTS.parents[2] / "shared" / "data" / "loghub"
REFERENCE = datetime(2026, 1, 15, tzinfo=UTC)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


# -- the adapter (Python catalog -> native parser; native tuples -> ParsedLine) ---------------


def to_parsed_line(result: tuple[Any, ...]) -> ParsedLine:
    fmt, micros, level, host, service, message, fields = result
    timestamp = None if micros is None else _EPOCH + timedelta(microseconds=micros)
    return ParsedLine(fmt, timestamp, level, host, service, message, fields or {})


class NativeParser:
    """The native parser with the Python reference for the lines it defers (None)."""

    def __init__(self, python: Parser, reference: datetime) -> None:
        self.python = python
        self.reference = reference
        self.native = polaris_native.LineParser(native_catalog_json(python))
        self.deferred = 0

    def parse_batch(self, lines: Sequence[str], source_format: str | None = None) -> list[ParsedLine]:
        results = self.native.parse_batch(list(lines), self.reference.timestamp(), source_format)
        out = []
        for line, result in zip(lines, results, strict=True):
            if result is None:
                self.deferred += 1
                out.append(self.python.parse(line, source_format))
            else:
                out.append(to_parsed_line(result))
        return out


# -- inputs ------------------------------------------------------------------------------------


def loghub_lines() -> list[str]:
    files = sorted(LOGHUB.glob("*/*_2k.log"))
    if not files:
        pytest.fail(f"Loghub data missing under {LOGHUB}")
    lines: dict[str, None] = {}
    for path in files:
        data = path.read_bytes().decode("utf-8", errors="replace")
        lines.update(dict.fromkeys(data.split("\n")))      # as `polaris eval parse` reads
        lines.update(dict.fromkeys(data.splitlines()))    # as test_parse.py reads
    return list(lines)


def strings_of_test_modules(*names: str) -> list[str]:
    """Every string literal of the named test modules (lines, and much else: all inputs)."""
    found: dict[str, None] = {}
    for name in names:
        tree = ast.parse((TESTS / name).read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                found[node.value] = None
                found.update(dict.fromkeys(node.value.split("\n")))
    return list(found)

UNIT_TEST_EXTRAS = [
    "x" * 1_000_000, "[" * 10_000, "{" * 10_000,
    json.dumps({"@timestamp": "2019-05-01T08:52:41.101Z", "log": {"level": "warning", "logger": "app.db"},
                "message": "slow query", "host": {"name": "web-1"}, "duration_ms": 1200}),
    '10.1.2.3 - - [01/Mar/2024:09:00:00 +0000] "POST /api/v1/login HTTP/1.1" 404 -',
    "2024-03-01 12:00:00,123 - billing.worker - ERROR - charge failed\nTraceback (most recent call last):\n"
    '  File "/app/billing.py", line 42, in charge\n    total = amount / count\nZeroDivisionError: division by zero',
]

ISO_SAMPLES = [
    "2024-05-01T10:00:00Z", "2024-05-01T10:00:00.1+02:00", "2024-05-01 10:00:00,123456789",
    "2014-03-10 19:57:38.562264131 -0400 EDT", "2024-05-01T10:00:00+0530", "2024-05-01T10:00:00 +05:30",
    "20240501T100000", "2024-W18-3T10:00", "2024W183", "2024-W53", "2020-W53-7 12", "2024-05-01",
    "2024-05-01T24:00:00", "2024-02-30T00:00:00", "2024-05-01T10:00:00+24:00", "2024-05-01T10:00:00-23:59:59.999999",
    "2024-05-01T10", "2024-05-01T1000", "2024-05-01T10:00:00:5", "2024-05-01T10:00:00.1234567x+01:00",
    "2024-05-01T10:00:00z", "2024-05-01T10:00:00 UTC", "2024-05-01T10:00:00.5 ABCDEF", "0001-01-01T00:00:00+01:00",
    "9999-12-31T23:59:59-01:00", "2024-05-01\u00e910:00:00", "2024-05-01T10:00:00\u00a0+0100",
    "2024-05-01T\u0661\u0660:00",
    "1714557600", "1714557600.5", "1714557600123", "1714557600123456", "1714557600123456789", "-1", "1e10", "1e400",
    "nan", "Infinity", "1_714_557_600", " 1714557600 ", "\u0661\u0667\u0661\u0664\u0665\u0665\u0667\u0666\u0660\u0660",
    "0x10", "1.", ".5", "1e", "", "  ", "2024-05-01T10:00:00.000000001Z", "2016-10-06T00:17:09.669794202Z",
]


def derived_records(lines: Iterable[str], rng: random.Random) -> list[str]:
    out = []
    for line in lines:
        stripped = line.strip()
        if not stripped or len(stripped) > 5000:
            continue
        out.append(f"2016-10-06T00:17:09.669794202Z stdout F {stripped}")
        out.append(f"{stripped}\nTraceback (most recent call last):\n  File \"x.py\", line 1\n\tat y")
        out.append(json.dumps({"ts": rng.choice(ISO_SAMPLES), "level": rng.choice(["info", "W", "Dpanic", "60", "x"]),
                               "msg": stripped,
                               "n": rng.choice([1, 1.5, -0.0, 1e16, 1e-5, None, [1, {"a": None}], {}, True])},
                              ensure_ascii=rng.random() < 0.5))
        out.append(f"level={rng.choice(['warn', 'error', 'x'])} ts={json.dumps(rng.choice(ISO_SAMPLES))} "
                   f"msg={json.dumps(stripped)} k=v")
    for sample in ISO_SAMPLES:
        for key in ("ts", "time", "@timestamp"):
            out.append(json.dumps({key: sample, "msg": "m"}))
            out.append(f"<34>1 {sample} host app - - - x")
            out.append(f"{sample} stdout F x")
            out.append(f"{sample} host app[1]: x")
    return out


# -- comparison --------------------------------------------------------------------------------


def _described(parsed: ParsedLine) -> tuple[Any, ...]:
    return (parsed.format, parsed.timestamp, parsed.timestamp.tzinfo if parsed.timestamp else None,
            parsed.level, parsed.host, parsed.service, parsed.message, list(parsed.fields.items()))


def _outcome(parse: Callable[[], ParsedLine]) -> tuple[Any, ...]:
    """A parse result described for comparison, or the exception it raises."""
    try:
        return _described(parse())
    except Exception as exc:  # the reference raising is an outcome too
        return ("raises", type(exc).__name__)


def assert_parity(python: Parser, lines: Sequence[str], reference: datetime = REFERENCE,
                  max_deferred: int = 0, batch: int = 1000, source_format: str | None = None,
                  native: Any = None) -> None:
    native = native or polaris_native.LineParser(native_catalog_json(python))
    differences = []
    deferred = 0
    for start in range(0, len(lines), batch):
        chunk = list(lines[start:start + batch])
        for line, result in zip(chunk, native.parse_batch(chunk, reference.timestamp(), source_format), strict=True):
            expected = _outcome(lambda line=line: python.parse(line, source_format))
            if result is None:  # deferred: the adapter runs the Python reference
                deferred += 1
                got = _outcome(lambda line=line: python.parse(line, source_format))
            else:
                got = _outcome(lambda result=result: to_parsed_line(result))
            if got != expected:
                differences.append((line[:300], expected, got))
    shown = "\n".join(f"line {line!r}\n  python {exp}\n  native {got}" for line, exp, got in differences[:5])
    assert not differences, f"{len(differences)} of {len(lines)} lines differ:\n{shown}"
    assert deferred <= max_deferred, f"{deferred} lines deferred to Python"


@pytest.fixture(scope="module")
def parser() -> Parser:
    return Parser(reference_time=lambda: REFERENCE)


def test_loghub_lines(parser: Parser) -> None:
    lines = loghub_lines()
    assert len(lines) > 15_000
    assert_parity(parser, lines)


def test_unit_test_lines(parser: Parser) -> None:
    lines = strings_of_test_modules("test_parse.py", "test_parse_more_formats.py", "test_log_timestamps.py",
                                "test_eval_parse.py")
    assert_parity(parser, lines + UNIT_TEST_EXTRAS)


def test_derived_records(parser: Parser) -> None:
    rng = random.Random(7)
    base = strings_of_test_modules("test_parse.py", "test_parse_more_formats.py") + rng.sample(loghub_lines(), 3000)
    lines = derived_records(base, rng)
    # Python raises OverflowError converting these to UTC; the native parser defers them.
    overflowing = [line for line in lines if "0001-01-01T00:00:00+01:00" in line or "9999-12-31T23:59:59-01:00" in line]
    assert_parity(parser, lines, max_deferred=len(overflowing))


def test_source_format_hint(parser: Parser) -> None:
    lines = strings_of_test_modules("test_parse.py", "test_parse_more_formats.py")
    for name in ("json", "logfmt", "rfc3164", "cri", "hdfs"):
        assert_parity(parser, lines, source_format=name)
    native = polaris_native.LineParser(native_catalog_json(parser))
    with pytest.raises(ValueError, match="unknown source format"):
        native.parse_batch(["x"], REFERENCE.timestamp(), "no-such-format")


@pytest.mark.parametrize("zone", [UTC, ZoneInfo("America/Los_Angeles"), ZoneInfo("Pacific/Kiritimati")])
def test_year_rule_any_reference(zone: tzinfo) -> None:
    """test_log_timestamps.py's year-rule cases, through the parser (rfc3164 and logcat)."""
    texts = ["Dec 31 23:59:59", "Jan  1 00:00:00", "Jan  7 12:00:00", "Feb 29 12:00:00", "Nov  1 01:30:00",
             "Mar  8 02:30:00", "Jul  4 08:00:00"]
    start = datetime(2023, 11, 1, tzinfo=UTC)
    references = [start + timedelta(hours=7 * i) for i in range(0, 4000, 9)]
    edges = [datetime(2025, 1, 1, tzinfo=zone) + timedelta(days=days, microseconds=micro)
             for days in (-366, -7, -1, 0, 1, 7, 358, 359) for micro in (-1, 0, 1)]
    lines = [f"{text} host app: x" for text in texts] + [
        "02-29 12:00:00.000  1  2 I tag: x", "12-31 23:59:59.999  1  2 W tag: x", "01-07 00:00:00.5  1  2 E t: x",
        "[02.29 12:00:00] p.exe - x", "[12.31 23:59:59] p.exe - x"]
    zones = {"rfc3164": zone, "android_logcat": zone, "proxifier": zone}
    now = [REFERENCE]
    python = Parser(zones=zones, reference_time=lambda: now[0])
    native = polaris_native.LineParser(native_catalog_json(python))
    for reference in [*references, *edges]:
        now[0] = reference
        assert_parity(python, lines, reference=reference, native=native)


def test_zones_of_zoneless_formats() -> None:
    """Zone-less timestamps read in configured zones: offsets, DST gaps and folds."""
    zones: dict[str, tzinfo] = {"hdfs": ZoneInfo("Europe/Berlin"), "spark": ZoneInfo("America/New_York"),
                                "nginx_error": timezone(timedelta(hours=-3, minutes=-30)),
                                "windows_cbs": ZoneInfo("Australia/Lord_Howe"), "log4j": ZoneInfo("Asia/Kolkata")}
    lines = []
    day = datetime(2019, 1, 1)
    for hours in range(0, 24 * 365 * 2, 5):
        moment = day + timedelta(hours=hours, minutes=hours % 60)
        lines.append(moment.strftime("%y%m%d %H%M%S") + " 1 INFO a.b: x")
        lines.append(moment.strftime("%y/%m/%d %H:%M:%S") + " INFO a.b: x")
        lines.append(moment.strftime("%Y/%m/%d %H:%M:%S") + " [warn] 1#2: x")
        lines.append(moment.strftime("%Y-%m-%d %H:%M:%S") + ", Info CBS x")
        lines.append(moment.strftime("%Y-%m-%d %H:%M:%S,%f")[:-3] + " INFO [main] a.B: x")
    for text in ("190331 013000", "190331 023000", "190331 033000", "191027 023000", "191027 025959"):
        lines.append(f"{text} 1 INFO a.b: x")
    assert_parity(Parser(zones=zones, reference_time=lambda: REFERENCE), lines)


FORMATS_WITH_STRPTIME = """
levels: {warning: WARN, info: INFO, error: ERROR}
numeric_levels: {"30": INFO}
structured_keys: {timestamp: [time], level: [level], message: [msg], host: [host], service: [app]}
formats:
  - name: longdate
    first_chars: alpha
    regex: >-
      (?P<ts>[A-Za-z]+[ ]\\d+[ ][A-Za-z]+[ ]\\d{4}[ ]\\d+:\\d\\d:\\d\\d[ ]?[APap][Mm](?:[ ]\\S+)?)
      [ ]+(?P<level>\\w+):[ ](?P<msg>.*)
    level: {group: level}
    timestamp: {group: ts, formats: ['%A %d %B %Y %I:%M:%S %p %Z', '%A %d %B %Y %I:%M:%S%p', '%a %d %b %Y %I:%M:%S %p']}
  - name: ordinal
    first_chars: digit
    regex: '(?P<ts>\\d{4}-\\d{3}T\\d\\d:\\d\\d(?:[+-]\\d\\d:?\\d\\d(?::?\\d\\d(?:\\.\\d+)?)?|Z)?)[ ](?P<msg>.*)'
    timestamp: {group: ts, formats: ['%Y-%jT%H:%M%z', '%Y-%jT%H:%M', '%Y-%m-%dT%H:%M %%']}
  - name: local
    first_chars: digit
    regex: '(?P<ts>\\d\\d\\d\\d\\d\\d\\d\\d[ ]\\d\\d:\\d\\d)[ ](?P<msg>.*)'
    timestamp: {group: ts, formats: ['%Y%m%d %H:%M'], zone: Europe/Berlin}
  - name: accented
    first_chars: "\u00e9\u00e8"
    regex: '(?P<msg>.+)'
    service_default: accents
  - name: words
    regex: '(?P<_skip>\\#)?(?P<word>\\w+)\\b(?:\\s+(?P<msg>.*))?$'
"""


def test_catalog_with_full_strptime_and_zones(tmp_path: Path) -> None:
    formats = tmp_path / "formats.yaml"
    formats.write_text(FORMATS_WITH_STRPTIME, encoding="utf-8")
    python = Parser(formats, reference_time=lambda: REFERENCE)
    lines = ["Monday 01 July 2024 12:30:00 PM UTC info: x", "monday 01 july 2024 12:30:00 am gmt warning: x",
             "Friday 29 February 2024 01:00:00PM error: x", "Sat 29 Feb 2023 01:00:00 PM info: x",
             "Sunday 31 March 2024 13:00:00 PM info: x", "Sunday 31 March 2024 12:00:00 XM info: x",
             "Mon 01 Jul 2024 12:30:00 PM info: x", "MONDAY 1 JULY 2024 9:05:07 pm UTC info: x",
             "2024-366T23:59Z x", "2023-366T23:59 x", "2024-001T00:00+01:00 x", "2024-060T12:00-0530 x",
             "2024-060T12:00+01:00:30.5 x", "2024-060T12:00+0100:30 x", "2024-000T00:00 x",
             "20240331 02:30 x", "20241027 02:30 x", "20240101 00:00 x", "20991231 23:59 x", "21000701 12:00 x",
             "hello world", "#hello", "héllo wörld", "été", "èx", "ê", "x\u2028y", "٣٤ five", "a_b-c"]
    # Berlin wall times from 2099 on are past chrono-tz's transition table: deferred.
    assert_parity(python, lines, max_deferred=2)


@pytest.mark.parametrize(("regex", "error"), [
    ("(?i)(?P<msg>.*)", "IGNORECASE"), ("(?m)(?P<msg>.*)$", "MULTILINE"),
    ("(?P<msg>(?(1)a|b))", "conditional"),
])
def test_unsupported_regex_is_refused_naming_the_format(tmp_path: Path, regex: str, error: str) -> None:
    formats = tmp_path / "formats.yaml"
    formats.write_text(f"formats:\n  - name: odd\n    regex: '{regex}'\n", encoding="utf-8")
    python = Parser(formats)
    with pytest.raises(ValueError, match=f"odd.*{error}"):
        polaris_native.LineParser(native_catalog_json(python))


def test_unsupported_strptime_directive_is_refused(tmp_path: Path) -> None:
    formats = tmp_path / "formats.yaml"
    formats.write_text("formats:\n  - name: weekly\n    regex: '(?P<ts>\\S+) (?P<msg>.*)'\n"
                       "    timestamp: {group: ts, formats: ['%Y-%U-%w']}\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"weekly.*%U"):
        polaris_native.LineParser(native_catalog_json(Parser(formats)))


def test_python_regex_features_translate(tmp_path: Path) -> None:
    """Verbose whitespace, literal braces, possessive and lazy quantifiers, lookarounds,
    backreferences, Python's \\d \\w \\s \\b classes and escapes."""
    entries = [
        r"(?P<a>\d+)\s(?P<msg>.*)",
        r"(?P<a>x{)(?P<msg>.{,3}?)(?P<rest>\w*)",
        r"(?P<q>['\x22])(?P<msg>.*?)(?P=q)(?P<tail>.*)",
        r"(?P<a>[^\s\]=]++)(?<!z)=(?=\S)(?P<msg>\S*+)",
        r"(?P<w>\w+)\b(?P<msg>.*)",
        r"(?P<a>\u00e9|\x41|\101|[\t\u2028-\u2029])(?P<msg>.*)",
        r"(?P<a>(?:ab)+?)(?P<msg>b?.*)",
        r"(?x) (?P<a> [ ]\# ) (?P<msg> .* )  # comment",
    ]
    yaml_entries = "".join(
        f"  - name: f{i}\n    regex: {json.dumps(regex)}\n" for i, regex in enumerate(entries))
    formats = tmp_path / "formats.yaml"
    formats.write_text(f"formats:\n{yaml_entries}", encoding="utf-8")
    python = Parser(formats)
    chars = ["1", "\u0661", "\u1c50", "\U0001e950", "\U00011f50", "\u00bd", "a", "\u0301", "_", "\u203f", " ",
             "\x1c", "\x85", "\u200b", "\ufeff", "x{", "{", "'", '"', "=", "]", "z", "\u00e9", "A", "\t", "\u2028",
             "ab", "#", "b", "\u212a", "\u0130"]
    rng = random.Random(11)
    lines = ["".join(rng.choice(chars) for _ in range(rng.randint(1, 12))) for _ in range(20_000)]
    lines += ["12 x", "x{ab", "'q' tail", "\"a\"b", "k=v", "z=v", "k= v", "word rest", " # x", "abab", "ababb"]
    assert_parity(python, lines)


def test_native_is_faster(parser: Parser) -> None:
    """Not a benchmark: a guard that the batch path is not accidentally slow."""
    lines = loghub_lines()[:8000]
    native = polaris_native.LineParser(native_catalog_json(parser))
    started = time.process_time()
    native.parse_batch(lines, REFERENCE.timestamp())
    native_seconds = time.process_time() - started
    started = time.process_time()
    for line in lines:
        parser.parse(line)
    python_seconds = time.process_time() - started
    assert native_seconds < python_seconds


def _random_timestamp_texts(rng: random.Random, count: int) -> list[str]:
    """Near-ISO and near-epoch texts: the edges of fromisoformat, float() and the fallbacks."""
    pieces = ["2024", "-", "05", "01", "T", " ", ":", "10", "00", "59", "60", "24", ".", ",", "123", "123456",
              "1234567", "000000001", "Z", "z", "+", "-", "02:00", "0530", "05", "W", "18", "3", "53", "\u00e9",
              "\u0661", "EST", " UTC", "e", "1e10", "_", "inf", "nan", "17145576", "00", "\x00", "\u00a0", "9999",
              "0001", "13", "32", "29", "02", "1", "+24:00", "-23:59:59.999999", "+01:00:30", "+01:00:30.5"]
    texts = []
    for _ in range(count):
        texts.append("".join(rng.choice(pieces) for _ in range(rng.randint(1, 12))))
        base = rng.choice(["2024-05-01T10:00:00", "2024-05-01 10:00:00", "20240501T100000", "2024-W18-3T10",
                           "1714557600", "2024-02-29"])
        texts.append(base + "".join(rng.choice(pieces) for _ in range(rng.randint(0, 4))))
    return texts


def test_random_timestamps_in_structured_records(parser: Parser) -> None:
    rng = random.Random(5)
    texts = _random_timestamp_texts(rng, 15_000)
    lines = [json.dumps({"ts": text, "msg": "m"}) for text in texts]
    lines += [json.dumps({"ts": rng.choice([1, -1, 1.5, 1e300, 1714557600123, -62135596800, 253402300800,
                                            1714557600.0000005, 2.5e-7, -0.5e-6])}) for _ in range(200)]
    lines += [f"ts={json.dumps(text)} msg=m level=info" for text in texts[:5000]]
    overflowing = sum(("0001" in t or "9999" in t) for t in texts) + 10
    assert_parity(parser, lines, max_deferred=overflowing)


def test_random_json_and_logfmt(parser: Parser) -> None:
    rng = random.Random(9)
    pieces = ['{', '}', '[', ']', '"', ':', ',', ' ', 'a', '"k"', '"v"', '1', '-0', '1.5e3', 'true', 'null', 'NaN',
              '-Infinity', '\\"', '\\u00e9', '\\ud83d\\ude00', '\\ud800', '\\n', '\t', '=', 'x=1', 'y="a b"', "é",
              '"level"', '"msg"', '"time"', '"host"', '"service"', '{"a":{"b":1}}', '[1,[2,{}]]', '1e400',
              '12345678901234567890123', '0.1', '1E-7', '"\x01"']
    lines = ["".join(rng.choice(pieces) for _ in range(rng.randint(1, 14))) for _ in range(30_000)]
    lines = [("{" + line + "}") if rng.random() < 0.5 else line for line in lines]
    # Lone surrogates in JSON escapes make Python strings the native side cannot hold.
    assert_parity(parser, lines, max_deferred=sum("\\ud800" in line for line in lines))


def test_unicode_mutations_of_real_lines(parser: Parser) -> None:
    """Real lines with characters where Python's classes differ from the regex crate's
    (digits of newer Unicode versions, \\x1c-\\x1f, combining marks, other numerics)."""
    rng = random.Random(13)
    tricky = ["\u0663", "\u1c50", "\U00011f50", "\U0001e4f0", "\x1c", "\x1f", "\u2028", "\u00a0", "\u00e9", "\u017f",
              "\u212a", "\u0301", "\u00bd", "\u0130", "\u200b", "\ufeff", "\x85", "\u3000", "\U0001d7ce", "\u0f20"]
    lines = []
    base = rng.sample(loghub_lines(), 4000) + strings_of_test_modules("test_parse.py", "test_parse_more_formats.py")
    for line in base:
        chars = list(line)
        for _ in range(rng.randint(1, 3)):
            position = rng.randint(0, len(chars))
            if rng.random() < 0.5 and position < len(chars):
                chars[position] = rng.choice(tricky)
            else:
                chars.insert(position, rng.choice(tricky))
        lines.append("".join(chars))
    assert_parity(parser, lines)


def test_float_spelling_and_surrogates(parser: Parser) -> None:
    """JSON numbers come back as Python spells them (repr); a str with a lone surrogate is
    left to the Python reference."""
    import struct

    rng = random.Random(17)
    floats = [struct.unpack("<d", rng.getrandbits(64).to_bytes(8, "little"))[0] for _ in range(3000)]
    floats += [rng.uniform(-1e20, 1e20) for _ in range(1000)] + [rng.random() * 10 ** rng.randint(-30, 30)
                                                                  for _ in range(2000)]
    lines = [json.dumps({"msg": "m", "x": value, "y": [value, {"z": value}]}) for value in floats]
    assert_parity(parser, lines)
    surrogates = ["\ud800 lone", "Dec 10 06:55:46 LabSZ sshd[1]: \udcff"]
    assert_parity(parser, surrogates, max_deferred=len(surrogates))


def test_zone_rules_are_the_system_tz_database() -> None:
    """ZoneInfo reads the system tz database first; the native rules must be the same release."""
    tzdata = Path("/usr/share/zoneinfo/tzdata.zi")
    # ZoneInfo falls back to the tzdata package only without a system database; the stack's
    # machines (Debian, tzdata installed) have one, so its absence is a setup error here.
    assert tzdata.is_file(), "no system tz database (/usr/share/zoneinfo): install Debian's tzdata"
    first = tzdata.read_text(encoding="utf-8").splitlines()[0]
    assert first == f"# version {polaris_native.LineParser.tzdb_version}"
