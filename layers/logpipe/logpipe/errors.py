"""Domain errors. Each carries its HTTP status and error code; logpipe.http maps them to responses."""

from typing import Any


class LogpipeError(Exception):
    status_code = 500
    code = "internal_error"
    # When set, the answer carries Retry-After: the client may repeat the same request later.
    retry_after_seconds: int | None = None

    def __init__(self, message: str, details: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


class InvalidEventError(LogpipeError):
    """The event is well-formed JSON but breaks a rule (limits, timestamps, levels)."""

    status_code = 422
    code = "invalid_event"


class PayloadTooLargeError(LogpipeError):
    status_code = 413
    code = "payload_too_large"


class IdempotencyConflictError(LogpipeError):
    """An idempotency key (or client event id) was reused for a different request."""

    status_code = 422
    code = "idempotency_key_reused"


class RequestInProgressError(LogpipeError):
    """The first request with this idempotency key has not finished yet; retry shortly."""

    status_code = 409
    code = "request_in_progress"
    retry_after_seconds = 1


class DependencyUnavailableError(LogpipeError):
    """A backing service (Kafka, PostgreSQL, Redis) failed or timed out; the client should retry."""

    status_code = 503
    code = "service_unavailable"

    def __init__(self, dependency: str, message: str, retry_after_seconds: int) -> None:
        super().__init__(message, details={"dependency": dependency})
        self.retry_after_seconds = retry_after_seconds


# Gateway: authentication, authorization, rate limits and the read API (docs/gateway.md).


class AuthenticationError(LogpipeError):
    """No API key, or a key that is unknown or revoked."""

    code = "unauthorized"


class PermissionDeniedError(LogpipeError):
    """The API key lacks the scope the route needs."""

    code = "forbidden"


class OrganizationMismatchError(LogpipeError):
    """The request names an organization other than the API key's."""

    code = "organization_mismatch"


class RateLimitedError(LogpipeError):
    """The organization (or, for failed authentications, the client address) used up its quota."""

    code = "rate_limited"

    def __init__(self, message: str, quota: Any) -> None:
        super().__init__(message, details={"policy": quota.policy})
        self.quota = quota  # a logpipe.ratelimit.Quota: what the answer's RateLimit fields report
        self.retry_after_seconds = quota.retry_after_seconds


class EventNotFoundError(LogpipeError):
    """No event (or API key) with this id in the caller's organization."""

    code = "not_found"


class InvalidQueryError(LogpipeError):
    """A read-API parameter (cursor, time range) cannot be used."""

    code = "invalid_query"
