"""Scheduled maintenance: day partitions ahead of time, retention (drop old partitions and their ids)."""

from dataclasses import asdict
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from logpipe.config import get_settings
from logpipe.observability import logger
from logpipe.ops import maintenance

settings = get_settings()


@logger.inject_lambda_context
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return asdict(maintenance.run(settings))
