"""Requests that must have one effect however often they are retried (Powertools Idempotency, records in Redis).

A request's scope is a JSON list naming the organization and the client's key; its fingerprint makes a reused key
with another body an error. The wrapped functions are built on first use, from the settings' time to live. An
answer is kept as its JSON compressed (zlib): a keyed batch's answer lists every item's id, and the ids derived for
one batch share all but their last 8 hex digits (logpipe.ingest.intake), so compressed it costs a few bytes per item
of Redis's memory, not the 115-131 of the plain JSON.
"""

import base64
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import lru_cache
from typing import Any, TypeVar

from aws_lambda_powertools.utilities.idempotency import IdempotencyConfig, idempotent_function
from aws_lambda_powertools.utilities.idempotency.exceptions import (
    IdempotencyAlreadyInProgressError,
    IdempotencyPersistenceLayerError,
    IdempotencyValidationError,
)
from aws_lambda_powertools.utilities.idempotency.serialization.base import (
    BaseIdempotencyModelSerializer,
    BaseIdempotencySerializer,
)
from aws_lambda_powertools.utilities.idempotency.serialization.functions import get_actual_type
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel

from logpipe.adapters import cache
from logpipe.config import Settings
from logpipe.errors import DependencyUnavailableError, IdempotencyConflictError, RequestInProgressError

Answer = TypeVar("Answer", bound=BaseModel)

_config = IdempotencyConfig(event_key_jmespath="key", payload_validation_jmespath="fingerprint")


class CompressedAnswer(BaseIdempotencyModelSerializer):
    """An answer (a pydantic model) as the record keeps it: {"zlib": base64 of its compressed JSON}."""

    def __init__(self, model: type[BaseModel]) -> None:
        self.model = model

    def to_dict(self, data: BaseModel) -> dict:
        return {"zlib": base64.b64encode(zlib.compress(data.model_dump_json().encode(), 1)).decode("ascii")}

    def from_dict(self, data: dict) -> BaseModel:
        if "zlib" not in data:  # a record kept before answers were compressed: the answer's fields as they are
            return self.model.model_validate(data)
        return self.model.model_validate_json(zlib.decompress(base64.b64decode(data["zlib"])))

    @classmethod
    def instantiate(cls, model_type: Any) -> BaseIdempotencySerializer:
        return cls(get_actual_type(model_type=model_type))


def register_lambda_context(context: LambdaContext) -> None:
    """Let a record in progress expire with the invocation's remaining time (call from the handler)."""
    _config.register_lambda_context(context)


def once(
    scope: list[Any], fingerprint: Any, settings: Settings, work: Callable[[], Answer], answer_type: type[Answer]
) -> Answer:
    """`work()`'s answer, computed once per scope within the settings' idempotency TTL; a retry gets it back."""
    _config.expires_after_seconds = settings.idempotency_ttl_seconds
    with _idempotency_errors(settings):
        return _idempotent(answer_type)(request={"key": scope, "fingerprint": fingerprint}, work=work)


@lru_cache(maxsize=8)
def _idempotent(answer_type: type[Answer]) -> Callable[..., Answer]:
    @idempotent_function(
        data_keyword_argument="request",
        persistence_store=cache.idempotency_store(),
        config=_config,
        output_serializer=CompressedAnswer,
        key_prefix=f"logpipe.ingest.{answer_type.__name__}",  # stable across releases: records outlive a deploy
    )
    def run(request: dict[str, Any], work: Callable[[], Answer]) -> answer_type:  # type: ignore[valid-type]
        return work()

    return run


@contextmanager
def _idempotency_errors(settings: Settings) -> Iterator[None]:
    """Powertools' idempotency exceptions as domain errors."""
    try:
        yield
    except IdempotencyValidationError as exc:
        raise IdempotencyConflictError("this idempotency key was already used for a different request") from exc
    except IdempotencyAlreadyInProgressError as exc:
        raise RequestInProgressError("a request with this idempotency key is still being processed") from exc
    except IdempotencyPersistenceLayerError as exc:
        raise DependencyUnavailableError("redis", f"idempotency store: {exc}", settings.retry_after_seconds) from exc
