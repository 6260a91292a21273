"""Unit tests for workers/steps/parse.py on real lines (Loghub samples, software docs)."""

from __future__ import annotations

import csv
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from workers.steps.parse import NORMALISED_LEVELS, ParsedLine, Parser, parse_line

SHARED_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
LOGHUB = SHARED_DATA / "loghub"
# Fixed "now" so year-less syslog timestamps are deterministic.
REFERENCE = datetime(2026, 1, 15, tzinfo=UTC)


@pytest.fixture(scope="module")
def parser() -> Parser:
    return Parser(reference_time=lambda: REFERENCE)


def loghub_rows(system: str) -> list[tuple[str, dict[str, str]]]:
    """(raw line, ground-truth row) pairs of one Loghub system."""
    folder = LOGHUB / system
    if not folder.is_dir():
        pytest.fail(f"Loghub data missing: expected {folder} (see ../shared/data/README.md)")
    raw = (folder / f"{system}_2k.log").read_text(encoding="utf-8", errors="replace")
    with (folder / f"{system}_2k.log_structured.csv").open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    return list(zip(raw.splitlines(), rows, strict=True))


# -- RFC 3164 ------------------------------------------------------------------------------


def test_rfc3164_rfc_example_with_pri(parser: Parser) -> None:
    # RFC 3164 section 5.4, example 1
    line = "<34>Oct 11 22:14:15 mymachine su: 'su root' failed for lonvick on /dev/pts/8"
    parsed = parser.parse(line)
    assert parsed.format == "rfc3164"
    assert parsed.host == "mymachine"
    assert parsed.service == "su"
    assert parsed.message == "'su root' failed for lonvick on /dev/pts/8"
    assert parsed.fields["facility"] == "auth"
    assert parsed.fields["severity"] == "crit"
    assert parsed.level == "CRITICAL"
    # October is in the future relative to mid-January: previous year.
    assert parsed.timestamp == datetime(2025, 10, 11, 22, 14, 15, tzinfo=UTC)


def test_rfc3164_without_tag(parser: Parser) -> None:
    # RFC 3164 section 5.4, example 2: no TAG, message straight after the host
    parsed = parser.parse("<13>Feb  5 17:32:18 10.0.0.99 Use the BFG!")
    assert parsed.format == "rfc3164"
    assert parsed.host == "10.0.0.99"
    assert parsed.service is None
    assert parsed.message == "Use the BFG!"
    assert parsed.level == "NOTICE"
    assert parsed.timestamp == datetime(2025, 2, 5, 17, 32, 18, tzinfo=UTC)


def test_rfc3164_loghub_openssh(parser: Parser) -> None:
    parsed = parser.parse(
        "Dec 10 06:55:46 LabSZ sshd[24200]: Invalid user webmaster from 173.234.31.186\n"
    )
    assert parsed == ParsedLine(
        "rfc3164",
        datetime(2025, 12, 10, 6, 55, 46, tzinfo=UTC),
        None,
        "LabSZ",
        "sshd",
        "Invalid user webmaster from 173.234.31.186",
        {"pid": "24200"},
    )


def test_rfc3164_loghub_linux_program_with_module(parser: Parser) -> None:
    parsed = parser.parse(
        "Jun 14 15:16:02 combo sshd(pam_unix)[19937]: check pass; user unknown"
    )
    assert parsed.host == "combo"
    assert (parsed.service, parsed.fields["pid"]) == ("sshd(pam_unix)", "19937")
    assert parsed.message == "check pass; user unknown"


def test_year_rule_configurable_reference() -> None:
    december = "Dec 31 23:59:59 host app: x"
    in_january = Parser(reference_time=lambda: datetime(2026, 1, 1, tzinfo=UTC)).parse(december)
    in_december = Parser(reference_time=lambda: datetime(2026, 12, 31, tzinfo=UTC)).parse(december)
    assert in_january.timestamp is not None and in_january.timestamp.year == 2025
    assert in_december.timestamp is not None and in_december.timestamp.year == 2026


# -- JSON lines ----------------------------------------------------------------------------


def test_json_ecs_nested_and_dotted(parser: Parser) -> None:
    line = json.dumps({
        "@timestamp": "2019-05-01T08:52:41.101Z",
        "log": {"level": "warning", "logger": "app.db"},
        "message": "slow query",
        "host": {"name": "web-1"},
        "duration_ms": 1200,
    })
    parsed = parser.parse(line)
    assert parsed.format == "json"
    assert parsed.timestamp == datetime(2019, 5, 1, 8, 52, 41, 101000, tzinfo=UTC)
    assert (parsed.level, parsed.host, parsed.service) == ("WARN", "web-1", "app.db")
    assert parsed.message == "slow query"
    assert parsed.fields == {"duration_ms": "1200"}


