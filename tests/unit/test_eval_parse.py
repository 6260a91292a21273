"""`polaris eval parse` on a tiny folder of the Loghub layout."""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

from workers.evals import parse as eval_parse

RAW = (
    "081109 203615 148 INFO dfs.DataNode$PacketResponder: PacketResponder 1 terminating\n"
    "081109 203807 222 WARN dfs.DataNode: Slow BlockReceiver write\n"
    "not a header at all\n"
)
STRUCTURED = (
    "LineId,Date,Time,Pid,Level,Component,Content,EventId,EventTemplate\n"
    "1,081109,203615,148,INFO,dfs.DataNode$PacketResponder,PacketResponder 1 terminating,E1,x\n"
    "2,081109,203807,222,WARN,dfs.DataNode,Slow BlockReceiver write,E2,x\n"
    "3,081109,203807,222,INFO,dfs.DataNode,a header at all,E3,x\n"
)


def test_eval_parse_scores_and_writes_outputs(tmp_path: Path) -> None:
    system = tmp_path / "data" / "Tiny"
    system.mkdir(parents=True)
    (system / "Tiny_2k.log").write_text(RAW, encoding="utf-8")
    (system / "Tiny_2k.log_structured.csv").write_text(STRUCTURED, encoding="utf-8")
    parser = argparse.ArgumentParser()
    eval_parse.add_arguments(parser)
    args = parser.parse_args([str(tmp_path / "data"), "--json", str(tmp_path / "s.json"),
                              "--output", str(tmp_path / "lines.csv"), "--repeat", "1"])
    assert eval_parse.run(args) == 0

    (score,) = json.loads((tmp_path / "s.json").read_text(encoding="utf-8"))["systems"]
    assert score["system"] == "Tiny" and score["lines"] == 3
    assert score["message_ok"] == score["level_ok"] == score["component_ok"] == 2 / 3
    assert score["all_ok"] == 2 / 3
    with (tmp_path / "lines.csv").open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert [row["format"] for row in rows] == ["hdfs", "hdfs", "unknown"]
    assert [row["message_ok"] for row in rows] == ["1", "1", "0"]


def test_eval_parse_empty_folder_is_an_error(tmp_path: Path) -> None:
    parser = argparse.ArgumentParser()
    eval_parse.add_arguments(parser)
    assert eval_parse.run(parser.parse_args([str(tmp_path)])) == 2
