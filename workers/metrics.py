"""Prometheus metrics of the workers, named `polaris_<component>_<name>_<unit>[_total]`.

Labels are few and bounded: stage, topic, sink, reason — never a record's content.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram, start_http_server

RECORDS_IN = Counter(
    "polaris_stage_records_in_total", "Records a stage consumed.", ["stage"]
)
RECORDS_OUT = Counter(
    "polaris_stage_records_out_total", "Records a stage emitted downstream.", ["stage"]
)
DEAD_LETTERS = Counter(
    "polaris_stage_dead_letters_total", "Records sent to a dead-letter topic.", ["stage", "reason"]
)
RECORDS_REFETCHED = Counter(
    "polaris_stage_records_refetched_total",
    "Raw records the stream skipped (an offset gap) that the stage re-read from Kafka.", ["stage"]
)
RECORDS_REPLAYED = Counter(
    "polaris_stage_records_replayed_total",
    "Records re-read after a crash or rebalance that the stage's state had already applied (dropped).", ["stage"]
)
STAGE_BATCH_RECORDS = Histogram(
    "polaris_stage_batch_records", "Records in one batch a stage took from its stream.", ["stage"],
    buckets=(1, 10, 50, 100, 250, 500, 1000, 2500),
)
STAGE_BATCH_SECONDS = Histogram(
    "polaris_stage_batch_seconds", "Time to process one batch: enrich, deliver outputs, save state.",
    ["stage", "step"], buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)
NATIVE_FALLBACKS = Counter(
    "polaris_stage_native_fallbacks_total",
    "Items the native log chain handed back to the Python steps (step: parse = a deferred line, "
    "redact / field_kind = non-ASCII text, plan = a new entity shape for spaCy, classify = a new "
    "template class); a high rate means lines run at Python speed.", ["stage", "step"]
)
SINK_RECORDS = Counter(
    "polaris_sink_records_written_total", "Records a sink committed to its store.", ["sink"]
)
SINK_SKIPPED = Counter(
    "polaris_sink_records_skipped_total", "Records a sink skipped as already applied (replays).", ["sink"]
)
SINK_FLUSH_SECONDS = Histogram(
    "polaris_sink_flush_seconds", "Time to write one batch with its offsets.", ["sink"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
SINK_RETRIES = Counter(
    "polaris_sink_retries_total", "Batch write attempts that failed and were retried.", ["sink"]
)
SINK_UP = Gauge("polaris_sink_up", "1 when the sink's last health probe or write succeeded.", ["sink"])


def serve_metrics(port: int) -> int:
    """Start the /metrics endpoint; returns the bound port (port 0 picks a free one)."""
    server, _thread = start_http_server(port, addr="127.0.0.1")
    return int(server.server_port)
