"""Formats of widely deployed software beyond the eight Loghub systems in ../shared/data:
each is one entry in formats.yaml, detected with no hint."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from workers.steps.parse import parse_line

CASES = [
    pytest.param(
        "03-17 16:13:38.811  1702  2395 D WindowManager: printFreezingDisplayLogsopening app wtoken = "
        "AppWindowToken{9f4ef63 token=Token{a64f992}}, allDrawn= false",
        "android_logcat", "DEBUG", None, "WindowManager",
        "printFreezingDisplayLogsopening app wtoken = AppWindowToken{9f4ef63 token=Token{a64f992}}, allDrawn= false",
        {"pid": "1702", "tid": "2395"}, id="android-logcat-threadtime"),
    pytest.param(
        "03-17 16:15:10.020  1702 17036 E ActivityManager: ANR in com.example.app",
        "android_logcat", "ERROR", None, "ActivityManager", "ANR in com.example.app", {"tid": "17036"},
        id="android-error"),
    pytest.param(
        "nova-api.log.1.2017-05-16_13:53:08 2017-05-16 00:00:00.008 25746 INFO nova.osapi_compute.wsgi.server "
        "[req-38101a0b-2096-447d-96ea-a692162415ae 113d3a99c3da401fbd62cc2caa5b96d2 "
        "54fadb412c4e40cdbaed9335e4c35a9e - - -] 10.11.10.1 \"GET /v2/servers/detail HTTP/1.1\" status: 200",
        "oslo_log", "INFO", None, "nova.osapi_compute.wsgi.server",
        "10.11.10.1 \"GET /v2/servers/detail HTTP/1.1\" status: 200",
        {"pid": "25746", "file": "nova-api.log.1.2017-05-16_13:53:08"}, id="openstack-oslo-with-file"),
    pytest.param(
        "2017-05-16 00:00:04.500 2931 WARNING nova.compute.manager [-] While synchronizing instance power states",
        "oslo_log", "WARN", None, "nova.compute.manager", "While synchronizing instance power states",
        {"context": "-"}, id="openstack-oslo-no-request"),
    pytest.param(
        "2016-09-28 04:30:30, Info                  CBS    Loaded Servicing Stack v6.1.7601.23505 with Core: "
        "C:\\Windows\\winsxs\\cbscore.dll",
        "windows_cbs", "INFO", None, "CBS",
        "Loaded Servicing Stack v6.1.7601.23505 with Core: C:\\Windows\\winsxs\\cbscore.dll", {},
        id="windows-cbs"),
    pytest.param(
        "- 1131566461 2005.11.09 dn228 Nov 9 12:01:01 dn228/dn228 crond(pam_unix)[2915]: session closed for user root",
        "sandia_syslog", None, "dn228", "crond(pam_unix)", "session closed for user root",
        {"pid": "2915", "location": "dn228/dn228"}, id="thunderbird"),
    pytest.param(
        "20171223-22:15:29:606|Step_LSC|30002312|onStandStepChanged 3579",
        "pipe_separated", None, None, "Step_LSC", "onStandStepChanged 3579", {"pid": "30002312"},
        id="pipe-separated"),
    pytest.param(
        "[10.30 16:49:06] chrome.exe *64 - proxy.cse.cuhk.edu.hk:5070 open through proxy "
        "proxy.cse.cuhk.edu.hk:5070 HTTPS",
        "proxifier", None, None, "chrome.exe *64",
        "proxy.cse.cuhk.edu.hk:5070 open through proxy proxy.cse.cuhk.edu.hk:5070 HTTPS", {}, id="proxifier"),
    pytest.param(
        "134681 node-246 unix.hw state_change.unavailable 1077804742 1 Component State Change: Component "
        "\\042alt0\\042 is in the unavailable state (HWID=1980)",
        "hpc_events", None, "node-246", "unix.hw",
        "Component State Change: Component \\042alt0\\042 is in the unavailable state (HWID=1980)",
        {"state": "state_change.unavailable", "flag": "1"}, id="hpc"),
    pytest.param(
        "Jul  1 09:04:37 authorMacBook-Pro com.apple.xpc.launchd[1] "
        "(com.apple.xpc.launchd.domain.pid.mdmclient.30580): "
        "Service exited with abnormal code: 1",
        "rfc3164", None, "authorMacBook-Pro", "com.apple.xpc.launchd", "Service exited with abnormal code: 1",
        {"pid": "1", "subsystem": "com.apple.xpc.launchd.domain.pid.mdmclient.30580"}, id="macos-subsystem"),
]


@pytest.mark.parametrize(("line", "fmt", "level", "host", "service", "message", "fields"), CASES)
def test_detected_and_split_into_header_and_message(
    line: str, fmt: str, level: str | None, host: str | None, service: str, message: str, fields: dict[str, str]
) -> None:
    parsed = parse_line(line)
    assert (parsed.format, parsed.level, parsed.host, parsed.service, parsed.message) == (
        fmt, level, host, service, message)
    assert fields.items() <= parsed.fields.items()
    assert parsed.timestamp is not None and parsed.timestamp.tzinfo is not None


def test_epoch_headers_give_the_exact_instant() -> None:
    thunderbird = parse_line("- 1131566461 2005.11.09 dn228 Nov 9 12:01:01 dn228/dn228 sshd[1]: x")
    assert thunderbird.timestamp == datetime.fromtimestamp(1131566461, UTC)
    pipe = parse_line("20171223-22:15:29:606|Step_LSC|30002312|onStandStepChanged 3579")
    assert pipe.timestamp == datetime(2017, 12, 23, 22, 15, 29, 606000, tzinfo=UTC)


def test_a_near_miss_of_a_new_format_stays_unknown_with_its_text() -> None:
    line = "03-17 16:13:38.811  1702  2395 Q WindowManager: not a logcat priority"
    parsed = parse_line(line)
    assert parsed.format == "unknown" and parsed.message == line
