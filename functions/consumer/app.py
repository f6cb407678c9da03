"""Kafka batch consumer: MSK records -> PostgreSQL (exactly once per organization and event id), poison -> DLQ.

Raising fails the whole batch, which the event source mapping delivers again; nothing is committed until this
returns. Records that could be neither stored nor dead-lettered come back as ``batchItemFailures``
(FunctionResponseTypes: ReportBatchItemFailures). Records are decoded by the layer straight from their bytes
(pydantic-core), so the Kafka utility is used without a schema.
"""

import gc
from typing import Any

from aws_lambda_powertools.utilities.kafka import ConsumerRecords, kafka_consumer
from aws_lambda_powertools.utilities.typing import LambdaContext

from logpipe.config import get_settings
from logpipe.observability import SINK_COUNTERS, logger, metrics, publish_at_zero
from logpipe.sink.consume import process_batch

settings = get_settings()
publish_at_zero(SINK_COUNTERS)

# A batch allocates tens of thousands of short-lived objects (records, events, rows) and the cyclic garbage
# collector kept walking them and every module loaded above: about 15 % of the function's CPU per batch.
# What cold start loaded lives as long as the container and is frozen out of its reach; it runs less often.
gc.freeze()
gc.set_threshold(50_000, 20, 100)


@logger.inject_lambda_context
@metrics.log_metrics
@kafka_consumer
def handler(event: ConsumerRecords, context: LambdaContext) -> dict[str, Any]:
    outcome = process_batch(event.records, settings, writer=context.function_name)
    return {
        "received": outcome.received,
        "stored": outcome.stored,
        "duplicates": outcome.duplicates,
        "dead_lettered": outcome.dead_lettered,
        # ReportBatchItemFailures: the event source mapping delivers these records again
        "batchItemFailures": [
            {"itemIdentifier": {"partition": f"{record.topic}-{record.partition}", "offset": record.offset}}
            for record in outcome.failed_records
        ],
    }
