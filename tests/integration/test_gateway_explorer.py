"""The log explorer's read routes against the real PostgreSQL and Redis: the histogram and an event's context,
each bound to the key's organization."""

import itertools
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from logpipe.read import histogram
from tests.integration.gateway_helpers import answer, make_event, store

# A fixed hour on round times, so the expected buckets are written out: 10:00:00 to 11:00:00 UTC, 2 days ago.
HOUR = (datetime.now(UTC) - timedelta(days=2)).replace(hour=10, minute=0, second=0, microsecond=0)


def at(minutes: float, organization_id: str, level: str = "INFO", **fields):
    moment = HOUR + timedelta(minutes=minutes)
    return make_event(organization_id, 0, level, timestamp=moment, received_at=moment, **fields)


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def hour_query(**query: str) -> dict[str, str]:
    return {"from": iso(HOUR), "to": iso(HOUR + timedelta(hours=1)), **query}


def test_the_histogram_counts_per_bucket_and_level_with_the_searchs_filters(read, organization_id: str) -> None:
    store(
        at(1, organization_id, "INFO", message="user logged in", source="auth"),
        at(2, organization_id, "ERROR", message="payment declined", source="billing"),
        at(3, organization_id, "ERROR", message="payment timeout", source="billing"),
        at(31, organization_id, "WARN", message="disk almost full", source="node"),
        at(59.99, organization_id, "INFO", message="user logged out", source="auth"),
        at(60, organization_id, "FATAL", message="after the window", source="auth"),  # `to` is exclusive
        at(-0.01, organization_id, "FATAL", message="before the window", source="auth"),
    )
    store(at(2, f"{organization_id}-other", "ERROR", message="payment declined", source="billing"))

    status, _, body = read("/api/logs/histogram", **hour_query(buckets="4"))
    assert status == 200, body
    quarter = timedelta(minutes=15)
    assert body == {
        "from": iso(HOUR),
        "to": iso(HOUR + timedelta(hours=1)),
        "bucketSeconds": 900,
        "buckets": [
            {"start": iso(HOUR), "counts": {"INFO": 1, "ERROR": 2}},
            {"start": iso(HOUR + quarter), "counts": {}},
            {"start": iso(HOUR + 2 * quarter), "counts": {"WARN": 1}},
            {"start": iso(HOUR + 3 * quarter), "counts": {"INFO": 1}},
        ],
    }

    def counts(**query: str) -> list[dict]:
        status, _, body = read("/api/logs/histogram", **hour_query(buckets="4", **query))
        assert status == 200, body
        return [bucket["counts"] for bucket in body["buckets"]]

    assert counts(level="ERROR,WARN") == [{"ERROR": 2}, {}, {"WARN": 1}, {}]
    assert counts(source="auth") == [{"INFO": 1}, {}, {}, {"INFO": 1}]
    assert counts(q="payment") == [{"ERROR": 2}, {}, {}, {}]
    assert counts(q="payment declined") == [{"ERROR": 1}, {}, {}, {}]
    assert counts(q="user", level="INFO", source="auth") == [{"INFO": 1}, {}, {}, {"INFO": 1}]


@pytest.mark.parametrize(
    "minutes, buckets, width",
    [(60, 60, 60), (60, 121, 30), (60, 7, 600), (60, 4, 900), (60, 3, 1800), (1, 500, 1), (0.5, 1, 30)],
)
def test_buckets_are_a_round_width_aligned_on_round_times(read, minutes: float, buckets: int, width: int) -> None:
    start = HOUR + timedelta(seconds=7.5)  # not on a bucket boundary
    end = start + timedelta(minutes=minutes)
    status, _, body = read("/api/logs/histogram", **{"from": iso(start), "to": iso(end), "buckets": str(buckets)})
    assert status == 200, body
    assert body["bucketSeconds"] == width
    starts = [datetime.fromisoformat(bucket["start"]) for bucket in body["buckets"]]
    assert starts[0] <= start < starts[0] + timedelta(seconds=width)
    assert starts[-1] < end <= starts[-1] + timedelta(seconds=width)
    assert all(b - a == timedelta(seconds=width) for a, b in itertools.pairwise(starts))
    assert all(moment.timestamp() % width == 0 for moment in starts)
    assert len(starts) <= buckets + 1


def test_a_time_without_an_offset_is_utc(read) -> None:
    start = HOUR.replace(tzinfo=None)
    status, _, body = read(
        "/api/logs/histogram", **{"from": start.isoformat(), "to": iso(HOUR + timedelta(hours=1)), "buckets": "2"}
    )
    assert status == 200, body
    assert (body["from"], body["bucketSeconds"], body["buckets"][0]["start"]) == (iso(HOUR), 1800, iso(HOUR))


