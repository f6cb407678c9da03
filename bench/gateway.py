"""Gateway benchmark: the CPU auth + rate limiting add per request, and read-API latency over millions of rows.

1. The same single-event route is resolved with and without the auth + rate-limit middleware (Kafka stubbed
   out: it is not what is measured); the figure is the difference in this process's CPU time per request, plus
   the Redis server's CPU per request (INFO cpu) for the one script call.
2. `--rows` events (default 5,000,000) over 10 organizations and 10 days are loaded with SQL (generate_series
   into detached day partitions, attached afterwards so their indexes are built once), then the read logic is
   timed: newest 100 of one organization at one level, full-text searches, and cached stats (requests spread
   over 2.5 times the cache bound, with the count of those that computed their answer themselves).
3. The log explorer's first answers (issue 17), over the newest day of the loaded rows (they lie in January 2025,
   so the 24 hours before now hold none of them): the first page (newest 100, no filter) and the 60-bucket
   histogram, computed (its cached answer dropped before each call) and cached, against 200 ms at p99.

Prints one JSON object of named figures on its last stdout line; progress goes to stderr. `--quick`: fewer rows
and requests. Needs the services' environment (`eval "$(make -s env)"`).
"""

import argparse
import itertools
import json
import os
import random
import statistics
import sys
import threading
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Annotated

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "layers" / "logpipe"), str(ROOT)]
os.environ.setdefault("POWERTOOLS_SERVICE_NAME", "bench")
os.environ.setdefault("POWERTOOLS_TRACE_DISABLED", "true")
os.environ.setdefault("POWERTOOLS_IDEMPOTENCY_DISABLED", "true")
os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")
# The CPU figure is for admitted requests: the bench organization's bucket never runs dry.
os.environ["RATE_LIMIT_OVERRIDES"] = json.dumps({"bench-cpu": {"rate": 1e9, "burst": 10**9}})

import psycopg  # noqa: E402
from aws_lambda_powertools.event_handler.openapi.params import Body  # noqa: E402

from logpipe.access import keys  # noqa: E402
from logpipe.access.models import Scope  # noqa: E402
from logpipe.adapters import cache  # noqa: E402
from logpipe.config import get_settings  # noqa: E402
from logpipe.edge.answers import json_response  # noqa: E402
from logpipe.edge.middleware import authorized  # noqa: E402
from logpipe.edge.resolver import create_resolver  # noqa: E402
from logpipe.models import Level, LogEventIn  # noqa: E402
from logpipe.read import histogram, queries, search, stats  # noqa: E402
from logpipe.read.queries import EventFilter  # noqa: E402

ORGANIZATIONS = [f"bench-{n}" for n in range(10)]
FIRST_DAY = date(2025, 1, 1)
DAYS = 10
WORDS = [
    "payment", "login", "logout", "checkout", "timeout", "refund", "invoice", "session", "token", "upload",
    "download", "cache", "queue", "retry", "deploy", "rollback", "shipment", "inventory", "search", "profile",
]  # fmt: skip
SOURCES = [f"service-{n}" for n in range(20)]


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return round(ordered[min(len(ordered) - 1, int(fraction * len(ordered)))], 3)


# 1. CPU of auth + rate limiting per request --------------------------------------------------------------------


def _resolver(with_middleware: bool):
    app = create_resolver(get_settings().max_body_bytes)
    middlewares = [authorized(Scope.INGEST)] if with_middleware else []

    @app.post("/api/logs", middlewares=middlewares)
    def post_log(event: Annotated[LogEventIn, Body()]):
        return json_response(202, {"status": "success", "id": str(uuid.uuid4())})

    return app


def _request(key: str) -> dict:
    """The producer's sample event (events/producer_post_log.json) for the bench organization, with the key."""
    event = json.loads((ROOT / "events" / "producer_post_log.json").read_text())
    event["body"] = json.dumps({**json.loads(event["body"]), "organizationId": "bench-cpu"})
    event["headers"]["authorization"] = f"Bearer {key}"
    return event


def _cpu_per_request(app, event: dict, requests: int) -> float:
    for _ in range(200):  # warm: caches, the script loaded in Redis, pydantic's first validations
        assert app.resolve(event, None)["statusCode"] == 202
    started = time.process_time()
    for _ in range(requests):
        app.resolve(event, None)
    elapsed = time.process_time() - started
    assert app.resolve(event, None)["statusCode"] == 202
    return elapsed / requests * 1000


def _redis_cpu_seconds() -> float:
    info = cache.client().info("cpu")
    return info["used_cpu_user"] + info["used_cpu_sys"]