def test_json_logrus_readme_example(parser: Parser) -> None:
    # github.com/sirupsen/logrus README (Go time.String() timestamp)
    line = ('{"animal":"walrus","level":"info","msg":"A group of walrus emerges from the'
            ' ocean","size":10,"time":"2014-03-10 19:57:38.562264131 -0400 EDT"}')
    parsed = parser.parse(line)
    assert (parsed.level, parsed.message) == ("INFO", "A group of walrus emerges from the ocean")
    assert parsed.timestamp == datetime(2014, 3, 10, 23, 57, 38, 562264, tzinfo=UTC)
    assert parsed.fields == {"animal": "walrus", "size": "10"}


def test_json_zap_production(parser: Parser) -> None:
    # go.uber.org/zap production encoder: epoch-seconds float "ts", logger, caller
    line = ('{"level":"error","ts":1257894000.0,"logger":"payments","caller":"pay/api.go:42",'
            '"msg":"failed to fetch URL","url":"http://example.com","attempt":3}')
    parsed = parser.parse(line)
    assert parsed.timestamp == datetime(2009, 11, 10, 23, 0, tzinfo=UTC)
    assert (parsed.level, parsed.service) == ("ERROR", "payments")
    assert parsed.fields["caller"] == "pay/api.go:42"


def test_json_bunyan_numeric_level(parser: Parser) -> None:
    # github.com/trentm/node-bunyan README
    line = ('{"name":"myapp","hostname":"banana.local","pid":40161,"level":30,"msg":"hi",'
            '"time":"2013-01-04T18:46:23.851Z","v":0}')
    parsed = parser.parse(line)
    assert (parsed.level, parsed.host, parsed.service, parsed.message) == (
        "INFO", "banana.local", "myapp", "hi")
    assert parsed.timestamp == datetime(2013, 1, 4, 18, 46, 23, 851000, tzinfo=UTC)


def test_json_python_logging(parser: Parser) -> None:
    # python-json-logger with "%(asctime)s %(levelname)s %(name)s %(message)s"
    line = ('{"asctime": "2024-02-29 13:45:01,250", "levelname": "CRITICAL",'
            ' "name": "billing.worker", "message": "queue full"}')
    parsed = parser.parse(line)
    assert (parsed.level, parsed.service, parsed.message) == (
        "CRITICAL", "billing.worker", "queue full")
    assert parsed.timestamp == datetime(2024, 2, 29, 13, 45, 1, 250000, tzinfo=UTC)


def test_json_that_is_not_an_object_is_unknown(parser: Parser) -> None:
    assert parser.parse("[1, 2, 3]").format == "unknown"


# -- robustness ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "line",
    [
        "",
        "   \n",
        "\x00\x01\xff\xfe binary \x7f junk",
        '{"level": "info", "msg": "truncat',
        "Dec 10 06:55",
        "<999>Oct 11 22:14:15 host app: out-of-range PRI",
        "x" * 1_000_000,
        "[" * 10_000,
        "{" * 10_000,
    ],
)
def test_malformed_lines_never_raise_nor_drop(parser: Parser, line: str) -> None:
    parsed = parser.parse(line)
    assert isinstance(parsed, ParsedLine)
    assert parsed.level is None or parsed.level in NORMALISED_LEVELS
    if parsed.format == "unknown":
        assert parsed.message == line.strip()


def test_truncated_json_keeps_raw_text(parser: Parser) -> None:
    line = '{"level": "info", "msg": "truncat'
    assert parser.parse(line) == ParsedLine("unknown", None, None, None, None, line, {})


def test_module_level_parse_line() -> None:
    parsed = parse_line('{"level":"debug","msg":"x"}')
    assert (parsed.format, parsed.level, parsed.message) == ("json", "DEBUG", "x")


def test_named_format_used_and_unknown_name_rejected(parser: Parser) -> None:
    assert parser.parse('{"msg":"x"}', source_format="json").format == "json"
    # a line that does not fit the named format is still detected, not lost
    assert parser.parse("Dec 10 06:55:46 h a: m", source_format="json").format == "rfc3164"
    with pytest.raises(ValueError, match="unknown source format"):
        parser.parse("x", source_format="no-such-format")


# -- RFC 5424 (the RFC's own examples, section 6.5) ------------------------------------------


