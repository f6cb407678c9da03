"""Every hostile input of tests/hostile_inputs.py through the producer's handler: its exact 4xx, nothing published."""

import json

import pytest

from logpipe.adapters import kafka
from tests.hostile_inputs import HOSTILE, Hostile


def test_the_table_is_large_and_every_case_is_distinct() -> None:
    assert len(HOSTILE) >= 40
    assert len({case.name for case in HOSTILE}) == len(HOSTILE)


@pytest.mark.parametrize("case", HOSTILE, ids=lambda case: case.name)
def test_hostile_input_gets_its_4xx_and_nothing_is_published(
    case: Hostile, producer_function, http_event, lambda_context, monkeypatch: pytest.MonkeyPatch
) -> None:
    published: list = []
    monkeypatch.setattr(kafka, "publish_events", published.extend)

    response = producer_function.handler(http_event(case.body, case.path, case.headers), lambda_context)

    body = json.loads(response["body"])
    assert (response["statusCode"], body["error"]["code"]) == (case.status, case.code), body
    assert body["status"] == "error"
    assert published == []
