import pytest

from logpipe.sink import consume


def test_decodes_the_msk_event_and_stores_the_batch(
    consumer_function, sample_event, lambda_context, monkeypatch: pytest.MonkeyPatch
) -> None:
    stored: list = []
    monkeypatch.setattr(consume.storage, "store_events", lambda events: len(stored.extend(events) or stored))
    monkeypatch.setattr(consume.deadletter, "publish", lambda letters: None)

    result = consumer_function.handler(sample_event("consumer_msk_batch"), lambda_context)

    assert result == {"received": 2, "stored": 2, "duplicates": 0, "dead_lettered": 0, "batchItemFailures": []}
    assert [(event["level"], event["message"]) for event in stored] == [
        ("INFO", "User logged in"),
        ("ERROR", "Payment declined"),
    ]
