"""The read API's bounds against the real PostgreSQL and Redis: statement time per route, answers that fit in
Lambda's 6 MB response, stats windows that share cached answers, a cache hash of bounded size."""

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from logpipe.adapters import cache, postgres
from logpipe.config import Settings, get_settings
from logpipe.errors import DependencyUnavailableError
from logpipe.read import answer_cache, health, histogram, queries, stats
from tests.integration.gateway_helpers import make_event, store

LAMBDA_RESPONSE_LIMIT = 6_291_456  # bytes: Lambda's synchronous response payload, 6 MB
# A message of control characters: each byte takes 6 in the JSON body (\u0001) and 7 once in Lambda's response.
WIDE_MESSAGE = "\x01" * 32_768


@pytest.fixture
def gateway_settings(gateway_function, monkeypatch: pytest.MonkeyPatch):
    """Replace settings the gateway passes to the read logic (and the adapters read) for one test."""

    def configure(**changes: float) -> Settings:
        changed = get_settings().model_copy(update=changes)
        monkeypatch.setattr(gateway_function, "settings", changed)
        monkeypatch.setattr(postgres, "get_settings", lambda: changed)
        return changed

    return configure


@pytest.fixture
def locked_partition(pg: psycopg.Connection, settings: Settings) -> Iterator[dict[str, str]]:
    """A day partition two days ahead (which no ingest writes to) held in ACCESS EXCLUSIVE mode by another session:
    a search of that day waits for the lock. Yields the day as the search's `from` and `to`."""
    day = (datetime.now(UTC) + timedelta(days=2)).date()
    pg.execute("SELECT ensure_log_events_partition(%s)", (day,))
    with psycopg.connect(settings.database_url) as holder:
        holder.execute(f"LOCK TABLE log_events_{day:%Y%m%d} IN ACCESS EXCLUSIVE MODE")
        yield {"from": f"{day}T00:00:00Z", "to": f"{day}T12:00:00Z"}
        holder.rollback()


def test_a_search_past_its_time_bound_is_stopped_and_answered_422_not_as_an_outage(
    read, gateway_settings, locked_partition: dict[str, str], settings: Settings
) -> None:
    gateway_settings(read_query_timeout_seconds=0.3, dependency_timeout_seconds=10)

    started = datetime.now(UTC)
    status, headers, body = read("/api/logs", **locked_partition)

    assert (status, body["error"]["code"]) == (422, "query_timeout"), body
    assert "narrow the time range" in body["error"]["message"]
    assert body["error"]["details"] == {"boundSeconds": 0.3}
    assert "Retry-After" not in headers, "the same query would only time out again"
    assert datetime.now(UTC) - started < timedelta(seconds=3)
    report = health.check_health(settings)
    assert report.dependencies["postgresql"].status == "up", "a slow query is not a database outage"


def test_a_search_waiting_for_a_lock_past_the_dependency_timeout_is_503_with_retry_after(
    read, gateway_settings, locked_partition: dict[str, str]
) -> None:
    gateway_settings(read_query_timeout_seconds=10, dependency_timeout_seconds=0.3)

    status, headers, body = read("/api/logs", **locked_partition)

    assert (status, body["error"]["code"]) == (503, "service_unavailable"), body
    assert body["error"]["details"] == {"dependency": "postgresql"}
    assert int(headers["Retry-After"]) >= 1


def test_a_bounded_statement_leaves_no_bound_on_the_pooled_connection(settings: Settings) -> None:
    with postgres.connection(0.5) as conn:
        assert conn.execute("SHOW statement_timeout").fetchone()[0] == "500ms"
    for _ in range(settings.database_pool_max_size):  # whichever connection the pool hands out next
        with postgres.connection() as conn:
            assert conn.execute("SHOW statement_timeout").fetchone()[0] == "0"
            assert conn.execute("SHOW lock_timeout").fetchone()[0] == "0"


