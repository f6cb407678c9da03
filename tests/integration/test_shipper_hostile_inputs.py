"""The shipper protocols' hostile inputs against the real Kafka: each gets its status and no record reaches Kafka."""

import json

import pytest

from tests.integration.test_hostile_inputs import end_offsets
from tests.shipper_hostile_inputs import SHIPPER_HOSTILE

pytestmark = pytest.mark.integration


def test_no_hostile_shipper_input_reaches_kafka(
    settings, producer_function, http_event, lambda_context, acme_headers
) -> None:
    before = end_offsets(settings)

    answers = {
        case.name: producer_function.handler(
            http_event(case.body, case.path, {**case.headers, **acme_headers}), lambda_context
        )
        for case in SHIPPER_HOSTILE
    }
    sentinel = producer_function.handler(
        http_event(
            b'{"create":{"_index":"x"}}\n{"message":"m"}\n',
            "/_bulk",
            {"content-type": "application/x-ndjson", **acme_headers},
        ),
        lambda_context,
    )

    after = end_offsets(settings)
    got = {name: _outcome(answer) for name, answer in answers.items()}
    assert got == {case.name: (case.status, case.item_status) for case in SHIPPER_HOSTILE}
    assert _outcome(sentinel) == (200, 201)
    assert sum(after.values()) - sum(before.values()) == 1


def _outcome(answer: dict) -> tuple[int, int | None]:
    """The status, and for a 200 _bulk answer the one status every item got."""
    if answer["statusCode"] != 200 or "items" not in (answer.get("body") or ""):
        return answer["statusCode"], None
    statuses = {next(iter(item.values()))["status"] for item in json.loads(answer["body"])["items"]}
    return 200, statuses.pop() if len(statuses) == 1 else None