def measure_middleware_cost(requests: int) -> dict:
    key = keys.create_key("bench-cpu", [Scope.INGEST], "bench").key
    event = _request(key)
    bare, guarded = _resolver(False), _resolver(True)
    samples_bare, samples_guarded = [], []
    redis_before = _redis_cpu_seconds()
    for _ in range(5):  # interleaved rounds: the machine's noise hits both alike
        samples_bare.append(_cpu_per_request(bare, event, requests // 5))
        samples_guarded.append(_cpu_per_request(guarded, event, requests // 5))
    redis_ms = (_redis_cpu_seconds() - redis_before) / (requests + 1000) * 1000
    without, with_ = statistics.median(samples_bare), statistics.median(samples_guarded)
    return {
        "request_cpu_ms_without_auth": round(without, 4),
        "request_cpu_ms_with_auth": round(with_, 4),
        "auth_ratelimit_cpu_ms_per_request": round(with_ - without, 4),
        "redis_server_cpu_ms_per_request": round(redis_ms, 4),
        "auth_ratelimit_total_cpu_ms_per_request": round(with_ - without + redis_ms, 4),
    }


# 2. Read API over many rows ------------------------------------------------------------------------------------


def _partition(day: date) -> str:
    return f"log_events_{day:%Y%m%d}"


def load_rows(conn: psycopg.Connection, rows: int) -> float:
    """Load `rows` events unless exactly that many are there; returns the seconds it took (0 when reused)."""
    present = conn.execute(
        "SELECT count(*) FROM log_events WHERE occurred_at >= %s AND occurred_at < %s",
        (FIRST_DAY, FIRST_DAY + timedelta(days=DAYS)),
    ).fetchone()[0]
    if present == rows:
        log(f"reusing {rows} bench rows")
        return 0.0
    started = time.monotonic()
    per_day = rows // DAYS
    for offset in range(DAYS):
        day = FIRST_DAY + timedelta(days=offset)
        name = _partition(day)
        conn.execute(f"DROP TABLE IF EXISTS {name}")
        like = "LIKE log_events INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING GENERATED"
        conn.execute(f"CREATE TABLE {name} ({like})")
        conn.execute(
            f"""
            INSERT INTO {name} (id, organization_id, occurred_at, level, message, source, attributes, received_at)
            SELECT gen_random_uuid(),
                   'bench-' || (i %% 10),
                   %(day)s::timestamptz + (i * interval '86400 second' / %(n)s),
                   CASE WHEN b < 60 THEN 'INFO' WHEN b < 80 THEN 'DEBUG' WHEN b < 90 THEN 'WARN'
                        WHEN b < 98 THEN 'ERROR' WHEN b < 99 THEN 'FATAL' ELSE 'TRACE' END,
                   (%(words)s::text[])[1 + (i / 7) %% 20] || ' ' || (%(words)s::text[])[1 + (i / 3) %% 20]
                       || ' request ' || i || ' took ' || (i %% 997) || ' ms',
                   'service-' || (i / 11) %% 20,
                   '{{}}'::jsonb,
                   %(day)s::timestamptz + (i * interval '86400 second' / %(n)s)
            FROM generate_series(0, %(n)s - 1) AS i, LATERAL (SELECT (i / 10) %% 100 AS b) AS level_bucket
            """,
            {"day": day, "n": per_day, "words": WORDS},
        )
        bounds = f"FROM ('{day} 00:00:00+00') TO ('{day + timedelta(days=1)} 00:00:00+00')"
        conn.execute(f"ALTER TABLE log_events ATTACH PARTITION {name} FOR VALUES {bounds}")
        log(f"loaded {name}: {per_day} rows ({time.monotonic() - started:.0f} s)")
    conn.execute("ANALYZE log_events")
    return round(time.monotonic() - started, 1)


def _timed(calls: int, query) -> dict[str, float]:
    samples = []
    for _ in range(calls):
        started = time.perf_counter()
        query()
        samples.append((time.perf_counter() - started) * 1000)
    return {"p50_ms": percentile(samples, 0.5), "p99_ms": percentile(samples, 0.99)}


def measure_reads(calls: int) -> dict:
    rng = random.Random(7)
    end = datetime.combine(FIRST_DAY + timedelta(days=DAYS), datetime.min.time(), UTC)

    def newest_at_level() -> None:
        level = rng.choice([Level.ERROR, Level.WARN, Level.FATAL])
        page = search.list_events(rng.choice(ORGANIZATIONS), EventFilter(levels=[level]), 100, None, get_settings())
        assert len(page.items) == 100

    def text_search() -> None:
        text = rng.choice([rng.choice(WORDS), f"{rng.choice(WORDS)} {rng.choice(WORDS)}", str(rng.randrange(10**5))])
        search.list_events(rng.choice(ORGANIZATIONS), EventFilter(text=text), 100, None, get_settings())

    return {
        "newest_100_with_level": _timed(calls, newest_at_level),
        "text_search_100": _timed(calls, text_search),
        "stats_cached": measure_cached_stats(calls, end, rng),
    }


def measure_cached_stats(calls: int, end: datetime, rng: random.Random) -> dict:
    """Stats of 30 windows in use (10 organizations x 3 days), each asked for every 30 requests, the requests
    spread over 2.5 times the cache bound: answers cross their refresh point, and would cross their expiry without
    it. The figures say how many requests computed their answer themselves and how many refreshes ran beside them."""
    settings = get_settings()
    pairs = [
        (org, (end - timedelta(days=day + 1), end - timedelta(days=day))) for org in ORGANIZATIONS for day in range(3)
    ]
    computed_by: list[str] = []
    count_events = queries.count_events

    def recorded(*args, **kwargs):
        computed_by.append(threading.current_thread().name)
        return count_events(*args, **kwargs)

    queries.count_events = recorded
    for _ in range(2):  # fill, then ask once more: the fill alone may take longer than the bound
        for organization, window in pairs:
            stats.get_stats(organization, *window, settings)
    filled = len(computed_by)
    order = [pair for _ in range(calls // len(pairs) + 1) for pair in rng.sample(pairs, len(pairs))][:calls]
    interval = 2.5 * settings.stats_cache_seconds / calls
    samples, started = [], time.monotonic()
    for number, (organization, window) in enumerate(order):
        time.sleep(max(0.0, started + number * interval - time.monotonic()))
        began = time.perf_counter()
        assert stats.get_stats(organization, *window, settings).total > 0
        samples.append((time.perf_counter() - began) * 1000)
    queries.count_events = count_events
    during = computed_by[filled:]
    on_request = sum(name == threading.current_thread().name for name in during)
    return {
        "p50_ms": percentile(samples, 0.5),
        "p99_ms": percentile(samples, 0.99),
        "requests": calls,
        "seconds": round(time.monotonic() - started, 1),
        "recomputed_on_request": on_request,
        "refreshed_in_background": len(during) - on_request,
    }


EXPLORER_TARGET_MS = 200  # issue 17: the first page and the last 24 h's histogram each answer p99 <= 200 ms
EXPLORER_BUCKETS = 60  # what the explorer page asks for (functions/gateway/explore/explorer.js, BUCKETS)


def _against_target(figures: dict[str, float]) -> dict:
    return {**figures, "target": f"p99 <= {EXPLORER_TARGET_MS} ms", "met": figures["p99_ms"] <= EXPLORER_TARGET_MS}


def measure_explorer(page_calls: int, histogram_calls: int) -> dict:
    """What the explorer asks first for its default range (24 h, no filter), each organization in turn: the newest
    100 events and the histogram. The window is the newest day of the loaded rows, the 24 h that hold the most of
    them (every loaded day holds as many); `rows_counted` is what each histogram counted."""
    settings = get_settings()
    until = datetime.combine(FIRST_DAY + timedelta(days=DAYS), datetime.min.time(), UTC)
    window = EventFilter(since=until - histogram.DEFAULT_WINDOW, until=until)
    organizations = itertools.cycle(ORGANIZATIONS)
    counted: set[int] = set()
    bucket_widths: set[int] = set()

    def first_page() -> None:
        assert len(search.list_events(next(organizations), window, 100, None, settings).items) == 100

    def ask_histogram(drop_cached: bool) -> None:
        organization = next(organizations)
        if drop_cached:  # the answer is computed on this call, as for a window nobody asked for within the bound
            histogram._cache.invalidate(organization)
        answer = histogram.get_histogram(organization, window, EXPLORER_BUCKETS, settings)
        counted.add(sum(sum(bucket.counts.values()) for bucket in answer.buckets))
        bucket_widths.add(answer.bucket_seconds)

    computed = _timed(histogram_calls, lambda: ask_histogram(drop_cached=True))
    for organization in ORGANIZATIONS:  # every organization's answer fresh (well inside the bound) for the cached run
        histogram._cache.invalidate(organization)
        ask_histogram(drop_cached=False)
    cached = _timed(histogram_calls, lambda: ask_histogram(drop_cached=False))
    return {
        "window": {"from": window.since.isoformat(), "to": window.until.isoformat()},
        "first_page_100": {**_against_target(_timed(page_calls, first_page)), "calls": page_calls},
        "histogram_computed": {**_against_target(computed), "calls": histogram_calls},
        "histogram_cached": {**_against_target(cached), "calls": histogram_calls},
        "histogram_buckets": {"asked": EXPLORER_BUCKETS, "bucket_seconds": sorted(bucket_widths)},
        "histogram_rows_counted": sorted(counted),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a short smoke run")
    parser.add_argument("--rows", type=int, help="events to load (default 5,000,000; --quick 200,000)")
    args = parser.parse_args()
    rows = args.rows or (200_000 if args.quick else 5_000_000)
    settings = get_settings()

    log("measuring the CPU of auth + rate limiting")
    figures: dict = measure_middleware_cost(2_000 if args.quick else 20_000)
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        figures["rows"] = rows
        figures["load_seconds"] = load_rows(conn, rows)
    log("timing the read API")
    figures.update(measure_reads(50 if args.quick else 300))
    log("timing the explorer's first page and histogram")
    figures["explorer_24h"] = measure_explorer(20 if args.quick else 200, 10 if args.quick else 50)
    figures["load_average_1m"] = round(os.getloadavg()[0], 1)  # latencies are wall-clock on a shared machine
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
