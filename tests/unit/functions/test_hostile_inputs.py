"""Every hostile input of tests/hostile_inputs.py through its handler: the producer's, its exact 4xx and nothing
published; the gateway's, its exact 4xx naming the parameter and no query run."""

import json

import pytest

from logpipe.access import key_store
from logpipe.adapters import kafka
from logpipe.read import queries
from logpipe.read.answer_cache import AnswerCache
from tests.hostile_inputs import HOSTILE, HOSTILE_READS, Hostile, HostileRead, fields_named


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


def test_the_read_table_is_distinct() -> None:
    assert len({case.name for case in HOSTILE_READS}) == len(HOSTILE_READS)


@pytest.mark.parametrize("case", HOSTILE_READS, ids=lambda case: case.name)
def test_hostile_read_gets_its_4xx_naming_the_parameter_and_runs_no_query(
    case: HostileRead, gateway_function, api_request, auth_headers, lambda_context, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_query(*_args, **_kwargs):
        raise AssertionError("a refused request reached PostgreSQL")

    for name in ("find_events", "find_events_after", "find_event", "count_events", "count_buckets"):
        monkeypatch.setattr(queries, name, no_query)
    monkeypatch.setattr(key_store, "list_keys", no_query)
    monkeypatch.setattr(AnswerCache, "get", lambda _cache, _org, _field, compute, _max_age: compute())  # no Redis

    request = api_request("GET", case.path, headers=auth_headers("acme", "read,admin"), query=case.query or None)
    response = gateway_function.handler(request, lambda_context)

    error = json.loads(response["body"])["error"]
    assert (response["statusCode"], error["code"]) == (case.status, case.code), error
    assert case.field in fields_named(error), error
