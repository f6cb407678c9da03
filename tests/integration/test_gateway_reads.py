"""The read API against the real PostgreSQL and Redis: search, pagination, one event, status, stats."""

import base64
import json
import threading
import time
import uuid
from datetime import UTC, datetime

import pytest

from logpipe.access import keys
from logpipe.access.models import Scope
from logpipe.adapters import cache
from logpipe.config import get_settings
from logpipe.read import queries, stats
from logpipe.receipts import accepted, outcomes
from tests.integration.gateway_helpers import answer, make_event, store


def test_search_filters_by_levels_source_time_and_text_newest_first(read, organization_id: str) -> None:
    events = store(
        make_event(organization_id, 50, "INFO", message="user logged in", source="auth"),
        make_event(organization_id, 40, "ERROR", message="payment declined for card", source="billing"),
        make_event(organization_id, 30, "WARN", message="disk almost full", source="node"),
        make_event(organization_id, 20, "ERROR", message="payment gateway timeout", source="billing"),
        make_event(organization_id, 10, "DEBUG", message="cache miss", source="auth"),
    )
    ids = [str(event.id) for event in events]

    def found(**query: str) -> list[str]:
        status, headers, body = read("/api/logs", **query)
        assert status == 200, body
        assert headers["RateLimit"].startswith('"org";r=')
        return [item["id"] for item in body["items"]]

    assert found() == ids[::-1]
    assert found(level="ERROR,WARN") == [ids[3], ids[2], ids[1]]  # HTTP API joins a repeated parameter with commas
    assert found(source="auth") == [ids[4], ids[0]]
    assert found(q="payment") == [ids[3], ids[1]]
    assert found(q="payment declined") == [ids[1]]
    assert found(**{"from": events[2].timestamp.isoformat(), "to": events[4].timestamp.isoformat()}) == [
        ids[3],
        ids[2],
    ]
    first = read("/api/logs", limit="1")[2]["items"][0]
    assert set(first) == {
        "id",
        "organizationId",
        "level",
        "message",
        "source",
        "timestamp",
        "receivedAt",
        "attributes",
        "traceId",
        "spanId",
    }


