import pytest

from logpipe.adapters import kafka
from logpipe.models import LogEvent


@pytest.fixture
def published(monkeypatch: pytest.MonkeyPatch) -> list[LogEvent]:
    """The events the producer publishes, as the consumer reads their Kafka records."""
    sent: list[LogEvent] = []

    def publish(records, **_options) -> None:
        sent.extend(LogEvent.model_validate_json(record.value) for record in records)

    monkeypatch.setattr(kafka, "publish_events", publish)
    return sent
