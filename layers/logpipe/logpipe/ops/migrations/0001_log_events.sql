-- log_events: one row per event, partitioned by day on the event's own timestamp so per-organization
-- time-range queries touch few partitions and retention is a DROP TABLE.
CREATE TABLE log_events (
    id              uuid        NOT NULL,
    organization_id text        NOT NULL,
    occurred_at     timestamptz NOT NULL,
    level           text        NOT NULL CHECK (level IN ('TRACE', 'DEBUG', 'INFO', 'WARN', 'ERROR', 'FATAL')),
    message         text        NOT NULL,
    source          text        NOT NULL,
    attributes      jsonb       NOT NULL DEFAULT '{}'::jsonb,
    trace_id        text,
    span_id         text,
    received_at     timestamptz NOT NULL,
    stored_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (occurred_at, id)
) PARTITION BY RANGE (occurred_at);

-- Keyset pagination per organization, newest first.
CREATE INDEX log_events_org_time_idx ON log_events (organization_id, occurred_at DESC, id DESC);

-- A partitioned table cannot enforce uniqueness of id alone; this table does, so an event is stored
-- exactly once whatever timestamp a redelivery carries. It also locates an event by id.
CREATE TABLE log_event_ids (
    id              uuid        PRIMARY KEY,
    organization_id text        NOT NULL,
    occurred_at     timestamptz NOT NULL
);

-- Creates the day partition holding `day` (UTC) unless it exists; safe under concurrent callers.
CREATE FUNCTION ensure_log_events_partition(day date) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    partition_name text := format('log_events_%s', to_char(day, 'YYYYMMDD'));
BEGIN
    IF to_regclass(partition_name) IS NOT NULL THEN
        RETURN;
    END IF;
    EXECUTE format(
        'CREATE TABLE IF NOT EXISTS %I PARTITION OF log_events FOR VALUES FROM (%L) TO (%L)',
        partition_name, day::text || ' 00:00:00+00', (day + 1)::text || ' 00:00:00+00'
    );
EXCEPTION
    WHEN duplicate_table OR unique_violation THEN
        NULL; -- another consumer created it first
END;
$$;
