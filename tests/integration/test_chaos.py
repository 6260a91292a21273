"""The exactly-once proof: a private fleet under a 20,000-record mixed load, every worker
killed with SIGKILL five times at random moments and PostgreSQL restarted once; afterwards
every store holds exactly the records its routes name and the counters equal the true counts.
Faust's own exactly-once mode stays off (the fleet never enables it)."""

from __future__ import annotations

from workers.chaos import print_report, run_chaos
from workers.settings import Settings


def test_no_record_lost_or_doubled_under_kill_9(stack: Settings) -> None:
    lines: list[str] = []
    report = run_chaos(stack, lines.append, records=20_000, kills=5, catch_up_timeout_s=900)
    print_report(report, lines.append)
    print("\n".join(lines))
    assert sum(report.records.values()) >= 20_000
    assert all(n >= 5 for n in report.kills.values()) and len(report.kills) == 5
    assert report.store_restarts == ["postgres"]
    assert report.expected["postgres"] >= 20_000 - report.dead_letters_expected
    assert report.failures() == [], "\n".join(lines)
