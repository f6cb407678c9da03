"""Batch ingest against the real Kafka and Redis: partial success, one publish, idempotent batches."""

import json

from logpipe.adapters import kafka


def post_batch(producer_function, http_event, lambda_context, body, headers: dict[str, str] | None = None):
    response = producer_function.handler(http_event(body, "/api/logs/batch", headers), lambda_context)
    return response["statusCode"], json.loads(response["body"])


def records_of(events_topic, organization_id: str, count: int) -> list[dict]:
    values: list[dict] = []

    def collect(message) -> bool:
        if message.key() == organization_id.encode():
            values.append(json.loads(message.value()))
        return len(values) == count

    assert events_topic.wait_for(collect) is not None, f"only {len(values)} of {count} records arrived"
    return values


def test_a_partly_invalid_batch_publishes_every_valid_event_in_one_wait(
    settings, producer_function, http_event, lambda_context, tail, organization_id: str, monkeypatch
) -> None:
    events_topic = tail(settings.kafka_topic)
    waits: list[int] = []
    real_publish = kafka.publish_events

    def counted(events, **options) -> None:
        waits.append(len(events))
        real_publish(events, **options)

    monkeypatch.setattr(kafka, "publish_events", counted)
    good = {"organizationId": organization_id, "level": "INFO", "source": "svc"}
    items = [{**good, "message": f"m{index}"} for index in range(300)]
    items[7] = {**good, "message": "bad", "level": "LOUD"}
    items[150] = {**good, "message": "x", "attributes": {"n": 10**30}}

    status, answer = post_batch(producer_function, http_event, lambda_context, items)

    assert (status, answer["accepted"], answer["rejected"]) == (207, 298, 2)
    assert [item["index"] for item in answer["items"] if item["status"] == "rejected"] == [7, 150]
    assert waits == [298]
    stored = records_of(events_topic, organization_id, 298)
    accepted_ids = {item["id"] for item in answer["items"] if item["status"] == "accepted"}
    assert {record["id"] for record in stored} == accepted_ids


def test_a_retried_batch_with_an_idempotency_key_gets_the_same_answer_and_publishes_once(
    settings, producer_function, http_event, lambda_context, organization_id: str, monkeypatch
) -> None:
    published: list[int] = []
    real_publish = kafka.publish_events

    def counted(events, **options) -> None:
        published.append(len(events))
        real_publish(events, **options)

    monkeypatch.setattr(kafka, "publish_events", counted)
    items = [{"organizationId": organization_id, "level": "WARN", "message": f"m{i}", "source": "s"} for i in range(5)]
    key = {"idempotency-key": f"batch-{organization_id}"}

    first = post_batch(producer_function, http_event, lambda_context, items, key)
    retry = post_batch(producer_function, http_event, lambda_context, items, key)
    other = post_batch(producer_function, http_event, lambda_context, items[:4], key)

    assert first == retry
    assert first[0] == 202 and published == [5]
    assert (other[0], other[1]["error"]["code"]) == (422, "idempotency_key_reused")