def test_a_text_search_finds_old_matches_beyond_the_newest_rows_it_tests_first(
    read, organization_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(queries, "RECENT_ROWS_SEARCHED", 3)
    events = store(
        make_event(organization_id, 50, message="kernel panic on node"),
        *(make_event(organization_id, 40 - i, message=f"routine {i}") for i in range(4)),
        make_event(organization_id, 5, message="second kernel panic"),
        make_event(organization_id, 1, message="routine again"),
    )
    panics = [str(events[5].id), str(events[0].id)]

    def found(**query: str) -> list[str]:
        return [item["id"] for item in read("/api/logs", **query)[2]["items"]]

    assert found(q="kernel panic", limit="1") == panics[:1], "found among the newest rows"
    assert found(q="kernel panic") == panics, "the older match is beyond the newest 3 rows"
    assert found(q="kernel panic", cursor=read("/api/logs", q="kernel panic", limit="1")[2]["nextCursor"]) == [
        panics[1]
    ]


def test_bad_parameters_are_4xx(read) -> None:
    assert read("/api/logs", cursor="not-a-cursor")[0] == 400
    assert read("/api/logs", level="LOUD")[0] == 422
    assert read("/api/logs", limit="0")[0] == 422
    assert read("/api/logs", **{"from": "2026-01-02T00:00:00Z", "to": "2026-01-01T00:00:00Z"})[0] == 400
    assert read(f"/api/logs/{uuid.uuid4()}")[0] == 404
    assert read("/api/logs/not-a-uuid")[0] == 422


def forged_cursor(document: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(document).encode()).decode().rstrip("=")


@pytest.mark.parametrize(
    ("parameters", "status"),
    [
        ({"cursor": forged_cursor(["2026-01-01T00:00:00+00:00", 42])}, 400),  # an id that is not text
        ({"cursor": forged_cursor([7, "0b3f2a9e-6d3c-4f7e-9a51-6f0d2b7c9e14"])}, 400),  # a time that is not text
        ({"cursor": forged_cursor({"a": 1})}, 400),
        ({"from": "2026-01-01T00:00:00", "to": "2026-01-02T00:00:00Z"}, 200),  # without an offset: UTC
        ({"from": "2026-01-02T00:00:00", "to": "2026-01-01T00:00:00Z"}, 400),
        ({"to": "0001-01-01T00:00:00Z"}, 200),  # nothing that old: an empty page
        ({"from": "9999-12-31T23:59:59Z"}, 200),
    ],
)
def test_odd_search_parameters_are_answered_never_500(read, parameters: dict, status: int) -> None:
    assert read("/api/logs", **parameters)[0] == status


def test_pages_neither_repeat_nor_skip_rows_while_new_rows_arrive(read, organization_id: str) -> None:
    existing = store(*(make_event(organization_id, minutes_ago=100 - i) for i in range(40)))
    # Three events in one instant, spanning the end of the first page (7 rows): the id breaks the tie, so the
    # boundary loses none of them. existing[33] (67 minutes ago) is the 7th newest.
    twin_time = existing[33].timestamp
    existing += store(
        make_event(organization_id, 0, timestamp=twin_time), make_event(organization_id, 0, timestamp=twin_time)
    )
    stop = threading.Event()

    def keep_inserting() -> None:
        while not stop.is_set():
            store(make_event(organization_id, minutes_ago=0))  # newer than every page already served

    writer = threading.Thread(target=keep_inserting)
    seen: list[str] = []
    status, _, body = read("/api/logs", limit="7")
    writer.start()
    try:
        seen += [item["id"] for item in body["items"]]
        while body["nextCursor"]:
            status, _, body = read("/api/logs", limit="7", cursor=body["nextCursor"])
            assert status == 200
            seen += [item["id"] for item in body["items"]]
    finally:
        stop.set()
        writer.join()

    assert len(seen) == len(set(seen)), "a row was served twice"
    assert set(seen) == {str(event.id) for event in existing}, "a row was skipped (or a newer one slipped in)"


def test_the_keys_are_listed_in_pages_that_neither_repeat_nor_skip_a_key(read, organization_id: str) -> None:
    created = [keys.create_key(organization_id, [Scope.READ], f"k{index}") for index in range(4)]
    listed = [key["id"] for key in read("/api/keys", limit="1000")[2]["items"]]  # with the fixture's own key

    pages, cursor = [], None
    for _ in range(5):  # three pages expected; a cursor that never ends fails below
        status, _, body = read("/api/keys", limit="2", **({"cursor": cursor} if cursor else {}))
        assert status == 200, body
        pages.append([key["id"] for key in body["items"]])
        cursor = body["nextCursor"]
        if cursor is None:
            break
    assert [len(page) for page in pages] == [2, 2, 1]
    assert [key_id for page in pages for key_id in page] == listed
    assert {str(key.id) for key in created} < set(listed)
    assert read("/api/keys")[2]["nextCursor"] is None  # the default page (100) holds all five


def test_one_event_and_its_status(read, organization_id: str) -> None:
    stored = store(make_event(organization_id, 5, "FATAL", attributes={"pod": "a"}, trace_id="t1"))[0]
    queued, also_queued, dead = make_event(organization_id, 6).id, uuid.uuid4(), uuid.uuid4()
    batch = [make_event(organization_id, 6, id=queued), make_event(organization_id, 7, id=also_queued)]
    accepted.record_accepted(batch, get_settings())
    outcomes.record_dead_letters([(organization_id, dead, "undecodable")])

    status, _, event = read(f"/api/logs/{stored.id}")
    assert status == 200
    assert (event["level"], event["attributes"], event["traceId"]) == ("FATAL", {"pod": "a"}, "t1")
    assert read(f"/api/logs/{stored.id}/status")[2] == {"id": str(stored.id), "status": "stored"}
    assert read(f"/api/logs/{queued}/status")[2] == {"id": str(queued), "status": "queued"}
    assert read(f"/api/logs/{also_queued}/status")[2] == {"id": str(also_queued), "status": "queued"}
    assert read(f"/api/logs/{dead}/status")[2] == {"id": str(dead), "status": "dead_lettered", "reason": "undecodable"}
    assert read(f"/api/logs/{uuid.uuid4()}/status")[0] == 404


def test_stats_count_per_level_and_source_and_are_served_from_the_cache(read, organization_id: str) -> None:
    store(
        make_event(organization_id, 30, "INFO", source="auth"),
        make_event(organization_id, 20, "ERROR", source="billing"),
        make_event(organization_id, 10, "ERROR", source="auth"),
    )
    status, _, first = read("/api/stats")
    assert status == 200
    assert (first["total"], first["byLevel"], first["bySource"]) == (
        3,
        {"INFO": 1, "ERROR": 2},
        {"auth": 2, "billing": 1},
    )

    store(make_event(organization_id, 5, "WARN", source="auth"))
    assert read("/api/stats")[2] == first, "within the cache interval the cached answer is served"

    stats.invalidate(organization_id)
    assert read("/api/stats")[2]["total"] == 4


def test_a_cached_stats_answer_older_than_the_bound_is_recomputed(organization_id: str) -> None:
    settings = get_settings().model_copy(update={"stats_cache_seconds": 1})
    window = make_event(organization_id, 60).timestamp, make_event(organization_id, 0).timestamp
    store(make_event(organization_id, 30))
    assert stats.get_stats(organization_id, *window, settings).total == 1
    store(make_event(organization_id, 20))
    assert stats.get_stats(organization_id, *window, settings).total == 1

    threading.Event().wait(1.2)
    assert stats.get_stats(organization_id, *window, settings).total == 2


def test_a_cached_answer_outlives_its_bound_in_no_case(organization_id: str) -> None:
    """Caching another window refreshes the organization's hash; the older answer must still not be served."""
    settings = get_settings().model_copy(update={"stats_cache_seconds": 1})
    first = make_event(organization_id, 60).timestamp, make_event(organization_id, 0).timestamp
    second = make_event(organization_id, 120).timestamp, first[1]
    store(make_event(organization_id, 30))
    assert stats.get_stats(organization_id, *first, settings).total == 1
    store(make_event(organization_id, 20))

    threading.Event().wait(0.7)
    stats.get_stats(organization_id, *second, settings)  # keeps the hash alive past the first answer's bound
    threading.Event().wait(0.5)
    assert stats.get_stats(organization_id, *first, settings).total == 2


@pytest.mark.parametrize("method, path, query, body", [
    ("GET", "/api/logs", {"source": "a\x00b"}, None),
    ("GET", "/api/logs", {"q": "a\x00b"}, None),
    ("POST", "/api/keys", None, {"scopes": ["read"], "name": "a\x00b"}),
], ids=["source", "q", "key name"])  # fmt: skip
def test_a_nul_character_postgresql_cannot_store_is_422(
    api_request, gateway_function, lambda_context, auth_headers, organization_id: str, method, path, query, body
) -> None:
    request = api_request(method, path, headers=auth_headers(organization_id), query=query, body=body)
    status, _, answer_ = answer(gateway_function, request, lambda_context)
    assert (status, answer_["error"]["code"]) == (422, "validation_failed")


@pytest.fixture
def count_queries(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The real stats query, recording the name of the thread that ran each call."""
    threads: list[str] = []
    real = queries.count_events

    def recorded(*args, **kwargs):
        threads.append(threading.current_thread().name)
        return real(*args, **kwargs)

    monkeypatch.setattr(queries, "count_events", recorded)
    return threads


def test_an_answer_past_half_its_bound_is_refreshed_in_the_background_by_one_caller(
    organization_id: str, count_queries: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = get_settings().model_copy(update={"stats_cache_seconds": 4})
    window = make_event(organization_id, 60).timestamp, make_event(organization_id, 0).timestamp
    store(make_event(organization_id, 30))
    assert stats.get_stats(organization_id, *window, settings).total == 1
    store(make_event(organization_id, 20))
    threading.Event().wait(2.1)  # past half the bound

    # The refresh's query is held until every caller has its answer, so a caller that waited for it would hang
    # (and then see the new count) instead of racing it.
    callers_answered = threading.Event()
    counting = queries.count_events

    def held_in_background(*args, **kwargs):
        if threading.current_thread().name.startswith("stats-refresh"):
            callers_answered.wait(10)
        return counting(*args, **kwargs)

    monkeypatch.setattr(queries, "count_events", held_in_background)
    answers: list[int] = []
    callers = [
        threading.Thread(target=lambda: answers.append(stats.get_stats(organization_id, *window, settings).total))
        for _ in range(8)
    ]
    for caller in callers:
        caller.start()
    for caller in callers:
        caller.join(5)
    callers_answered.set()
    assert answers == [1] * 8, "every caller is answered from the cache, none waits for the refresh"

    while stats.get_stats(organization_id, *window, settings).total != 2:  # refreshed, or recomputed past the bound
        threading.Event().wait(0.05)
    assert count_queries[0] == threading.current_thread().name
    assert [name.startswith("stats-refresh") for name in count_queries[1:]] == [True], (
        "one refresh, in the background, before the answer expired"
    )


def test_an_answer_is_as_old_as_its_query_start(organization_id: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """An answer whose query took long is not younger than the data it saw: it expires a bound after the query
    started, not after it ended."""
    settings = get_settings().model_copy(update={"stats_cache_seconds": 1})
    window = make_event(organization_id, 60).timestamp, make_event(organization_id, 0).timestamp
    real = queries.count_events

    def slow(*args, **kwargs):
        threading.Event().wait(0.6)
        return real(*args, **kwargs)

    store(make_event(organization_id, 30))
    monkeypatch.setattr(queries, "count_events", slow)
    assert stats.get_stats(organization_id, *window, settings).total == 1  # its query started 0.6 s ago
    monkeypatch.setattr(queries, "count_events", real)
    store(make_event(organization_id, 20))
    threading.Event().wait(0.55)
    assert stats.get_stats(organization_id, *window, settings).total == 2


def test_an_event_accepted_by_the_ingest_route_is_queued_until_stored(
    read, api_request, producer_function, lambda_context, auth_headers, organization_id: str
) -> None:
    body = {"level": "INFO", "message": "on its way", "source": "api"}
    answer_ = producer_function.handler(
        api_request("POST", "/api/logs", auth_headers(organization_id, "ingest"), body=body), lambda_context
    )
    assert answer_["statusCode"] == 202
    accepted = json.loads(answer_["body"])["id"]
    assert read(f"/api/logs/{accepted}/status")[2] == {"id": accepted, "status": "queued"}


def test_accept_records_are_one_set_per_organization_and_bucket_and_expire_after_their_time_to_live(
    organization_id: str,
) -> None:
    settings = get_settings().model_copy(update={"accepted_ttl_seconds": 2})
    received = datetime.now(UTC)  # a request's events share the moment they were received: their bucket's
    events = [make_event(organization_id, seconds, received_at=received) for seconds in range(3)]
    accepted.record_accepted(events, settings)
    time.sleep(0.2)  # sent without waiting for Redis: give it the moment the reply-less write takes

    assert all(accepted.was_accepted(organization_id, event.id, settings) for event in events)
    assert not accepted.was_accepted(f"other-{organization_id}", events[0].id, settings)
    bucket = int(received.timestamp())  # a quarter of the time to live, at least a second
    candidates = [f"accepted:{{{organization_id}}}:{number}" for number in (bucket - 1, bucket)]
    keys = [key for key in candidates if cache.client().exists(key)]
    assert len(keys) == 1 and cache.client().scard(keys[0]) == 3, "one set for the organization's bucket"
    assert 2 <= cache.client().ttl(keys[0]) <= 2 + 2 * 2, "kept its time to live, at most two buckets more"
    time.sleep(cache.client().ttl(keys[0]) + 1)
    assert not accepted.was_accepted(organization_id, events[0].id, settings)