def test_rfc5424_example_1_bom_and_nil_procid(parser: Parser) -> None:
    line = ("<34>1 2003-10-11T22:14:15.003Z mymachine.example.com su - ID47 - "
            "\ufeff'su root' failed for lonvick on /dev/pts/8")
    parsed = parser.parse(line)
    assert parsed.format == "rfc5424"
    assert parsed.timestamp == datetime(2003, 10, 11, 22, 14, 15, 3000, tzinfo=UTC)
    assert (parsed.host, parsed.service, parsed.level) == ("mymachine.example.com", "su",
                                                           "CRITICAL")
    assert parsed.message == "'su root' failed for lonvick on /dev/pts/8"
    assert parsed.fields == {"version": "1", "msgid": "ID47", "facility": "auth",
                             "severity": "crit"}


def test_rfc5424_example_2_offset_timestamp(parser: Parser) -> None:
    line = ("<165>1 2003-08-24T05:14:15.000003-07:00 192.0.2.1 myproc 8710 - - "
            "%% It's time to make the do-nuts.")
    parsed = parser.parse(line)
    assert parsed.timestamp == datetime(2003, 8, 24, 12, 14, 15, 3, tzinfo=UTC)
    assert parsed.fields["procid"] == "8710"
    assert (parsed.fields["facility"], parsed.level) == ("local4", "NOTICE")
    assert parsed.message == "%% It's time to make the do-nuts."


def test_rfc5424_example_4_structured_data_only(parser: Parser) -> None:
    line = ('<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 '
            '[exampleSDID@32473 iut="3" eventSource="Application" eventID="1011"]'
            '[examplePriority@32473 class="high"]')
    parsed = parser.parse(line)
    assert parsed.message == ""
    assert parsed.fields["sd.exampleSDID@32473.eventSource"] == "Application"
    assert parsed.fields["sd.examplePriority@32473.class"] == "high"


# -- web servers ---------------------------------------------------------------------------

APACHE_DOC_COMBINED = (
    '127.0.0.1 - frank [10/Oct/2000:13:55:36 -0700] "GET /apache_pb.gif HTTP/1.0" 200 2326 '
    '"http://www.example.com/start.html" "Mozilla/4.08 [en] (Win98; I ;Nav)"'
)


def test_access_log_combined_apache_docs(parser: Parser) -> None:
    parsed = parser.parse(APACHE_DOC_COMBINED)
    assert parsed.format == "access_log"
    assert parsed.timestamp == datetime(2000, 10, 10, 20, 55, 36, tzinfo=UTC)
    assert parsed.message == "GET /apache_pb.gif HTTP/1.0"
    assert parsed.level == "INFO"
    assert parsed.fields["client"] == "127.0.0.1"
    assert parsed.fields["user"] == "frank"
    assert parsed.fields["status"] == "200"
    assert parsed.fields["user_agent"] == "Mozilla/4.08 [en] (Win98; I ;Nav)"
    assert "ident" not in parsed.fields  # "-" means absent


def test_access_log_common_format_and_status_levels(parser: Parser) -> None:
    common = '10.1.2.3 - - [01/Mar/2024:09:00:00 +0000] "POST /api/v1/login HTTP/1.1" 503 -'
    parsed = parser.parse(common)
    assert (parsed.format, parsed.level, parsed.fields["method"]) == ("access_log", "ERROR",
                                                                      "POST")
    assert "bytes" not in parsed.fields
    missing = parser.parse(common.replace("503", "404"))
    assert missing.level == "WARN"


def test_nginx_error_log(parser: Parser) -> None:
    line = ('2011/08/28 14:08:02 [error] 14063#0: *1 open() "/usr/share/nginx/html/favicon.ico"'
            ' failed (2: No such file or directory), client: 127.0.0.1, server: localhost,'
            ' request: "GET /favicon.ico HTTP/1.1", host: "localhost"')
    parsed = parser.parse(line)
    assert (parsed.format, parsed.level, parsed.service) == ("nginx_error", "ERROR", "nginx")
    assert parsed.message.startswith('open() "/usr/share/nginx/html/favicon.ico" failed')
    assert parsed.fields == {"pid": "14063", "tid": "0", "connection": "1"}


def test_apache_24_error_log_docs(parser: Parser) -> None:
    # httpd.apache.org/docs/2.4/logs.html
    line = ("[Fri Sep 09 10:42:29.902022 2011] [core:error] [pid 35708:tid 4328636416] "
            "[client 72.15.99.187] File does not exist: /usr/local/apache2/htdocs/favicon.ico")
    parsed = parser.parse(line)
    assert (parsed.format, parsed.level, parsed.service) == ("apache_error", "ERROR", "core")
    assert parsed.timestamp == datetime(2011, 9, 9, 10, 42, 29, 902022, tzinfo=UTC)
    assert parsed.fields["client"] == "72.15.99.187"
    assert parsed.message.endswith("File does not exist: /usr/local/apache2/htdocs/favicon.ico")


