"""Unit tests for the Neo4j sink's pure row building: which counted edges a record yields."""

from __future__ import annotations

from datetime import UTC, datetime

from schemas.records import Entity, LogRecord, Origin
from sinks.neo4j import EDGES, MAX_NAME_CHARS, counter_rows, distinct_records, graph_rows, graph_rows_for_counting

T0 = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)


def record(record_id: str = "r-1", *, service: str | None = "checkout", host: str | None = "api-3",
           entities: tuple[tuple[str, str], ...] = (), at: datetime = T0) -> LogRecord:
    return LogRecord(
        record_id=record_id, origin=Origin(topic="logs.raw", partition=0, offset=0), timestamp=at,
        format="json", service=service, host=host, message="m",
        entities=tuple(Entity(label=label, text=text) for label, text in entities),
    )


def pairs(rows: list[dict[str, str]]) -> list[tuple[str, str]]:
    return [(row["source"], row["target"]) for row in rows]


def test_plain_record_yields_runs_on_only() -> None:
    edges = graph_rows(record())
    assert set(edges) == set(EDGES)
    assert pairs(edges["runs_on"]) == [("checkout", "api-3")]
    assert all(not rows for kind, rows in edges.items() if kind != "runs_on")


def test_no_host_no_runs_on_and_missing_service_is_unknown() -> None:
    edges = graph_rows(record(service=None, host=None, entities=(("ERROR_CODE", "ORA-00942"),)))
    assert edges["runs_on"] == []
    assert pairs(edges["error_on"]) == [("ORA-00942", "unknown")]


def test_errors_deduped_within_a_record() -> None:
    edges = graph_rows(record(entities=(
        ("EXCEPTION", "java.io.IOException"), ("ERROR_CODE", "E42"), ("EXCEPTION", "java.io.IOException"),
        ("ERROR_CODE", "E42"), ("HTTP_STATUS", "500"),
    )))
    assert pairs(edges["error_on"]) == [("java.io.IOException", "checkout"), ("E42", "checkout")]


def test_connects_to_databases_and_other_hosts_only() -> None:
    edges = graph_rows(record(entities=(
        ("DATABASE", "orders_db"), ("HOST", "api-3"), ("HOST", "db-1"), ("IP", "10.0.0.7"),
        ("IP", "10.0.0.7"), ("PORT", "5432"), ("DATABASE", "orders_db"),
    )))
    assert pairs(edges["connects_db"]) == [("checkout", "orders_db")]
    assert pairs(edges["connects_host"]) == [("checkout", "db-1"), ("checkout", "10.0.0.7")]


def test_record_without_host_connects_to_every_named_host() -> None:
    edges = graph_rows(record(host=None, entities=(("HOST", "api-3"),)))
    assert pairs(edges["connects_host"]) == [("checkout", "api-3")]


def test_depends_on_other_services_not_itself() -> None:
    edges = graph_rows(record(entities=(("SERVICE", "checkout"), ("SERVICE", "payments"), ("SERVICE", "payments"))))
    assert pairs(edges["depends_on"]) == [("checkout", "payments")]


def test_caused_by_follows_the_exception_chain_in_order() -> None:
    edges = graph_rows(record(entities=(
        ("EXCEPTION", "org.app.CheckoutException"), ("ERROR_CODE", "E42"),
        ("EXCEPTION", "java.sql.SQLException"), ("EXCEPTION", "java.net.SocketTimeoutException"),
        ("EXCEPTION", "java.sql.SQLException"),  # mentioned again: no loop, no second edge
    )))
    assert pairs(edges["caused_by"]) == [
        ("org.app.CheckoutException", "java.sql.SQLException"),
        ("java.sql.SQLException", "java.net.SocketTimeoutException"),
    ]


def test_single_exception_has_no_cause() -> None:
    assert graph_rows(record(entities=(("EXCEPTION", "ValueError"),)))["caused_by"] == []


def test_entity_names_are_stripped_capped_and_empty_ones_dropped() -> None:
    edges = graph_rows(record(entities=(("DATABASE", "  "), ("DATABASE", " pg "), ("ERROR_CODE", "X" * 2000))))
    assert pairs(edges["connects_db"]) == [("checkout", "pg")]
    assert [len(row["source"]) for row in edges["error_on"]] == [MAX_NAME_CHARS]


def test_counter_rows_count_distinct_records_and_keep_the_latest_time() -> None:
    later = datetime(2026, 11, 24, 8, 30, tzinfo=UTC)
    records = [
        record("r-1", entities=(("EXCEPTION", "E1"), ("EXCEPTION", "E1"))),
        record("r-2", at=later, entities=(("EXCEPTION", "E1"),)),
        record("r-3", host="api-4", entities=(("DATABASE", "pg"),)),
    ]
    rows = counter_rows(records)
    assert rows["runs_on"] == [{"source": "checkout", "target": "api-3", "n": 2},
                               {"source": "checkout", "target": "api-4", "n": 1}]
    assert rows["error_on"] == [{"source": "E1", "target": "checkout", "n": 2, "last_seen": later.isoformat()}]
    assert rows["connects_db"] == [{"source": "checkout", "target": "pg", "n": 1}]
    assert rows["caused_by"] == rows["depends_on"] == rows["connects_host"] == []


def test_counter_rows_of_nothing_are_empty() -> None:
    assert counter_rows([]) == {kind: [] for kind in EDGES}


def test_distinct_records_keeps_the_first_per_id_sorted() -> None:
    first, again, other = record("r-2", host="a"), record("r-2", host="b"), record("r-1")
    assert distinct_records([first, again, other]) == [other, first]


def test_graph_rows_for_counting_flattens_every_edge_with_its_kind() -> None:
    rec = record(entities=(("SERVICE", "payments"), ("EXCEPTION", "A"), ("EXCEPTION", "B")))
    assert sorted(graph_rows_for_counting(rec)) == [
        ("caused_by", "A", "B"), ("depends_on", "checkout", "payments"),
        ("error_on", "A", "checkout"), ("error_on", "B", "checkout"), ("runs_on", "checkout", "api-3"),
    ]
