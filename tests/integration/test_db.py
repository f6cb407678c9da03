from datetime import timedelta

import psycopg

from logpipe.sink import storage
from tests.integration.stored_events import NOW, as_fields, make_event


def rows(conn: psycopg.Connection, organization_id: str) -> list[tuple]:
    return conn.execute(
        "SELECT id, level, message, source, occurred_at, attributes, trace_id, span_id"
        " FROM log_events WHERE organization_id = %s ORDER BY occurred_at",
        (organization_id,),
    ).fetchall()


def test_stores_every_column(settings, pg: psycopg.Connection, organization_id: str) -> None:
    event = make_event(organization_id)

    assert storage.store_events(as_fields([event])) == 1

    [(row_id, level, message, source, occurred_at, attributes, trace_id, span_id)] = rows(pg, organization_id)
    assert (row_id, level, message, source) == (event.id, "INFO", "disk almost full", "node-7")
    assert occurred_at == event.timestamp
    assert attributes == {"disk": "/dev/sda1", "usage": 0.93}
    assert (trace_id, span_id) == (event.trace_id, event.span_id)


def test_redelivery_stores_nothing_twice(settings, pg: psycopg.Connection, organization_id: str) -> None:
    events = [make_event(organization_id) for _ in range(50)]
    assert storage.store_events(as_fields(events)) == 50
    assert storage.store_events(as_fields(events)) == 0
    assert storage.store_events(as_fields([*events[:10], make_event(organization_id)])) == 1
    # new rows first, a known one last: what the first attempt copied is undone, the new ones are stored once
    assert storage.store_events(as_fields([make_event(organization_id), make_event(organization_id), events[-1]])) == 2
    assert len(rows(pg, organization_id)) == 53
    ids = pg.execute("SELECT count(*) FROM log_event_ids WHERE organization_id = %s", (organization_id,))
    assert ids.fetchone() == (53,)


def test_an_id_is_stored_once_even_with_another_timestamp(settings, pg, organization_id: str) -> None:
    event = make_event(organization_id)
    assert storage.store_events(as_fields([event])) == 1
    assert storage.store_events(as_fields([event.model_copy(update={"timestamp": NOW - timedelta(days=2)})])) == 0
    assert storage.store_events(as_fields([event, event])) == 0
    assert len(rows(pg, organization_id)) == 1


def test_duplicates_inside_one_batch_are_stored_once(settings, pg, organization_id: str) -> None:
    event = make_event(organization_id)
    assert storage.store_events(as_fields([event, event, event])) == 1
    assert len(rows(pg, organization_id)) == 1


def test_day_partitions_are_created_on_demand(settings, pg: psycopg.Connection, organization_id: str) -> None:
    days = [NOW - timedelta(days=3), NOW - timedelta(days=1), NOW]
    assert storage.store_events(as_fields([make_event(organization_id, timestamp=day) for day in days])) == 3

    partitions = {
        name
        for (name,) in pg.execute(
            "SELECT child.relname FROM pg_inherits"
            " JOIN pg_class child ON child.oid = pg_inherits.inhrelid"
            " JOIN pg_class parent ON parent.oid = pg_inherits.inhparent"
            " WHERE parent.relname = 'log_events'"
        )
    }
    assert {f"log_events_{day:%Y%m%d}" for day in days} <= partitions
