"""Template mining on real Loghub lines, and the metric code of its evaluation."""

from __future__ import annotations

import argparse
import csv
import json
import re
from pathlib import Path

import pytest

from workers.evals import templates as evaluation
from workers.steps.templates import TemplateMiner, extract_variables, mask, template_id
from workers.steps.templates_masking import mask_tokens

LOGHUB = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "loghub"


def _contents(system: str, limit: int = 400) -> list[str]:
    path = LOGHUB / system / f"{system}_2k.log_structured.csv"
    if not path.exists():
        pytest.fail(f"reference data missing: {path} (expected ../shared/data next to the repo)")
    with path.open(newline="", encoding="utf-8") as handle:
        return [row["Content"] for row in csv.DictReader(handle)][:limit]


def test_ids_survive_a_serialise_restore_round_trip() -> None:
    lines = _contents("OpenSSH")
    miner = TemplateMiner()
    for line in lines[:200]:
        miner.add(line)
    restored = TemplateMiner.from_dict(json.loads(json.dumps(miner.to_dict())))
    for line in lines[200:]:
        assert restored.add(line) == miner.add(line)
    assert restored.templates() == miner.templates()


def test_two_independent_miners_issue_identical_ids() -> None:
    lines = _contents("HDFS")
    first, second = TemplateMiner(), TemplateMiner()
    ids = [(first.add(line).template_id, second.add(line).template_id) for line in lines]
    assert all(a == b for a, b in ids)
    assert all(tid == template_id(t) for tid, t in first.templates().items())


def test_old_ids_resolve_to_the_current_template() -> None:
    miner = TemplateMiner()
    early = [miner.add(line) for line in _contents("Zookeeper")]
    for match in early:
        current = miner.current_template(match.template_id)
        assert current is not None
        assert current in miner.templates().values()


def test_variables_are_extracted_from_real_hdfs_lines() -> None:
    miner = TemplateMiner()
    line = "Receiving block blk_-1608999687919862906 src: /10.250.19.102:54106 dest: /10.250.19.102:50010"
    miner.add(line.replace("1608", "2608").replace("54106", "54107"))
    match = miner.add(line)
    assert match.template == "Receiving block blk_<*> src: /<*>:<*> dest: /<*>:<*>"
    assert match.variables == (
        "-1608999687919862906", "10.250.19.102", "54106", "10.250.19.102", "50010",
    )
    assert extract_variables("size <*> B", "size  42 B") == ["42"]


def test_usernames_generalise_but_leading_words_do_not() -> None:
    miner = TemplateMiner()
    for line in _contents("OpenSSH", 2000):
        miner.add(line)
    templates = set(miner.templates().values())
    assert "Invalid user <*> from <*>" in templates
    assert not any(t.startswith("<*> ") and "preauth" in t for t in templates)


def test_token_masking_matches_the_whole_line_regex() -> None:
    lines = [line for system in ("Linux", "Hadoop", "HDFS", "Spark") for line in _contents(system, 2000)]
    lines += [  # dates and sizes span whitespace; `0x` is the one digit-specific mask
        "at Sun Jul 17 09:07:44 PDT 2005 from x-Jul 3 01:02:03",
        "wrote 5 KB and 7  MB, 3 MILLIS, 12K in 0x1f 0X2 10x3",
        "blk_1 blk_2 blk_3 done\tJul\t1 07:57:30 2005",
    ]
    for line in lines:
        tokens, key = mask_tokens(line)
        assert tokens == mask(line).split(), line
        assert key == re.sub(r"\d+", "<*>", " ".join(tokens)), line


def test_words_that_varied_after_the_same_token_vouch_for_a_family() -> None:
    miner = TemplateMiner()
    for user in ("cyrus", "news", "test", "root"):  # four users: a variable position
        miner.add(f"pam_unix(cyrus:session): session closed for user {user}")
    for user in ("cyrus", "news"):  # two known users after `user` are enough here
        opened = miner.add(f"pam_unix(cyrus:session): session opened for user {user} by (uid=0)")
    assert opened.template == "pam_unix(cyrus:session): session opened for user <*> by (uid=<*>)"
    restored = TemplateMiner.from_dict(json.loads(json.dumps(miner.to_dict())))
    line = "pam_unix(ftp:session): session opened for user test by (uid=0)"
    assert restored.add(line) == miner.add(line)

    later = TemplateMiner()  # the evidence may also come after the family formed
    early = [later.add(f"sshd: session opened for user {user} by (uid=0)") for user in ("cyrus", "news")]
    for user in ("cyrus", "news", "test", "root"):
        later.add(f"sshd: session closed for user {user}")
    assert {later.current_template(m.template_id) for m in early} == {
        "sshd: session opened for user <*> by (uid=<*>)"
    }

    for state in ("RUNNING", "KILLED"):  # unknown words stay literal below four values
        miner.add(f"Task attempt_01 Transitioned from NEW to {state} now")
    assert "Task attempt_<*> Transitioned from NEW to KILLED now" in miner.templates().values()


def test_metrics_on_a_hand_made_case() -> None:
    truth = ["E1", "E1", "E2", "E3"]
    predicted = ["a", "a", "b", "b"]  # E2 and E3 wrongly share a group
    assert evaluation.grouping_accuracy(truth, predicted) == 0.5
    gt = ["open <*> now", "open <*>  now", "close <*>", "x <*>.<*>"]
    mined = ["open <*><*> now", "open <*> now", "close it", "x <*>"]
    assert evaluation.parsing_accuracy(gt, mined) == 0.5
    assert evaluation.parsing_accuracy(gt, mined, evaluation.loghub2_template) == 0.75
    assert evaluation.loghub2_template("file /a/b took 0.5 ms") == "file <*> took <*> ms"


def test_predictions_file_matches_the_printed_summary(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    system = "Apache"
    source = LOGHUB / system / f"{system}_2k.log_structured.csv"
    _contents(system)  # fails clearly when the data is missing
    data = tmp_path / "data" / system
    data.mkdir(parents=True)
    rows = list(csv.DictReader(source.open(newline="", encoding="utf-8")))[:300]
    with (data / source.name).open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    out, report = tmp_path / "pred", tmp_path / "scores.json"
    args = argparse.Namespace(dir=tmp_path / "data", json=report, predictions=out)
    assert evaluation.run(args) == 0
    printed = capsys.readouterr().out
    with (out / source.name).open(newline="", encoding="utf-8") as handle:
        written = list(csv.DictReader(handle))
    assert list(written[0]) == ["LineId", "EventTemplate"]
    assert [w["LineId"] for w in written] == [r["LineId"] for r in rows]
    predicted = [w["EventTemplate"] for w in written]
    ga = evaluation.grouping_accuracy([r["EventId"] for r in rows], predicted)
    pa = evaluation.parsing_accuracy([r["EventTemplate"] for r in rows], predicted)
    scores = json.loads(report.read_text())["systems"][0]
    assert (scores["ga"], scores["pa"]) == (ga, pa)
    assert f"{ga:>8.3f}{pa:>8.3f}" in printed
