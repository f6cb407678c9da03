import pytest

from logpipe.config import ConfigurationError, Settings, get_settings


def test_missing_variable_fails_fast_naming_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DATABASE_URL")
    get_settings.cache_clear()
    try:
        with pytest.raises(ConfigurationError, match="DATABASE_URL"):
            get_settings()
    finally:
        monkeypatch.undo()
        get_settings.cache_clear()


def test_malformed_variable_fails_naming_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA_DELIVERY_TIMEOUT_MS", "soon")
    get_settings.cache_clear()
    try:
        with pytest.raises(ConfigurationError, match="KAFKA_DELIVERY_TIMEOUT_MS"):
            get_settings()
    finally:
        monkeypatch.undo()
        get_settings.cache_clear()


def test_defaults_follow_the_kafka_contract() -> None:
    settings = Settings(kafka_bootstrap_servers="k:9092", database_url="postgresql://x", redis_url="redis://x")
    assert (settings.kafka_topic, settings.kafka_dlq_topic) == ("log-events", "log-events-dlq")
