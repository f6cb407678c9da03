-- Fewer and cheaper index insertions per stored event (docs/sink.md, "What a stored row costs"). Every index of
-- log_events is maintained on every insert, and btree insertions were most of PostgreSQL's time per row.

-- The rebuilt indexes are dropped first, so the collation change below rebuilds nothing twice.
ALTER TABLE log_events DROP CONSTRAINT log_events_pkey;
DROP INDEX log_events_org_time_idx, log_events_org_level_time_idx, log_events_org_source_time_idx,
    log_events_org_message_tsv_idx;

-- The indexed text columns compare in "C" order: a memcmp instead of a call into the locale (strcoll) at every
-- step of an index descent or sort. Organization ids are ASCII identifiers and levels a fixed set of ASCII words
-- (ingest enforces both); sources are only ever compared for equality, which every deterministic collation
-- answers the same way.
ALTER TABLE log_events ALTER COLUMN organization_id TYPE text COLLATE "C",
    ALTER COLUMN level TYPE text COLLATE "C", ALTER COLUMN source TYPE text COLLATE "C";
ALTER TABLE log_event_ids ALTER COLUMN organization_id TYPE text COLLATE "C";

-- One btree instead of two: the key (organization_id, occurred_at, id) is unique as the old primary key was (the
-- same columns), and read backwards it serves what (organization_id, occurred_at DESC, id DESC) served: an
-- organization's events newest first, the keyset cursor, and the lookup of one event by (time, id).
ALTER TABLE log_events ADD PRIMARY KEY (organization_id, occurred_at, id);

-- 0003's read indexes, unchanged but for deduplicate_items: every key ends with the event id, so no two keys are
-- equal and a deduplication pass (tried each time a leaf page fills) can never merge anything.
CREATE INDEX log_events_org_level_time_idx ON log_events (organization_id, level, occurred_at DESC, id DESC)
    WITH (deduplicate_items = off);
CREATE INDEX log_events_org_source_time_idx ON log_events (organization_id, source, occurred_at DESC, id DESC)
    WITH (deduplicate_items = off);
CREATE INDEX log_events_org_message_tsv_idx ON log_events USING gin (organization_id, message_tsv);
