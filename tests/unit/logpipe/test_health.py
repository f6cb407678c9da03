import time

from logpipe.config import Settings
from logpipe.health import check_health

SETTINGS = Settings(
    kafka_bootstrap_servers="k:9092",
    database_url="postgresql://x",
    redis_url="redis://x",
    dependency_timeout_seconds=0.2,
)


def ok() -> None:
    return None


def broken() -> None:
    raise ConnectionError("connection refused")


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


def test_one_failure_brings_the_whole_report_down_and_says_why() -> None:
    report = check_health(SETTINGS, {"postgresql": ok, "redis": broken, "kafka": ok})
    assert report.status == "down"
    assert report.dependencies["redis"].status == "down"
    assert "connection refused" in report.dependencies["redis"].error
    assert report.dependencies["postgresql"].status == "up"


def test_a_hanging_dependency_is_reported_down_without_waiting_for_it() -> None:
    started = time.monotonic()
    report = check_health(SETTINGS, {"postgresql": ok, "redis": ok, "kafka": hangs})
    assert time.monotonic() - started < 1.5
    assert report.dependencies["kafka"].status == "down"
    assert "no answer" in report.dependencies["kafka"].error
