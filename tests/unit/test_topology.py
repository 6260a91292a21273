from __future__ import annotations

from pathlib import Path

import pytest

from schemas.topology import TopologyError, load_topology
from workers.cli import main

REPO = Path(__file__).resolve().parents[2]


def test_every_shipped_topology_is_valid() -> None:
    for path in sorted((REPO / "topologies").glob("*.yaml")):
        topology = load_topology(path)
        assert topology.routes


def test_default_topology_names_dead_letter_topics() -> None:
    topics = load_topology(REPO / "topologies" / "default.yaml").all_topics()
    assert {"logs.raw", "logs.raw.dlq", "records.enriched", "records.enriched.dlq"} <= set(topics)


def test_unknown_sink_error_names_file_field_and_fix(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("raw_topics: {logs.raw: {partitions: 4}}\nroutes:\n  - name: r\n    kinds: [log]\n"
                    "    sinks: [postgress]\n")
    with pytest.raises(TopologyError) as error:
        load_topology(path)
    message = str(error.value)
    assert str(path) in message and "routes.0.sinks.0" in message
    assert "postgress" in message and "fix: use one of" in message and "'postgres'" in message


def test_filters_route_by_level(tmp_path: Path) -> None:
    path = tmp_path / "t.yaml"
    path.write_text("raw_topics: {logs.raw: {}}\nroutes:\n  - {name: all, kinds: [log], sinks: [postgres]}\n"
                    "  - {name: warn, kinds: [log], sinks: [weaviate], where: {min_level: WARN}}\n")
    topology = load_topology(path)
    assert topology.sinks_for("log", "INFO", "api") == {"postgres"}
    assert topology.sinks_for("log", "ERROR", "api") == {"postgres", "weaviate"}
    assert topology.sinks_for("log", None, "api") == {"postgres"}


def test_cli_validate_exits_2_with_the_explanation(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("raw_topics: {}\nroutes: []\nextra: 1\n")
    assert main(["topology", "validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert "extra" in err and "remove it" in err
    assert main(["topology", "validate", str(REPO / "topologies" / "default.yaml")]) == 0


def test_a_store_that_cannot_hold_a_kind_is_refused_with_the_fix(tmp_path: Path) -> None:
    path = tmp_path / "t.yaml"
    path.write_text("raw_topics: {logs.raw: {}}\n"
                    "routes:\n  - {name: m, kinds: [metric], sinks: [weaviate, postgres]}\n")
    with pytest.raises(TopologyError) as error:
        load_topology(path)
    message = str(error.value)
    assert "routes.0" in message and "metric records cannot go to ['weaviate']" in message and "fix:" in message
