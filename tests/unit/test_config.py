from collections.abc import Iterator

import pytest

from logpipe.config import ConfigurationError, Settings, get_settings


@pytest.fixture
def environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    """Edit the environment, then read settings afresh; the cached settings are restored afterwards."""
    get_settings.cache_clear()
    yield monkeypatch
    monkeypatch.undo()
    get_settings.cache_clear()


def test_missing_variable_fails_fast_naming_it(environment: pytest.MonkeyPatch) -> None:
    environment.delenv("DATABASE_URL")
    with pytest.raises(ConfigurationError, match="DATABASE_URL"):
        get_settings()


def test_malformed_variable_fails_naming_it(environment: pytest.MonkeyPatch) -> None:
    environment.setenv("KAFKA_DELIVERY_TIMEOUT_MS", "soon")
    with pytest.raises(ConfigurationError, match="KAFKA_DELIVERY_TIMEOUT_MS"):
        get_settings()


def test_defaults_follow_the_kafka_contract() -> None:
    settings = Settings(kafka_bootstrap_servers="k:9092", database_url="postgresql://x", redis_url="redis://x")
    assert (settings.kafka_topic, settings.kafka_dlq_topic) == ("log-events", "log-events-dlq")
