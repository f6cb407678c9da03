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
