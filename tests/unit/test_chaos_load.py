"""The chaos run's load and private topology, without services."""

from __future__ import annotations

import json

from schemas.records import Origin
from schemas.topology import Topology, load_topology
from workers.chaos import BAD_LINES, chaos_load, chaos_topology
from workers.evals import SHARED_DATA
from workers.pipeline import LogEnricher, RawLine
from workers.settings import REPO_ROOT


def test_load_has_every_kind_and_exactly_the_malformed_lines_announced() -> None:
    load = chaos_load("abc", 400, 200, 100, SHARED_DATA / "loghub")
    assert len(load["logs"]) == 400
    assert len(load["metrics"]) + len(load["events"]) == 300 + BAD_LINES
    bad = 0
    for line in load["metrics"] + load["events"]:
        data = json.loads(line)
        bad += not isinstance(data.get("value", 0.0), float) or ("user_id" not in data and "name" not in data)
    assert bad == BAD_LINES
    assert chaos_load("abc", 400, 200, 100, SHARED_DATA / "loghub") == load  # deterministic per run id


def test_synthetic_log_lines_parse_to_the_run_services_and_hosts() -> None:
    lines = [line for line in chaos_load("abc", 200, 0, 0, SHARED_DATA / "loghub")["logs"] if b"chaosabc" in line]
    records = LogEnricher().enrich([RawLine(Origin(topic="t", partition=0, offset=i), line, None)
                                    for i, line in enumerate(lines)])
    assert records and all(getattr(r, "service", "").startswith("chaosabc") for r in records)
    assert all(getattr(r, "host", "").startswith("chaosabch") for r in records)


def test_private_topology_keeps_the_routes_over_its_own_topics() -> None:
    base = load_topology(REPO_ROOT / "topologies" / "default.yaml")
    private = Topology.model_validate(chaos_topology("abc", base))
    assert private.routes == base.routes
    assert all(topic.startswith("chaos-abc.") for topic in private.all_topics())
