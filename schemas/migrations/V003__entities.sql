-- V003: the NER entities of log records, one row per (record, entity), partitioned by month like log_records.
-- Answers "which records mention host X / exception Y / database Z in this time range"; join back to
-- log_records on (ts, record_id) for the line itself. Rows of a record mirror its latest write: the sink
-- replaces them in the transaction that upserts the record (texts are redacted upstream, cut to 512 chars).

CREATE TABLE entities (
    ts         timestamptz NOT NULL,
    record_id  text        NOT NULL,
    label      text        NOT NULL,   -- HOST, IP, SERVICE, DATABASE, EXCEPTION, ERROR_CODE, PATH, ...
    text       text        NOT NULL,
    service    text,                   -- the record's, so a mention can be narrowed without the join
    host       text,
    written_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (record_id, label, text, ts)
) PARTITION BY RANGE (ts);
CREATE TABLE entities_default PARTITION OF entities DEFAULT;
CREATE INDEX entities_label_text_ts ON entities (label, text, ts DESC);
CREATE INDEX entities_ts ON entities (ts DESC);

-- Partitions ahead: this month and the next three.
SELECT polaris_ensure_partition('entities', now() + make_interval(months => m)) FROM generate_series(0, 3) AS m;

-- Records written before this migration: their entities from log_records.entities, in the months they fall in.
SELECT polaris_ensure_partition('entities', month)
FROM (SELECT DISTINCT date_trunc('month', ts AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' AS month
      FROM log_records WHERE entities <> '[]') AS months;
INSERT INTO entities (ts, record_id, label, text, service, host)
SELECT r.ts, r.record_id, e->>'label', left(e->>'text', 512), r.service, r.host
FROM log_records AS r, jsonb_array_elements(r.entities) AS e
WHERE e->>'label' IS NOT NULL AND e->>'text' IS NOT NULL
ON CONFLICT DO NOTHING;
