"""`polaris bench scoring` end to end on a tiny real subset: JSON layout and value ranges."""

from __future__ import annotations

import argparse
import contextlib
import io
import itertools
import json
import math
import shutil
from pathlib import Path

import pytest

from workers.bench import BENCHES, scoring

SHARED_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
NAB_FILES = ("artificialWithAnomaly/art_daily_jumpsup.csv", "realKnownCause/rogue_agent_key_hold.csv")
BGL = SHARED_DATA / "loghub" / "BGL" / "BGL_2k.log_structured.csv"


@pytest.fixture()
def subset(tmp_path: Path) -> tuple[Path, Path]:
    nab_root = SHARED_DATA / "nab"
    if not (nab_root / "labels" / "combined_windows.json").is_file() or not BGL.is_file():
        pytest.fail("shared NAB / BGL data missing: ../shared/data must sit beside the repository")
    nab_dir = tmp_path / "nab"
    for name in NAB_FILES:
        (nab_dir / "data" / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(nab_root / "data" / name, nab_dir / "data" / name)
    (nab_dir / "labels").mkdir()
    shutil.copy(nab_root / "labels" / "combined_windows.json", nab_dir / "labels")
    bgl = tmp_path / "bgl.csv"
    bgl.write_text("".join(BGL.read_text().splitlines(keepends=True)[:301]))  # header + 300 lines
    return nab_dir, bgl


def _run(argv: list[str]) -> tuple[int, str]:
    parser = argparse.ArgumentParser()
    scoring.add_arguments(parser)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = scoring.run(parser.parse_args(argv))
    return code, out.getvalue()


def test_bench_is_registered() -> None:
    assert BENCHES["scoring"][0] == "workers.bench.scoring"


def test_synthetic_events_are_deterministic_and_ordered() -> None:
    events = scoring.synthetic_events(2000, 50, seed=3)
    assert events == scoring.synthetic_events(2000, 50, seed=3)
    assert events != scoring.synthetic_events(2000, 50, seed=4)
    assert len(events) == 2000
    assert all(a[2] <= b[2] for a, b in itertools.pairwise(events))
    assert {kind for _, kind, _ in events} >= {"login", "view", "logout"}


def test_scoring_bench_on_a_tiny_subset(subset: tuple[Path, Path], tmp_path: Path) -> None:
    nab_dir, bgl = subset
    out_json = tmp_path / "out" / "scoring.json"
    code, printed = _run(["--nab", str(nab_dir), "--bgl", str(bgl), "--json", str(out_json),
                          "--log-lines", "600", "--events", "3000", "--users", "100", "--seed", "1"])  # fmt: skip
    assert code == 0
    report = json.loads(out_json.read_text())
    assert set(report) == {"nab", "bgl", "speed"}

    nab_part = report["nab"]
    assert nab_part["files"] == 2
    assert nab_part["points"] == 4032 + 1882
    assert set(nab_part["profiles"]) == {"standard", "reward_low_FP_rate", "reward_low_FN_rate"}
    for profile in nab_part["profiles"].values():
        assert set(profile["categories"]) == {"artificialWithAnomaly", "realKnownCause"}
        for row in [profile, *profile["categories"].values()]:
            assert math.isfinite(row["score"]) and row["score"] <= 100.0
            assert 0 <= row["detected"] <= row["windows"]
    assert nab_part["references"]["scores"]["Numenta HTM"] == 70.5
    assert nab_part["references"]["corpus_files"] == 58

    bgl_part = report["bgl"]
    assert bgl_part["lines"] == 300 and bgl_part["template_source"] == "masked"
    assert 0 < bgl_part["anomalous_lines"] < 300
    assert 0.0 <= bgl_part["roc_auc"] <= 1.0
    for key in ("best_f1", "precision", "recall"):
        assert 0.0 < bgl_part[key] <= 1.0

    speed = report["speed"]
    assert set(speed) == {"metric_detector", "log_detector", "event_detector"}
    assert speed["metric_detector"]["count"] == nab_part["points"]
    assert speed["log_detector"]["count"] == 600 and speed["log_detector"]["passes"] == 2
    assert speed["event_detector"]["count"] == 3000
    for row in speed.values():
        assert row["per_cpu_s"] is not None and math.isfinite(row["per_cpu_s"]) and row["per_cpu_s"] > 0
    assert 0.0 <= speed["event_detector"]["flagged_share"] <= 1.0

    assert "Numenta HTM" in printed and "58-file" in printed
    assert f"saved {out_json}" in printed


def test_missing_data_is_reported_not_raised(tmp_path: Path) -> None:
    code, _ = _run(["--nab", str(tmp_path / "none"), "--json", str(tmp_path / "x.json")])
    assert code == 2
    assert not (tmp_path / "x.json").exists()
