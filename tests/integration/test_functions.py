"""The three handlers invoked in-process against the real services (the runner is exercised in tests/e2e)."""

import base64
import json
import uuid

import psycopg


def test_producer_publishes_an_acknowledged_event(
    settings, producer_function, sample_event, lambda_context, tail, organization_id: str
) -> None:
    event = sample_event("producer_post_log")
    event["body"] = json.dumps({**json.loads(event["body"]), "organizationId": organization_id})
    events_topic = tail(settings.kafka_topic)

    response = producer_function.handler(event, lambda_context)

    assert response["statusCode"] == 202, response
    event_id = json.loads(response["body"])["id"]
    message = events_topic.wait_for(lambda m: m.key() == organization_id.encode())
    assert message is not None
    assert json.loads(message.value())["id"] == event_id


def msk_event_for(sample_event, organization_id: str, name: str = "consumer_msk_batch") -> tuple[dict, list[str]]:
    """A sample MSK batch rewritten to a fresh tenant and fresh event ids."""
    event = sample_event(name)
    ids: list[str] = []
    for record in event["records"]["log-events-0"]:
        try:
            value = json.loads(base64.b64decode(record.get("value", "")))  # a tombstone has no value
        except ValueError:
            continue
        if "id" in value:
            value = {**value, "id": str(uuid.uuid4()), "organizationId": organization_id}
            ids.append(value["id"])
            record["value"] = base64.b64encode(json.dumps(value).encode()).decode()
    return event, ids


def test_consumer_stores_a_batch_once_even_when_redelivered(
    settings, consumer_function, sample_event, lambda_context, pg: psycopg.Connection, organization_id: str
) -> None:
    event, ids = msk_event_for(sample_event, organization_id)

    first = consumer_function.handler(event, lambda_context)
    again = consumer_function.handler(event, lambda_context)

    assert (first["stored"], again["stored"], again["duplicates"]) == (2, 0, 2)
    stored = pg.execute(
        "SELECT id::text, level, message FROM log_events WHERE organization_id = %s ORDER BY message",
        (organization_id,),
    ).fetchall()
    assert sorted(row[0] for row in stored) == sorted(ids)
    assert [row[1:] for row in stored] == [("ERROR", "Payment declined"), ("INFO", "User logged in")]


def test_consumer_dead_letters_poison_records_and_stores_the_rest(
    settings, consumer_function, sample_event, lambda_context, pg, tail, organization_id: str
) -> None:
    event, _ = msk_event_for(sample_event, organization_id, "consumer_msk_batch_with_poison")
    dlq = tail(settings.kafka_dlq_topic)

    result = consumer_function.handler(event, lambda_context)

    assert (result["stored"], result["dead_lettered"]) == (1, 3)
    assert pg.execute("SELECT count(*) FROM log_events WHERE organization_id = %s", (organization_id,)).fetchone() == (
        1,
    )
    letter = dlq.wait_for(lambda m: m.value() == b"{not json")
    assert letter is not None
    assert dict(letter.headers())["x-dlq-reason"] == b"undecodable"