# -- containers and logfmt -----------------------------------------------------------------


def test_cri_plain_and_partial(parser: Parser) -> None:
    # kubernetes CRI container log format design doc
    parsed = parser.parse("2016-10-06T00:17:09.669794202Z stdout P log content 1")
    assert parsed.format == "cri"
    assert parsed.timestamp == datetime(2016, 10, 6, 0, 17, 9, 669794, tzinfo=UTC)
    assert (parsed.message, parsed.fields) == ("log content 1", {"stream": "stdout", "tag": "P"})


def test_cri_wrapping_json_takes_inner_meaning(parser: Parser) -> None:
    line = ('2024-05-01T10:00:00.000000001Z stderr F {"level":"error","ts":1714557600.5,'
            '"logger":"api","msg":"db down"}')
    parsed = parser.parse(line)
    assert (parsed.format, parsed.level, parsed.service, parsed.message) == (
        "cri", "ERROR", "api", "db down")
    assert parsed.fields["inner_format"] == "json"
    assert parsed.fields["stream"] == "stderr"
    assert parsed.timestamp == datetime(2024, 5, 1, 10, 0, 0, 500000, tzinfo=UTC)


def test_logfmt_go_kit(parser: Parser) -> None:
    line = ('level=warn ts=2016-03-04T18:40:00.123Z caller=main.go:42 msg="disk \\"sda\\" full"'
            ' host=db-2 used_pct=97.5')
    parsed = parser.parse(line)
    assert parsed.format == "logfmt"
    assert (parsed.level, parsed.host, parsed.message) == ("WARN", "db-2", 'disk "sda" full')
    assert parsed.fields == {"caller": "main.go:42", "used_pct": "97.5"}


def test_logfmt_heroku_router_without_message_keeps_line(parser: Parser) -> None:
    line = ('at=info method=GET path=/ host=mutelight.org fwd="124.133.52.161" dyno=web.2 '
            'connect=4ms service=8ms status=200 bytes=1653')
    parsed = parser.parse(line)
    assert (parsed.format, parsed.message, parsed.host) == ("logfmt", line, "mutelight.org")


def test_prose_with_one_assignment_is_not_logfmt(parser: Parser) -> None:
    assert parser.parse("user admin logged in from host=1.2.3.4").format == "unknown"


# -- application logs and multi-line records -----------------------------------------------


def test_python_logging_traceback_stays_one_record(parser: Parser) -> None:
    record = (
        "2024-03-01 12:00:00,123 - billing.worker - ERROR - charge failed\n"
        "Traceback (most recent call last):\n"
        '  File "/app/billing.py", line 42, in charge\n'
        "    total = amount / count\n"
        "ZeroDivisionError: division by zero"
    )
    parsed = parser.parse(record)
    assert (parsed.format, parsed.level, parsed.service) == ("python_logging", "ERROR",
                                                             "billing.worker")
    assert parsed.timestamp == datetime(2024, 3, 1, 12, 0, 0, 123000, tzinfo=UTC)
    assert parsed.message == "charge failed\n" + record.split("\n", 1)[1]


def test_java_stack_trace_stays_one_record(parser: Parser) -> None:
    record = (
        "2015-10-18 18:05:56,062 ERROR [main] org.apache.hadoop.mapred.YarnChild: Error running"
        " child\njava.lang.NullPointerException\n"
        "\tat org.apache.hadoop.mapred.MapTask.runNewMapper(MapTask.java:764)\n"
        "\tat org.apache.hadoop.mapred.YarnChild.main(YarnChild.java:158)"
    )
    parsed = parser.parse(record)
    assert (parsed.format, parsed.level, parsed.fields["thread"]) == ("log4j", "ERROR", "main")
    assert parsed.service == "org.apache.hadoop.mapred.YarnChild"
    assert parsed.message.splitlines() == ["Error running child", *record.splitlines()[1:]]


def test_json_header_line_with_traceback(parser: Parser) -> None:
    record = '{"level":"error","msg":"boom"}\nTraceback (most recent call last):\n  x'
    parsed = parser.parse(record)
    assert (parsed.format, parsed.message) == ("json", "boom\nTraceback (most recent call last):"
                                                       "\n  x")


def test_python_basic_config_format(parser: Parser) -> None:
    parsed = parser.parse("WARNING:urllib3.connectionpool:Retrying (Retry(total=2)) after ...")
    assert (parsed.format, parsed.level, parsed.service) == ("python_basic", "WARN",
                                                             "urllib3.connectionpool")


