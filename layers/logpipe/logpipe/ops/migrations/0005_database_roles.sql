-- Roles per need (docs/deploy.md, "Database roles"): the functions facing the internet do not connect as the
-- owner. The owner (the RDS master user; `logpipe` locally) applies migrations and runs maintenance.
--   logpipe_reader  gateway and producer: reads events, ids, dead letters and API keys; creates and revokes keys
--   logpipe_writer  consumer: inserts events, ids and dead letters; creates day partitions through the function
-- Neither may delete, update events or change the schema. They are created without LOGIN: the deploy-time setup
-- (logpipe.ops.roles) gives each a login and the password of its Secrets Manager secret.
DO $$
DECLARE
    role_name text;
BEGIN
    FOREACH role_name IN ARRAY ARRAY['logpipe_reader', 'logpipe_writer'] LOOP
        CONTINUE WHEN EXISTS (SELECT FROM pg_roles WHERE rolname = role_name);
        IF NOT (SELECT rolcreaterole OR rolsuper FROM pg_roles WHERE rolname = current_user) THEN
            RAISE EXCEPTION 'migration 0005 creates the role %, and % may not create roles', role_name, current_user
                USING HINT = 'Migrate as a user with CREATEROLE: the RDS master user has it, local/services.py grants it';
        END IF;
        EXECUTE format('CREATE ROLE %I NOLOGIN', role_name);
    END LOOP;
END;
$$;

GRANT USAGE ON SCHEMA public TO logpipe_reader, logpipe_writer;

GRANT SELECT ON log_events, log_event_ids, dead_letters, api_keys TO logpipe_reader;
GRANT INSERT, UPDATE (revoked_at) ON api_keys TO logpipe_reader;

GRANT SELECT, INSERT ON log_events, log_event_ids, dead_letters TO logpipe_writer;

-- A partition is created by the owner's rights (only a table's owner may attach partitions to it), for the
-- writer alone; the search path is fixed so the function cannot be steered to other objects.
ALTER FUNCTION ensure_log_events_partition(date) SECURITY DEFINER SET search_path = public, pg_temp;
REVOKE EXECUTE ON FUNCTION ensure_log_events_partition(date) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION ensure_log_events_partition(date) TO logpipe_writer;
