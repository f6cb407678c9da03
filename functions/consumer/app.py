"""Kafka batch consumer: MSK records -> PostgreSQL (exactly once per event id), poison records -> DLQ.

Raising fails the whole batch, which the event source mapping delivers again; nothing is committed
until this returns.
"""

from dataclasses import asdict
from typing import Any

from aws_lambda_powertools.utilities.kafka import ConsumerRecords, SchemaConfig, kafka_consumer
from aws_lambda_powertools.utilities.typing import LambdaContext

from logpipe.config import get_settings
from logpipe.consume import process_batch
from logpipe.models import LogEvent
from logpipe.observability import logger, metrics

settings = get_settings()
schema_config = SchemaConfig(value_schema_type="JSON", value_output_serializer=LogEvent)


@logger.inject_lambda_context
@metrics.log_metrics
@kafka_consumer(schema_config=schema_config)
def handler(event: ConsumerRecords, context: LambdaContext) -> dict[str, Any]:
    return asdict(process_batch(event.records))