def test_the_histogram_defaults_to_the_last_24_hours(read, organization_id: str) -> None:
    store(make_event(organization_id, 30, "ERROR"), make_event(organization_id, 25 * 60, "ERROR"))
    status, _, body = read("/api/logs/histogram")
    assert status == 200, body
    window = datetime.fromisoformat(body["to"]) - datetime.fromisoformat(body["from"])
    assert window == timedelta(hours=24)
    assert (body["bucketSeconds"], len(body["buckets"])) in {(1800, 48), (1800, 49)}
    assert sum(sum(bucket["counts"].values()) for bucket in body["buckets"]) == 1


def test_a_histogram_is_served_from_the_cache_within_its_bound(read, organization_id: str) -> None:
    store(at(1, organization_id, "INFO"))
    first = read("/api/logs/histogram", **hour_query(buckets="2"))[2]
    store(at(2, organization_id, "INFO"))
    assert read("/api/logs/histogram", **hour_query(buckets="2"))[2] == first, "cached"
    assert read("/api/logs/histogram", **hour_query(buckets="3"))[2]["buckets"][0]["counts"] == {"INFO": 2}
    histogram._cache.invalidate(organization_id)
    assert read("/api/logs/histogram", **hour_query(buckets="2"))[2]["buckets"][0]["counts"] == {"INFO": 2}


@pytest.mark.parametrize(
    "query, status",
    [
        ({"buckets": "0"}, 422),
        ({"buckets": "501"}, 422),
        ({"buckets": "many"}, 422),
        ({"from": "yesterday"}, 422),
        ({"level": "LOUD"}, 422),
        ({"q": ""}, 422),
        ({"from": "2026-01-02T00:00:00Z", "to": "2026-01-01T00:00:00Z"}, 400),
        ({"from": "2026-01-01T00:00:00Z", "to": "2026-01-01T00:00:00Z"}, 400),
        ({"from": "2999-01-01T00:00:00Z"}, 400),  # after the default `to` (now)
        ({"to": "0001-01-01T00:00:00Z"}, 400),  # the default `from` would be before year 1
        ({"from": "0001-01-01T00:00:00Z", "to": "9999-12-31T00:00:00Z", "buckets": "1"}, 400),
    ],
)
def test_bad_histogram_parameters_are_answered_in_the_error_format(read, query: dict, status: int) -> None:
    answered, _, body = read("/api/logs/histogram", **query)
    assert answered == status, body
    assert body["status"] == "error"
    assert set(body["error"]) == {"code", "message", "details"}


def test_an_events_context_is_its_sources_neighbours_in_time_and_id_order(read, organization_id: str) -> None:
    twins = sorted([uuid.uuid4(), uuid.uuid4()])  # one instant: the id orders them
    events = store(
        *(at(minute, organization_id, source="api", message=f"api {minute}") for minute in range(10) if minute != 5),
        at(5, organization_id, source="api", id=twins[0], message="twin a"),
        at(5, organization_id, source="api", id=twins[1], message="twin b"),
        at(4.5, organization_id, source="worker", message="other source"),
        at(5.5, f"{organization_id}-other", source="api", message="other organization"),
    )
    api = sorted(
        (event for event in events if event.source == "api" and event.organization_id == organization_id),
        key=lambda event: (event.timestamp, event.id),
    )
    order = [str(event.id) for event in api]
    middle = order.index(str(twins[0]))

    status, _, body = read(f"/api/logs/{twins[0]}/context", before="3", after="4")
    assert status == 200, body
    assert body["event"]["id"] == str(twins[0])
    assert [item["id"] for item in body["before"]] == order[middle - 3 : middle]
    assert [item["id"] for item in body["after"]] == order[middle + 1 : middle + 5]
    assert order[middle + 1] == str(twins[1])
    assert set(body["event"]) == set(body["before"][0])

    defaults = read(f"/api/logs/{order[0]}/context")[2]
    assert (defaults["before"], [item["id"] for item in defaults["after"]]) == ([], order[1:11])
    assert read(f"/api/logs/{order[-1]}/context", before="0", after="0")[2]["before"] == []


def test_context_of_another_organizations_event_or_with_bad_parameters_is_refused(read, organization_id: str) -> None:
    foreign = store(at(1, f"{organization_id}-other"))[0]
    ours = store(at(1, organization_id))[0]
    assert read(f"/api/logs/{foreign.id}/context")[0] == 404
    assert read(f"/api/logs/{uuid.uuid4()}/context")[0] == 404
    assert read("/api/logs/not-a-uuid/context")[0] == 422
    assert read(f"/api/logs/{ours.id}/context", before="101")[0] == 422
    assert read(f"/api/logs/{ours.id}/context", after="-1")[0] == 422


def test_the_new_read_routes_need_a_read_key(
    api_request, gateway_function, lambda_context, auth_headers, organization_id: str
) -> None:
    event = store(at(1, organization_id))[0]
    for path in ("/api/logs/histogram", f"/api/logs/{event.id}/context"):
        assert answer(gateway_function, api_request("GET", path), lambda_context)[0] == 401
        ingest_only = api_request("GET", path, headers=auth_headers(organization_id, "ingest"))
        assert answer(gateway_function, ingest_only, lambda_context)[0] == 403
