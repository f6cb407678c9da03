import pytest


@pytest.fixture(autouse=True)
def no_idempotency_store(monkeypatch: pytest.MonkeyPatch) -> None:
    """Unit tests have no Redis; Powertools skips idempotency records when this is set."""
    monkeypatch.setenv("POWERTOOLS_IDEMPOTENCY_DISABLED", "true")
