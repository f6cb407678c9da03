"""The hostile inputs against the real Kafka, Redis and breaker: each gets its 4xx and no record reaches Kafka; the
hostile read parameters against the real PostgreSQL and Redis: each gets its 4xx naming the parameter."""

import json

from confluent_kafka import Consumer, TopicPartition

from tests.hostile_inputs import HOSTILE, HOSTILE_READS, SEED, fields_named


def end_offsets(settings) -> dict[int, int]:
    consumer = Consumer({"bootstrap.servers": settings.kafka_bootstrap_servers, "group.id": "it-watermarks"})
    try:
        topic = consumer.list_topics(settings.kafka_topic, timeout=10).topics[settings.kafka_topic]
        return {
            partition: consumer.get_watermark_offsets(TopicPartition(settings.kafka_topic, partition), timeout=10)[1]
            for partition in topic.partitions
        }
    finally:
        consumer.close()


def test_no_hostile_input_reaches_kafka(settings, producer_function, http_event, lambda_context, acme_headers) -> None:
    before = end_offsets(settings)

    answers = {
        case.name: producer_function.handler(
            http_event(case.body, case.path, {**case.headers, **acme_headers}), lambda_context
        )
        for case in HOSTILE
    }
    sentinel = producer_function.handler(
        http_event(SEED, headers=acme_headers), lambda_context
    )  # proves this count sees a publish

    after = end_offsets(settings)
    got = {
        name: (answer["statusCode"], json.loads(answer["body"])["error"]["code"]) for name, answer in answers.items()
    }
    assert got == {case.name: (case.status, case.code) for case in HOSTILE}
    assert sentinel["statusCode"] == 202
    assert sum(after.values()) - sum(before.values()) == 1


def test_every_hostile_read_gets_its_4xx_naming_the_parameter(read) -> None:
    answers = {case.name: read(case.path, **case.query) for case in HOSTILE_READS}

    got = {name: (status, body["error"]["code"]) for name, (status, _headers, body) in answers.items()}
    assert got == {case.name: (case.status, case.code) for case in HOSTILE_READS}
    for case in HOSTILE_READS:
        assert case.field in fields_named(answers[case.name][2]["error"]), case.name