# -- zones ---------------------------------------------------------------------------------


def test_configured_zone_for_zoneless_format() -> None:
    from zoneinfo import ZoneInfo

    pacific = Parser(zones={"hdfs": ZoneInfo("America/Los_Angeles")})
    line = "081109 203615 148 INFO dfs.DataNode$PacketResponder: PacketResponder 1 terminating"
    assert parse_line(line).timestamp == datetime(2008, 11, 9, 20, 36, 15, tzinfo=UTC)
    assert pacific.parse(line).timestamp == datetime(2008, 11, 10, 4, 36, 15, tzinfo=UTC)


def test_bgl_uses_exact_epoch(parser: Parser) -> None:
    line = ("- 1117838570 2005.06.03 R02-M1-N0-C:J12-U11 2005-06-03-15.42.50.675872 "
            "R02-M1-N0-C:J12-U11 RAS KERNEL INFO instruction cache parity error corrected")
    parsed = parser.parse(line)
    assert parsed.timestamp == datetime(2005, 6, 3, 22, 42, 50, tzinfo=UTC)
    assert (parsed.host, parsed.service, parsed.level) == ("R02-M1-N0-C:J12-U11", "KERNEL",
                                                           "INFO")


# -- the Loghub samples, every line --------------------------------------------------------

LOGHUB_EXPECTED_FORMAT = {
    "Apache": "apache_error", "BGL": "bgl", "HDFS": "hdfs", "Hadoop": "log4j",
    "Linux": "rfc3164", "OpenSSH": "rfc3164", "Spark": "spark", "Zookeeper": "zookeeper",
}


@pytest.mark.parametrize("system", sorted(LOGHUB_EXPECTED_FORMAT))
def test_loghub_detection_and_content(parser: Parser, system: str) -> None:
    rows = loghub_rows(system)
    wrong = []
    for raw, truth in rows:
        parsed = parser.parse(raw)
        if parsed.format != LOGHUB_EXPECTED_FORMAT[system] or parsed.message != truth["Content"]:
            wrong.append((truth["LineId"], parsed.format, parsed.message, truth["Content"]))
        assert parsed.timestamp is not None, raw
    assert wrong == []


@pytest.mark.parametrize("system", ["BGL", "HDFS", "Hadoop", "Spark", "Linux"])
def test_loghub_component_and_level(parser: Parser, system: str) -> None:
    for raw, truth in loghub_rows(system):
        parsed = parser.parse(raw)
        assert parsed.service == truth["Component"], raw
        if system != "Linux":  # Loghub's Linux "Level" column holds the host
            assert parsed.level == parser.catalog.level_aliases[truth["Level"].lower()], raw


# -- formats are data ----------------------------------------------------------------------


def test_new_format_is_a_file_entry_with_its_own_zone(tmp_path: Path) -> None:
    formats = tmp_path / "formats.yaml"
    formats.write_text(
        "levels: {warning: WARN}\n"
        "formats:\n"
        "  - name: postgres\n"
        "    first_chars: digit\n"
        "    regex: '(?P<ts>\\d{4}-\\d\\d-\\d\\d[ ]\\d\\d:\\d\\d:\\d\\d\\.\\d+)[ ]\\[(?P<pid>\\d+)\\]"
        "[ ](?P<level>[A-Z]+):[ ]+(?P<msg>.*)'\n"
        "    service_default: postgres\n"
        "    level: {group: level}\n"
        "    timestamp: {group: ts, formats: ['%Y-%m-%d %H:%M:%S.%f'], zone: Europe/Berlin}\n",
        encoding="utf-8",
    )
    parsed = Parser(formats).parse(
        "2024-07-01 12:00:00.250 [4711] WARNING:  checkpoints are occurring too frequently")
    assert (parsed.format, parsed.level, parsed.service) == ("postgres", "WARN", "postgres")
    assert parsed.timestamp == datetime(2024, 7, 1, 10, 0, 0, 250000, tzinfo=UTC)  # CEST
    assert parsed.fields == {"pid": "4711"}
    assert parsed.message == "checkpoints are occurring too frequently"


def test_bad_format_file_fails_at_load(tmp_path: Path) -> None:
    from workers.steps.log_formats import FormatConfigError

    formats = tmp_path / "formats.yaml"
    formats.write_text("formats:\n  - name: x\n    regex: '(?P<text>.*)'\n", encoding="utf-8")
    with pytest.raises(FormatConfigError, match="lacks groups"):
        Parser(formats)
