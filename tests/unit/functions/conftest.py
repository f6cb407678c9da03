import pytest

from logpipe.adapters import kafka
from logpipe.models import LogEvent


@pytest.fixture
def published(monkeypatch: pytest.MonkeyPatch) -> list[LogEvent]:
    """The events the producer publishes, as the consumer reads their Kafka records."""
    sent: list[LogEvent] = []
    monkeypatch.setattr(
        kafka, "publish_events", lambda records: sent.extend(LogEvent.model_validate_json(r.value) for r in records)
    )
    return sent
