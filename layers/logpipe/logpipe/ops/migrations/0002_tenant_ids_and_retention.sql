-- Tenant-safe exactly-once: event ids are chosen by clients, so they are unique per organization only.
-- Keyed by id alone, one organization could pre-claim another's id and have its event dropped as a duplicate.
-- The existing rows carry over unchanged: ids unique on their own are unique per organization too.
ALTER TABLE log_event_ids DROP CONSTRAINT log_event_ids_pkey;
ALTER TABLE log_event_ids ADD PRIMARY KEY (organization_id, id);

-- Two organizations may now store the same id at the same instant.
ALTER TABLE log_events DROP CONSTRAINT log_events_pkey;
ALTER TABLE log_events ADD PRIMARY KEY (occurred_at, organization_id, id);

-- Retention prunes ids by event time together with the day partition it drops. Ids arrive roughly in time
-- order, so a BRIN index finds a day's ids at almost no cost on the insert path.
CREATE INDEX log_event_ids_occurred_at_brin ON log_event_ids USING brin (occurred_at);
