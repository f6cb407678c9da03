-- Gateway: API keys, dead-letter records for the status route, and read-side indexes (docs/gateway.md).

-- An API key is shown once, at creation; only its SHA-256 is kept. `prefix` lets a user recognise a key.
CREATE TABLE api_keys (
    id              uuid        PRIMARY KEY,
    organization_id text        NOT NULL,
    name            text        NOT NULL DEFAULT '',
    scopes          text[]      NOT NULL CHECK (cardinality(scopes) > 0 AND scopes <@ ARRAY['ingest', 'read', 'admin']),
    key_hash        bytea       NOT NULL UNIQUE,
    prefix          text        NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    revoked_at      timestamptz
);
CREATE INDEX api_keys_org_idx ON api_keys (organization_id, created_at);

-- One row per event the consumer could never store (written through logpipe.reads.record_dead_letters),
-- so GET /api/logs/{id}/status can say "dead_lettered" and why.
CREATE TABLE dead_letters (
    organization_id  text        NOT NULL,
    id               uuid        NOT NULL,
    reason           text        NOT NULL,
    dead_lettered_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (organization_id, id)
);

-- Newest events of one organization at some levels (0001 has (organization_id, occurred_at, id) for the rest).
CREATE INDEX log_events_org_level_time_idx ON log_events (organization_id, level, occurred_at DESC, id DESC);
CREATE INDEX log_events_org_source_time_idx ON log_events (organization_id, source, occurred_at DESC, id DESC);

-- Full-text search on the message ('simple': log text is not prose; no stemming, no stop words). The vector is
-- stored so a search that walks the newest rows of an organization tests each row without re-parsing it.
-- The organization leads the GIN index (btree_gin), so a rare term is found among one organization's rows only.
ALTER TABLE log_events ADD COLUMN message_tsv tsvector GENERATED ALWAYS AS (to_tsvector('simple', message)) STORED;
CREATE EXTENSION IF NOT EXISTS btree_gin;
CREATE INDEX log_events_org_message_tsv_idx ON log_events USING gin (organization_id, message_tsv);
