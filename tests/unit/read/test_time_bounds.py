"""The read routes' PostgreSQL time stays below the gateway's Lambda timeout, as template.yaml deploys it."""

from pathlib import Path

from local.lambda_runner.template import load_template
from logpipe.config import get_settings

REPO_ROOT = Path(__file__).resolve().parents[3]
# The most statements a read route runs one after the other, each under the read query bound: an event's context
# (the event, then the events before it and after it); a search shares one bound between its statements.
STATEMENTS_OF_THE_LONGEST_ROUTE = 3


def test_the_longest_read_route_ends_before_the_gateway_times_out() -> None:
    gateway = load_template(REPO_ROOT / "template.yaml").functions["GatewayFunction"]
    bounds = ("DATABASE_STATEMENT_TIMEOUT_SECONDS", "READ_QUERY_TIMEOUT_SECONDS", "READ_COUNT_TIMEOUT_SECONDS")
    settings = get_settings().model_copy(
        update={name.lower(): float(gateway.environment[name]) for name in bounds if name in gateway.environment}
    )

    assert settings.database_statement_timeout_seconds is not None, "every statement of the gateway is bounded"
    key_lookup = settings.database_statement_timeout_seconds  # before any route: the API key, under the session bound
    longest_route = max(
        STATEMENTS_OF_THE_LONGEST_ROUTE * settings.read_query_timeout_seconds, settings.read_count_timeout_seconds
    )
    assert key_lookup + longest_route < gateway.timeout_s, (key_lookup, longest_route, gateway.timeout_s)
