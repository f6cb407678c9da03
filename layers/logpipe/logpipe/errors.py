"""Domain errors: a code, a message, details and an optional Retry-After. They know nothing of HTTP;
logpipe.edge.answers maps each class to its status."""

from typing import Any


class LogpipeError(Exception):
    code = "internal_error"
    # When set, the client may repeat the same request after this many seconds.
    retry_after_seconds: int | None = None

    def __init__(self, message: str, details: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


class MalformedRequestError(LogpipeError):
    """The body cannot be read at all: not the declared encoding, not UTF-8, not JSON."""

    code = "malformed_request"

    def __init__(self, code: str, message: str, details: Any = None) -> None:
        super().__init__(message, details)
        self.code = code


class UnsupportedEncodingError(LogpipeError):
    """A Content-Encoding other than gzip or identity."""

    code = "unsupported_content_encoding"


class UnsupportedMediaTypeError(LogpipeError):
    """A Content-Type the route does not read."""

    code = "unsupported_media_type"


class InvalidEventError(LogpipeError):
    """The event is well-formed JSON but breaks a rule (limits, timestamps, levels, characters)."""

    code = "invalid_event"


class PayloadTooLargeError(LogpipeError):
    code = "payload_too_large"


class OrganizationMismatchError(LogpipeError):
    """The event names another organization than the caller's."""

    code = "organization_mismatch"


class IdempotencyConflictError(LogpipeError):
    """An idempotency key (or client event id) was reused for a different request."""

    code = "idempotency_key_reused"


class RequestInProgressError(LogpipeError):
    """The first request with this idempotency key has not finished yet; retry shortly."""

    code = "request_in_progress"
    retry_after_seconds = 1


class DependencyUnavailableError(LogpipeError):
    """A backing service (Kafka, PostgreSQL, Redis) failed or timed out; the client should retry.

    `reason` is for the logs (it may name hosts, ports, driver messages); the client sees only a fixed message
    naming the dependency.
    """

    code = "service_unavailable"

    def __init__(self, dependency: str, reason: str, retry_after_seconds: int) -> None:
        super().__init__(f"{dependency} is unavailable; retry later", details={"dependency": dependency})
        self.dependency = dependency
        self.reason = reason
        self.retry_after_seconds = retry_after_seconds


# Gateway: authentication, authorization, rate limits and the read API (docs/gateway.md).


class AuthenticationError(LogpipeError):
    """No API key, or a key that is unknown or revoked."""

    code = "unauthorized"


class PermissionDeniedError(LogpipeError):
    """The API key lacks the scope the route needs."""

    code = "forbidden"


class RateLimitedError(LogpipeError):
    """The organization (or, for failed authentications, the client address) used up its quota."""

    code = "rate_limited"

    def __init__(self, message: str, quota: Any) -> None:
        super().__init__(message, details={"policy": quota.policy})
        self.quota = quota  # a logpipe.access.ratelimit.Quota: what the answer's RateLimit fields report
        self.retry_after_seconds = quota.retry_after_seconds


class NotFoundError(LogpipeError):
    """Nothing with this id in the caller's organization."""

    code = "not_found"


class EventNotFoundError(NotFoundError):
    """No event with this id in the caller's organization."""


class ApiKeyNotFoundError(NotFoundError):
    """No API key with this id in the caller's organization."""


class AssetNotFoundError(NotFoundError):
    """No static file of that name (the log explorer's assets)."""


class InvalidQueryError(LogpipeError):
    """A read-API parameter (cursor, time range) cannot be used."""

    code = "invalid_query"


class QueryTimeoutError(LogpipeError):
    """A read ran past its route's time bound and PostgreSQL stopped it: the question costs more than the bound
    allows (a wide time range, a text found in many events); a narrower one is answered."""

    code = "query_timeout"

    def __init__(self, bound_seconds: float) -> None:
        super().__init__(
            f"the query ran longer than {bound_seconds:g} s and was stopped; narrow the time range or the filters",
            details={"boundSeconds": bound_seconds},
        )
