"""Pure parts of the gateway: how a key is presented, the cursor, the RateLimit fields, scopes."""

import uuid
from datetime import UTC, datetime

import pytest

from logpipe.access import auth
from logpipe.access.models import Scope
from logpipe.access.ratelimit import Quota
from logpipe.edge.answers import rate_limit_headers
from logpipe.edge.middleware import _presented_key
from logpipe.encoding import decode_cursor, encode_cursor
from logpipe.errors import InvalidQueryError, PermissionDeniedError
from logpipe.models import Level, LogEvent


@pytest.mark.parametrize(
    ("headers", "key"),
    [
        ({"authorization": "Bearer lp_abc"}, "lp_abc"),
        ({"authorization": "bearer   lp_abc "}, "lp_abc"),
        ({"x-api-key": "lp_xyz"}, "lp_xyz"),
        ({"authorization": "Basic bG9raTpscF9iYXNpYw=="}, "lp_basic"),  # HTTP Basic: the key is the password
        ({"authorization": "Basic bHBfYWxvbmU="}, "lp_alone"),
        ({"authorization": "Basic !!!", "x-api-key": "lp_xyz"}, "lp_xyz"),  # not base64: no key from it
        ({"authorization": "ApiKey lp_raw"}, "lp_raw"),  # Elasticsearch clients: the key as given
        ({"authorization": "ApiKey c29tZS1pZDpscF9lcw=="}, "lp_es"),  # or base64 of id:key
        ({"authorization": "Digest abc", "x-api-key": "lp_xyz"}, "lp_xyz"),
        ({"authorization": "Bearer "}, None),
        ({}, None),
    ],
)
def test_a_key_is_taken_as_clients_and_shippers_send_it(headers: dict, key: str | None) -> None:
    assert _presented_key({"headers": headers}) == key


def test_a_cursor_round_trips_and_a_forged_one_is_refused() -> None:
    now = datetime(2026, 11, 28, 9, 0, 0, 123456, tzinfo=UTC)
    event = LogEvent(
        id=uuid.uuid4(),
        organization_id="acme",
        level=Level.INFO,
        message="m",
        source="s",
        timestamp=now,
        received_at=now,
    )
    assert decode_cursor(encode_cursor((event.timestamp, event.id))) == (now, event.id)
    for forged in ("not-a-cursor", "W10", "eyJhIjoxfQ"):  # garbage, [], {"a":1}
        with pytest.raises(InvalidQueryError):
            decode_cursor(forged)


def test_ratelimit_fields_follow_the_ietf_draft_syntax() -> None:
    quota = Quota("org", True, limit=100, window_seconds=10, remaining=42, reset_seconds=6, retry_after_seconds=0)
    assert rate_limit_headers(quota) == {"RateLimit-Policy": '"org";q=100;w=10', "RateLimit": '"org";r=42;t=6'}


def test_a_missing_scope_is_refused_naming_it() -> None:
    principal = auth.Principal("k", "acme", frozenset({"read"}))
    auth.require_scope(principal, Scope.READ)
    with pytest.raises(PermissionDeniedError) as refused:
        auth.require_scope(principal, Scope.ADMIN)
    assert refused.value.details == {"scope": "admin"}
