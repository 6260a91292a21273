"""`polaris bench process`: the figures it derives from its reads."""

from __future__ import annotations

import pytest

from workers.bench.process import bare_row, loghub_mix
from workers.evals import SHARED_DATA


def test_the_ceiling_is_the_median_read_and_every_read_is_kept() -> None:
    # (lines, cpu s, wall s): rates 100, 400, 200, 50, 300 lines per CPU-second
    reads = [(100, 1.0, 2.0), (400, 1.0, 2.0), (200, 1.0, 2.0), (50, 1.0, 2.0), (300, 1.0, 2.0)]
    row = bare_row(reads)
    assert row["lines_per_cpu_s"] == 200
    assert row["lines"] == 200
    assert row["reads_lines_per_cpu_s"] == [100, 400, 200, 50, 300]
    assert row["step"] == "bare aiokafka consumer (median of 5)"


def test_an_even_number_of_reads_takes_the_lower_middle_read() -> None:
    row = bare_row([(100, 1.0, 1.0), (300, 1.0, 1.0), (200, 1.0, 1.0), (400, 1.0, 1.0)])
    assert row["lines_per_cpu_s"] == 200


def test_the_mix_interleaves_every_system_and_repeats_to_the_size_asked() -> None:
    lines = loghub_mix(SHARED_DATA / "loghub", 20)
    assert len(lines) == 20
    systems = len(list((SHARED_DATA / "loghub").glob("*/*_2k.log")))
    # one line of each system in turn: the first `systems` lines come from different files
    assert len(set(lines[:systems])) == systems


def test_an_unreachable_broker_is_named_with_the_fix(monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    from workers.cli import main
    from workers.settings import get_settings

    monkeypatch.setenv("POLARIS_KAFKA_BOOTSTRAP", "127.0.0.1:1")  # nothing listens on port 1
    get_settings.cache_clear()
    assert main(["bench", "process", "--lines", "10"]) == 2
    error = capsys.readouterr().err
    assert "cannot reach Kafka at 127.0.0.1:1" in error
    assert "scripts/polaris stack up" in error
