"""Per-item outputs of `polaris eval parse` and `polaris eval ner` on real samples: the
layout (one row per input, in order) and the summary recomputed from the written file."""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import pytest

from workers.evals import ner as eval_ner
from workers.evals import parse as eval_parse

REPO = Path(__file__).resolve().parents[2]
LOGHUB = REPO.parent / "shared" / "data" / "loghub"
SYSTEMS = ("HDFS", "Zookeeper")


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not LOGHUB.exists():
        pytest.fail(f"reference data missing: {LOGHUB} (../shared/data beside the repository)")
    root = tmp_path_factory.mktemp("loghub")
    for system in SYSTEMS:
        (root / system).mkdir()
        raw = (LOGHUB / system / f"{system}_2k.log").read_text(encoding="utf-8").split("\n")[:150]
        (root / system / f"{system}_2k.log").write_text("\n".join(raw) + "\n", encoding="utf-8")
        rows = (LOGHUB / system / f"{system}_2k.log_structured.csv").read_text(encoding="utf-8").splitlines()
        (root / system / f"{system}_2k.log_structured.csv").write_text("\n".join(rows[:151]) + "\n")
    return root


def _run(module: object, argv: list[str]) -> None:
    parser = argparse.ArgumentParser()
    module.add_arguments(parser)  # type: ignore[attr-defined]
    assert module.run(parser.parse_args(argv)) == 0  # type: ignore[attr-defined]


def test_parse_output_has_one_row_per_line_and_reproduces_the_summary(sample: Path, tmp_path: Path) -> None:
    _run(eval_parse, [str(sample), "--json", str(tmp_path / "s.json"), "--output", str(tmp_path / "o.csv"),
                      "--repeat", "1"])
    summary = {s["system"]: s for s in json.loads((tmp_path / "s.json").read_text())["systems"]}
    with (tmp_path / "o.csv").open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    for system in SYSTEMS:
        mine = [row for row in rows if row["System"] == system]
        assert [int(r["LineId"]) for r in mine] == list(range(1, 151)), "one row per input line, in order"
        for column in ("message_ok", "level_ok", "component_ok"):
            judged = [r[column] for r in mine if r[column] != ""]
            share = sum(value == "1" for value in judged) / len(judged)
            assert share == pytest.approx(summary[system][column]), (system, column)
    assert len(rows) == 150 * len(SYSTEMS)


def _prf(tp: int, fp: int, fn: int) -> tuple[float, float]:
    return (tp / (tp + fp) if tp + fp else 0.0, tp / (tp + fn) if tp + fn else 0.0)


def test_ner_output_reproduces_the_printed_scores(tmp_path: Path) -> None:
    _run(eval_ner, ["--system", "HDFS", "--json", str(tmp_path / "s.json"), "--output", str(tmp_path / "o.jsonl")])
    summary = json.loads((tmp_path / "s.json").read_text())
    rows = [json.loads(line) for line in (tmp_path / "o.jsonl").read_text().splitlines()]
    assert len(rows) == summary["lines"]
    tp = sum(len(r["predicted"]) - len(r["spurious"]) for r in rows)
    fp = sum(len(r["spurious"]) for r in rows)
    fn = sum(len(r["missed"]) for r in rows)
    precision, recall = _prf(tp, fp, fn)
    micro = summary["scores"]["micro"]
    assert micro["precision"] == pytest.approx(precision) and micro["recall"] == pytest.approx(recall)