def test_every_read_statement_is_bounded(organization_id: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each route's queries ask for a bounded connection (the stats and histogram counts included)."""
    bounds: list[float | None] = []
    real = postgres.connection

    def recorded(statement_timeout: float | None = None):
        bounds.append(statement_timeout)
        return real(statement_timeout)

    event = store(make_event(organization_id, 5, message="bounded words"))[0]
    monkeypatch.setattr(postgres, "connection", recorded)
    window = queries.EventFilter(text="words")
    bound = queries.Bounds(1.5, 1_000_000)
    queries.find_events(organization_id, window, 10, None, bound)
    queries.find_events_after(organization_id, "api", (event.timestamp, event.id), 10, bound)
    queries.find_event(organization_id, event.id, 1.5)
    queries.count_events(organization_id, event.timestamp, datetime.now(UTC), 1.5, 10)
    queries.count_buckets(organization_id, window, timedelta(minutes=1), datetime(1970, 1, 1, tzinfo=UTC), 1.5)

    assert len(bounds) >= 5 and all(0 < bound <= 1.5 for bound in bounds), bounds


def lambda_response_bytes(function, request: dict, context) -> tuple[int, dict]:
    """The size of the function's answer as Lambda would send it, and its body."""
    response = function.handler(request, context)
    return len(json.dumps(response).encode()), json.loads(response["body"])


def test_a_page_of_wide_events_fits_in_a_lambda_response_and_its_cursor_continues(
    api_request, gateway_function, lambda_context, auth_headers, organization_id: str
) -> None:
    events = store(*(make_event(organization_id, 60 - i, message=WIDE_MESSAGE) for i in range(40)))
    headers = auth_headers(organization_id, "read")
    seen: list[str] = []
    query = {"limit": "1000"}
    pages = 0
    while True:
        size, body = lambda_response_bytes(
            gateway_function, api_request("GET", "/api/logs", headers, query), lambda_context
        )
        pages += 1
        assert size <= LAMBDA_RESPONSE_LIMIT, f"page {pages} is {size} bytes"
        assert body["items"], "a page that continues is never empty"
        seen += [item["id"] for item in body["items"]]
        if body["nextCursor"] is None:
            break
        query = {"limit": "1000", "cursor": body["nextCursor"]}

    assert pages > 1, "40 events of 32 KB of control characters take 9 MB as one answer"
    assert seen == [str(event.id) for event in reversed(events)], "every event once, newest first"


def test_an_event_context_of_wide_events_fits_in_a_lambda_response(
    api_request, gateway_function, lambda_context, auth_headers, organization_id: str
) -> None:
    events = store(*(make_event(organization_id, 60 - i, message=WIDE_MESSAGE) for i in range(41)))
    middle = events[20]
    request = api_request(
        "GET",
        f"/api/logs/{middle.id}/context",
        auth_headers(organization_id, "read"),
        {"before": "100", "after": "100"},
    )

    size, body = lambda_response_bytes(gateway_function, request, lambda_context)

    assert size <= LAMBDA_RESPONSE_LIMIT, f"{size} bytes"
    assert body["event"]["id"] == str(middle.id)
    assert 0 < len(body["before"]) < 20 and 0 < len(body["after"]) < 20, "cut, to the nearest events"
    assert body["before"][-1]["id"] == str(events[19].id) and body["after"][0]["id"] == str(events[21].id)


@pytest.fixture
def count_queries(monkeypatch: pytest.MonkeyPatch) -> list[tuple[datetime, datetime]]:
    windows: list[tuple[datetime, datetime]] = []
    real = queries.count_events

    def recorded(organization_id, since, until, *timeout):
        windows.append((since, until))
        return real(organization_id, since, until, *timeout)

    monkeypatch.setattr(queries, "count_events", recorded)
    return windows


def test_stats_windows_that_differ_by_less_than_their_step_share_one_count(
    organization_id: str, count_queries: list
) -> None:
    settings = get_settings()
    until = datetime(2026, 11, 27, 10, 0, 0, 123456, tzinfo=UTC)
    store(make_event(organization_id, 0, timestamp=until - timedelta(hours=1)))

    answers = [
        stats.get_stats(organization_id, until - timedelta(hours=24, microseconds=shift), until, settings)
        for shift in range(0, 50_000, 1_000)
    ]

    assert len(count_queries) == 1, "one count for fifty windows a microsecond apart"
    assert {(answer.from_, answer.to, answer.total) for answer in answers} == {
        (datetime(2026, 11, 26, 10, 0, tzinfo=UTC), datetime(2026, 11, 27, 10, 5, tzinfo=UTC), 1)
    }, "rounded outward to 5 minutes, a thousandth of a day rounded to a step"
    assert cache.client().hlen(f"stats:{organization_id}") == 1


def test_the_cached_answers_of_an_organization_are_bounded_in_number(organization_id: str) -> None:
    settings = get_settings()
    until = datetime(2026, 11, 27, 10, tzinfo=UTC)

    for minutes in range(answer_cache.MAX_ANSWERS + 10):
        stats.get_stats(organization_id, until - timedelta(hours=1, minutes=minutes), until, settings)
        assert cache.client().hlen(f"stats:{organization_id}") <= answer_cache.MAX_ANSWERS

    assert cache.client().ttl(f"stats:{organization_id}") <= settings.stats_cache_seconds


@pytest.mark.parametrize("path", ["/api/stats", "/api/logs/histogram"])
def test_a_count_past_its_own_bound_is_422(read, gateway_settings, locked_partition: dict[str, str], path: str) -> None:
    """Stats and histograms have the count bound (longer than the search's): past it, they answer like a search."""
    gateway_settings(read_query_timeout_seconds=10, read_count_timeout_seconds=0.3, dependency_timeout_seconds=10)

    status, _, body = read(path, **locked_partition)

    assert (status, body["error"]["code"]) == (422, "query_timeout"), body
    assert body["error"]["details"] == {"boundSeconds": 0.3}


def test_the_functions_session_bound_stops_any_statement(monkeypatch: pytest.MonkeyPatch) -> None:
    """DATABASE_STATEMENT_TIMEOUT_SECONDS (the gateway's, in template.yaml) bounds statements that set none."""
    monkeypatch.setenv("DATABASE_STATEMENT_TIMEOUT_SECONDS", "0.2")
    get_settings.cache_clear()
    postgres._pool.cache_clear()
    try:
        with pytest.raises(DependencyUnavailableError), postgres.connection() as conn:
            conn.execute("SELECT pg_sleep(2)")
    finally:
        postgres._pool().close()
        monkeypatch.undo()
        get_settings.cache_clear()
        postgres._pool.cache_clear()


def test_histogram_windows_within_one_bucket_share_one_count(
    organization_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The log explorer asks for "the last hour" to the millisecond: each refresh within a bucket is one question."""
    counted: list[queries.EventFilter] = []
    real = queries.count_buckets

    def recorded(organization_id, event_filter, *rest):
        counted.append(event_filter)
        return real(organization_id, event_filter, *rest)

    monkeypatch.setattr(queries, "count_buckets", recorded)
    now = datetime(2026, 11, 27, 10, 0, 0, 100_000, tzinfo=UTC)
    store(make_event(organization_id, 0, timestamp=now - timedelta(minutes=30)))

    answers = [
        histogram.get_histogram(
            organization_id, queries.EventFilter(since=moment - timedelta(hours=1), until=moment), 60, get_settings()
        )
        for moment in (now + timedelta(milliseconds=shift) for shift in range(0, 50_000, 5_000))
    ]

    assert len(counted) == 1, "one count for ten refreshes within the minute"
    assert {(answer.from_, answer.to, answer.bucket_seconds) for answer in answers} == {
        (datetime(2026, 11, 27, 9, 0, tzinfo=UTC), datetime(2026, 11, 27, 10, 1, tzinfo=UTC), 60)
    }
    assert sum(sum(bucket.counts.values()) for bucket in answers[0].buckets) == 1


def test_stats_list_the_sources_with_the_most_events_only(
    organization_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(stats, "MAX_SOURCES", 2)
    store(*(make_event(organization_id, 10, source=source) for source in ["a", "b", "b", "c", "c", "c", "d"]))

    answer = stats.get_stats(organization_id, None, None, get_settings())

    assert (answer.total, answer.by_source) == (7, {"c": 3, "b": 2})
