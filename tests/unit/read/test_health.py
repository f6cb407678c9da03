import time

from logpipe.config import Settings
from logpipe.read import health
from logpipe.read.health import check_health

SETTINGS = Settings(
    kafka_bootstrap_servers="k:9092",
    database_url="postgresql://x",
    redis_url="redis://x",
    dependency_timeout_seconds=0.2,
)


def ok() -> None:
    return None


def broken() -> None:
    raise ConnectionError("db.internal.example:5432 connection refused")


def hangs() -> None:
    time.sleep(3)


def test_all_up() -> None:
    report = check_health(SETTINGS, {"postgresql": ok, "redis": ok, "kafka": ok})
    assert report.status == "up"
    assert {name: dep.status for name, dep in report.dependencies.items()} == {
        "postgresql": "up",
        "redis": "up",
        "kafka": "up",
    }


def test_one_failure_brings_the_whole_report_down_without_the_driver_message() -> None:
    report = check_health(SETTINGS, {"postgresql": ok, "redis": broken, "kafka": ok})
    assert report.status == "down"
    assert report.dependencies["redis"].status == "down"
    assert report.dependencies["redis"].error == "unreachable"
    assert "example" not in report.model_dump_json()
    assert report.dependencies["postgresql"].status == "up"


def test_a_hanging_dependency_is_reported_down_without_waiting_for_it() -> None:
    started = time.monotonic()
    report = check_health(SETTINGS, {"postgresql": ok, "redis": ok, "kafka": hangs})
    assert time.monotonic() - started < 1.5
    assert report.dependencies["kafka"].status == "down"
    assert report.dependencies["kafka"].error == "timeout"


def test_a_report_is_reused_within_the_cache_interval(monkeypatch) -> None:
    monkeypatch.setattr(health, "_last_report", None)
    calls: list[str] = []
    probes = {"postgresql": lambda: calls.append("probe")}
    settings = SETTINGS.model_copy(update={"health_cache_seconds": 60})

    first = health.cached_health(settings, probes)
    again = health.cached_health(settings, probes)
    monkeypatch.setattr(health, "_last_report", None)  # the interval is over
    health.cached_health(settings, probes)

    assert first is again
    assert calls == ["probe", "probe"]
