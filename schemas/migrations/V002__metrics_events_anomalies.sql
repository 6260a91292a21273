-- V002: metric samples, user events and anomaly events, partitioned by month like log_records.

-- One partition function for every time-partitioned table (log_records' own stays as a wrapper).
CREATE FUNCTION polaris_ensure_partition(parent text, at timestamptz) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    month_start timestamptz := date_trunc('month', at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC';
    month_end   timestamptz := month_start + interval '1 month';
    name        text := parent || '_' || to_char(month_start AT TIME ZONE 'UTC', 'YYYY_MM');
BEGIN
    IF to_regclass(name) IS NOT NULL THEN
        RETURN name;
    END IF;
    PERFORM pg_advisory_xact_lock(hashtext(name));
    IF to_regclass(name) IS NOT NULL THEN
        RETURN name;
    END IF;
    EXECUTE format('CREATE TABLE %I (LIKE %I INCLUDING DEFAULTS)', name, parent);
    -- Rows of that month already in the default partition move first (else ATTACH refuses).
    EXECUTE format('WITH moved AS (DELETE FROM %I WHERE ts >= %L AND ts < %L RETURNING *) '
                   'INSERT INTO %I SELECT * FROM moved', parent || '_default', month_start, month_end, name);
    EXECUTE format('ALTER TABLE %I ATTACH PARTITION %I FOR VALUES FROM (%L) TO (%L)',
                   parent, name, month_start, month_end);
    RETURN name;
END $$;

CREATE OR REPLACE FUNCTION polaris_ensure_month_partition(at timestamptz) RETURNS text
LANGUAGE sql AS $$ SELECT polaris_ensure_partition('log_records', at) $$;

CREATE TABLE metric_samples (
    ts               timestamptz NOT NULL,
    record_id        text        NOT NULL,
    origin_topic     text        NOT NULL,
    origin_partition integer     NOT NULL,
    origin_offset    bigint      NOT NULL,
    name             text        NOT NULL,
    series           text        NOT NULL,
    labels           jsonb       NOT NULL DEFAULT '{}',
    value            double precision NOT NULL,
    anomaly_score    real        NOT NULL DEFAULT 0,
    anomaly_reason   text,
    written_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (ts, record_id)
) PARTITION BY RANGE (ts);
CREATE TABLE metric_samples_default PARTITION OF metric_samples DEFAULT;
CREATE INDEX metric_samples_series_ts ON metric_samples (series, ts DESC);
CREATE INDEX metric_samples_name_ts ON metric_samples (name, ts DESC);
CREATE INDEX metric_samples_record_id ON metric_samples (record_id);

CREATE TABLE user_events (
    ts               timestamptz NOT NULL,
    record_id        text        NOT NULL,
    origin_topic     text        NOT NULL,
    origin_partition integer     NOT NULL,
    origin_offset    bigint      NOT NULL,
    user_id          text        NOT NULL,
    event_type       text        NOT NULL,
    properties       jsonb       NOT NULL DEFAULT '{}',
    anomaly_score    real        NOT NULL DEFAULT 0,
    anomaly_reason   text,
    written_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (ts, record_id)
) PARTITION BY RANGE (ts);
CREATE TABLE user_events_default PARTITION OF user_events DEFAULT;
CREATE INDEX user_events_user_ts ON user_events (user_id, ts DESC);
CREATE INDEX user_events_type_ts ON user_events (event_type, ts DESC);
CREATE INDEX user_events_record_id ON user_events (record_id);

-- An anomaly event for every record scored at or above the sink's threshold, any kind.
CREATE TABLE anomalies (
    ts        timestamptz NOT NULL,
    record_id text        NOT NULL,
    kind      text        NOT NULL,   -- log | metric | event
    subject   text        NOT NULL,   -- the service, the series or the user
    score     real        NOT NULL,
    reason    text,
    written_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (ts, record_id)
) PARTITION BY RANGE (ts);
CREATE TABLE anomalies_default PARTITION OF anomalies DEFAULT;
CREATE INDEX anomalies_subject_ts ON anomalies (subject, ts DESC);
CREATE INDEX anomalies_score ON anomalies (score DESC, ts DESC);

SELECT polaris_ensure_partition(t, now() + make_interval(months => m))
FROM unnest(ARRAY['metric_samples', 'user_events', 'anomalies']) AS t, generate_series(0, 3) AS m;
