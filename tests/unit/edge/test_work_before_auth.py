"""An unauthenticated request costs next to nothing: its body is not inflated, parsed or validated before the key is
checked, and a key that cannot be one is refused without a lookup; a valid key from an address that others failed
from is accepted."""

import gzip
import json

import pytest

from logpipe.access import auth, ratelimit
from logpipe.access.ratelimit import Quota
from logpipe.config import get_settings
from logpipe.edge import body, powertools, resolver
from logpipe.errors import AuthenticationError, RateLimitedError

pytestmark = pytest.mark.unit

SEED = {"organizationId": "acme", "level": "INFO", "message": "User logged in", "source": "auth-service"}
WELL_FORMED_UNKNOWN_KEY = "lp_" + "x" * 43


@pytest.fixture
def body_work(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Records every inflate, parse and validation of a request body."""
    done: list[str] = []
    inflate, validate = body.gunzip, powertools.RouteRequestValidation._validated_body

    def recorded_inflate(data: bytes, limit: int) -> bytes:
        done.append("inflate")
        return inflate(data, limit)

    def recorded_validation(*args):
        done.append("validate")
        return validate(*args)

    monkeypatch.setattr(body, "gunzip", recorded_inflate)
    monkeypatch.setattr(powertools.RouteRequestValidation, "_validated_body", staticmethod(recorded_validation))
    return done


def status_of(producer_function, event: dict, lambda_context) -> int:
    return producer_function.handler(event, lambda_context)["statusCode"]


@pytest.mark.parametrize("key", ["", "lp_short", WELL_FORMED_UNKNOWN_KEY])
@pytest.mark.parametrize("path", ["/api/logs", "/api/logs/batch"])
def test_a_gzip_body_without_a_valid_key_is_neither_inflated_nor_validated(
    producer_function, http_event, lambda_context, body_work: list[str], path: str, key: str
) -> None:
    bomb = gzip.compress(b" " * (16 * 1024 * 1024))  # 16 MB once inflated, 16 KB as sent
    headers = {"content-encoding": "gzip", "authorization": f"Bearer {key}"}
    assert status_of(producer_function, http_event(bomb, path=path, headers=headers), lambda_context) == 401
    assert body_work == []


def test_a_json_body_without_a_valid_key_is_not_parsed(
    producer_function, http_event, lambda_context, body_work: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    parsed: list[str] = []
    monkeypatch.setattr(resolver, "loads", lambda text: parsed.append(text))  # the JSON body's parser
    event = http_event(SEED, headers={"authorization": f"Bearer {WELL_FORMED_UNKNOWN_KEY}"})
    assert status_of(producer_function, event, lambda_context) == 401
    assert (body_work, parsed) == ([], [])


def test_with_a_valid_key_the_body_is_inflated_and_validated(
    producer_function, http_event, lambda_context, body_work: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The control of the tests above: the recorders see the work when the key is valid."""
    monkeypatch.setattr("logpipe.adapters.kafka.publish_events", lambda events, **_: None)
    event = http_event(gzip.compress(json.dumps(SEED).encode()), headers={"content-encoding": "gzip"})
    assert status_of(producer_function, event, lambda_context) == 202
    assert body_work == ["inflate", "validate"]


def test_a_key_that_cannot_be_one_is_refused_without_a_lookup(monkeypatch: pytest.MonkeyPatch) -> None:
    looked_up: list[bytes] = []
    monkeypatch.setattr(auth, "_local_cache", {})
    monkeypatch.setattr(auth, "_lookup", lambda key_hash, settings: looked_up.append(key_hash))
    for key in ("lp_short", "lp_" + "x" * 44, "xx_" + "x" * 43, "lp_" + "x" * 42 + "=", "lp_" + "é" * 43):
        with pytest.raises(AuthenticationError):
            auth.authenticate(key, get_settings())
    assert looked_up == []
    with pytest.raises(AuthenticationError):
        auth.authenticate(WELL_FORMED_UNKNOWN_KEY, get_settings())
    assert looked_up == [auth.hash_key(WELL_FORMED_UNKNOWN_KEY)]


def test_a_valid_key_is_accepted_from_an_address_that_others_failed_from(
    auth_headers, monkeypatch: pytest.MonkeyPatch
) -> None:
    over_the_limit = Quota("auth-failures", False, 30, 60, 0, 60, 2)
    monkeypatch.setattr(ratelimit, "take_auth_failure_token", lambda address, settings: over_the_limit)
    monkeypatch.setattr(auth, "_blocked_addresses", {})
    settings, shared_address = get_settings(), "192.0.2.10"
    valid_key = auth_headers("acme", "ingest")["Authorization"].removeprefix("Bearer ")

    with pytest.raises(RateLimitedError):
        auth.authenticate_request(WELL_FORMED_UNKNOWN_KEY, shared_address, settings)
    assert auth.authenticate_request(valid_key, shared_address, settings).organization_id == "acme"
    with pytest.raises(RateLimitedError):  # the address stays blocked for its failures
        auth.authenticate_request(WELL_FORMED_UNKNOWN_KEY, shared_address, settings)
