-- V001: log records (partitioned by month of event time) and the sinks' stored positions.

CREATE TABLE log_records (
    ts             timestamptz NOT NULL,
    record_id      text        NOT NULL,
    origin_topic   text        NOT NULL,
    origin_partition integer   NOT NULL,
    origin_offset  bigint      NOT NULL,
    format         text        NOT NULL,
    level          text,
    host           text,
    service        text,
    message        text        NOT NULL,
    template       text,
    template_id    text,
    category       text,
    severity       smallint,
    anomaly_score  real        NOT NULL DEFAULT 0,
    anomaly_reason text,
    fields         jsonb       NOT NULL DEFAULT '{}',
    entities       jsonb       NOT NULL DEFAULT '[]',
    redacted       text[]      NOT NULL DEFAULT '{}',
    written_at     timestamptz NOT NULL DEFAULT now(),
    -- The partition key must be in the key; a record_id always has the same ts, so
    -- (ts, record_id) is as unique as record_id and upserts stay idempotent.
    PRIMARY KEY (ts, record_id)
) PARTITION BY RANGE (ts);

-- Catches timestamps no monthly partition covers yet (nothing is refused for its date).
CREATE TABLE log_records_default PARTITION OF log_records DEFAULT;

-- The queries an operator runs: by time range and service/host/level/template, by score.
CREATE INDEX log_records_service_ts ON log_records (service, ts DESC);
CREATE INDEX log_records_host_ts ON log_records (host, ts DESC);
CREATE INDEX log_records_level_ts ON log_records (level, ts DESC) WHERE level IN ('WARN', 'ERROR', 'CRITICAL', 'FATAL');
CREATE INDEX log_records_template_ts ON log_records (template_id, ts DESC);
CREATE INDEX log_records_anomaly ON log_records (anomaly_score DESC, ts DESC) WHERE anomaly_score >= 0.5;
CREATE INDEX log_records_record_id ON log_records (record_id);

CREATE TABLE sink_offsets (
    sink        text    NOT NULL,
    topic       text    NOT NULL,
    partition   integer NOT NULL,
    next_offset bigint  NOT NULL DEFAULT 0,
    epoch       bigint  NOT NULL DEFAULT 0,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (sink, topic, partition)
);

-- Creates the monthly partition holding `at` if it is missing, moving any rows of that
-- month out of the default partition first (Postgres refuses the attach otherwise).
CREATE FUNCTION polaris_ensure_month_partition(at timestamptz) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    month_start timestamptz := date_trunc('month', at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC';
    month_end   timestamptz := month_start + interval '1 month';
    name        text := 'log_records_' || to_char(month_start AT TIME ZONE 'UTC', 'YYYY_MM');
BEGIN
    IF to_regclass(name) IS NOT NULL THEN
        RETURN name;
    END IF;
    PERFORM pg_advisory_xact_lock(hashtext(name));
    IF to_regclass(name) IS NOT NULL THEN
        RETURN name;
    END IF;
    EXECUTE format('CREATE TABLE %I (LIKE log_records INCLUDING DEFAULTS)', name);
    EXECUTE format('WITH moved AS (DELETE FROM log_records_default WHERE ts >= %L AND ts < %L RETURNING *) '
                   'INSERT INTO %I SELECT * FROM moved', month_start, month_end, name);
    EXECUTE format('ALTER TABLE log_records ATTACH PARTITION %I FOR VALUES FROM (%L) TO (%L)',
                   name, month_start, month_end);
    RETURN name;
END $$;

-- Partitions ahead: this month and the next three.
SELECT polaris_ensure_month_partition(now() + make_interval(months => m)) FROM generate_series(0, 3) AS m;
