"""`polaris eval log-anomaly`: metrics on hand cases, and the command on real BGL data."""

from __future__ import annotations

import argparse
import csv
import json
import re
from pathlib import Path

import pytest

from workers.evals import log_anomaly
from workers.evals.binary_metrics import best_f1, roc_auc

SHARED_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
BGL = SHARED_DATA / "loghub" / "BGL" / "BGL_2k.log_structured.csv"


@pytest.fixture(scope="module")
def bgl() -> Path:
    if not BGL.is_file():
        pytest.fail(
            f"reference data missing: {BGL} (expected ../shared/data next to the repository; "
            "see shared/data/README.md)"
        )
    return BGL


def parse_args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    log_anomaly.add_arguments(parser)
    return parser.parse_args(list(argv))


def test_roc_auc_on_hand_cases() -> None:
    assert roc_auc([0.1, 0.4, 0.35, 0.8], [False, False, True, True]) == 0.75
    # Tie between a positive and a negative counts one half: (1 + 0.5 + 1 + 1) / 4.
    assert roc_auc([0.2, 0.5, 0.5, 0.9], [False, True, False, True]) == 0.875
    assert roc_auc([0.5, 0.5, 0.5], [True, False, False]) == 0.5  # all tied: chance
    assert roc_auc([0.3, 0.2], [True, True]) is None  # one class only


def test_best_f1_on_hand_cases() -> None:
    point = best_f1([0.9, 0.8, 0.7, 0.6], [True, False, True, False])
    assert point.f1 == pytest.approx(0.8)
    assert point.threshold == 0.7
    assert point.precision == pytest.approx(2 / 3)
    assert point.recall == 1.0
    # Tied scores are flagged together: 0.9 cannot split its positive from its negative.
    tied = best_f1([0.9, 0.9, 0.1], [True, False, True])
    assert tied.f1 == pytest.approx(0.8)
    assert tied.threshold == 0.1
    assert best_f1([0.1], [False]).f1 is None


def test_masked_template_key_ignores_variable_values() -> None:
    a = log_anomaly.mask_template_key(
        "conn from 10.0.0.1:22 file /var/log/a.txt id 0xdeadbeef n=12"
    )
    b = log_anomaly.mask_template_key("conn from 192.168.4.77:80 file /tmp/b id 0x1F n=7")
    assert a == b
    assert "<*>" in a
    assert log_anomaly.mask_template_key("generating core.123") == log_anomaly.mask_template_key(
        "generating core.98765"
    )


def test_scores_file_and_summary_match_what_is_printed(
    bgl: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    scores_path, json_path = tmp_path / "scores.csv", tmp_path / "summary.json"
    args = parse_args(str(bgl), "--scores", str(scores_path), "--json", str(json_path))
    assert log_anomaly.run(args) == 0
    printed = capsys.readouterr().out

    with bgl.open(newline="") as handle:
        truth = {row["LineId"]: row["Label"] != "-" for row in csv.DictReader(handle)}
    with scores_path.open(newline="") as handle:
        reader = csv.reader(handle)
        assert next(reader) == ["LineId", "score"]
        rows = list(reader)
    assert [line_id for line_id, _ in rows] == list(truth)  # one row per input line, in order
    scores = [float(score) for _, score in rows]
    assert all(0.0 <= s <= 1.0 for s in scores)

    labels = [truth[line_id] for line_id, _ in rows]
    auc, f1 = roc_auc(scores, labels), best_f1(scores, labels)
    summary = json.loads(json_path.read_text())
    assert summary["lines"] == len(truth) == 2000
    assert summary["anomalous_lines"] == sum(labels)
    assert summary["roc_auc"] == pytest.approx(auc, abs=1e-12)
    assert summary["best_f1"] == pytest.approx(f1.f1, abs=1e-12)
    assert re.search(rf"ROC-AUC\s+{auc:.4f}\b", printed)
    assert re.search(rf"best F1\s+{f1.f1:.4f}\b", printed)
    assert "lines/s" in printed
    assert auc is not None and auc > 0.5  # better than chance, without labels


def test_groundtruth_source_is_marked_diagnosis_only(
    bgl: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert log_anomaly.run(parse_args(str(bgl), "--template-source", "groundtruth")) == 0
    assert "diagnosis only" in capsys.readouterr().out


def test_file_without_level_component_or_time_columns(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "other.csv"
    lines = ["LineId,Content,Label"]
    lines += [f"{i},session opened for user u{i % 7},-" for i in range(1, 60)]
    lines += ["60,kernel panic: fatal exception in worker,PANIC", "61,session opened for user x,-"]
    path.write_text("\n".join(lines) + "\n")
    scores_path = tmp_path / "scores.csv"
    assert log_anomaly.run(parse_args(str(path), "--scores", str(scores_path))) == 0
    rows = list(csv.reader(scores_path.open()))[1:]
    assert len(rows) == 61
    by_id = {line_id: float(score) for line_id, score in rows}
    assert by_id["60"] == max(by_id.values())
    assert "ROC-AUC           1.0000" in capsys.readouterr().out


def test_missing_file_or_label_column_fails_clearly(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert log_anomaly.run(parse_args(str(tmp_path / "nope.csv"))) == 2
    unlabelled = tmp_path / "unlabelled.csv"
    unlabelled.write_text("LineId,Content\n1,hello\n")
    assert log_anomaly.run(parse_args(str(unlabelled))) == 2
    assert "Label" in capsys.readouterr().err


def test_miner_template_source(bgl: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import workers.steps.templates  # noqa: F401  (the miner template source needs it)
    assert log_anomaly.run(parse_args(str(bgl), "--template-source", "miner")) == 0
    assert "template source   miner" in capsys.readouterr().out
