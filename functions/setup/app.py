"""Deploy-time setup, run by CloudFormation as a custom resource: Kafka topics and database migrations.

On Create and Update it finds the MSK bootstrap brokers (when not given), creates or grows the topics,
applies the migrations, and returns ``BootstrapServers`` for the other functions' environment. Delete
keeps topics and data. The answer goes to CloudFormation's pre-signed ResponseURL.
"""

import json
import urllib.request
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from logpipe.observability import logger
from logpipe.ops import setup


@logger.inject_lambda_context
def handler(event: dict[str, Any], context: LambdaContext) -> None:
    properties = event.get("ResourceProperties") or {}
    status, reason, data = "SUCCESS", "", {}
    try:
        if event["RequestType"] in ("Create", "Update"):
            data = setup.run(setup.Request.model_validate(properties))
    except Exception as exc:  # CloudFormation waits for an answer: every failure must be reported
        logger.exception("deploy-time setup failed")
        status, reason = "FAILED", f"{type(exc).__name__}: {exc}"[:500]
    _respond(event, context, status, reason, data)


def _respond(event: dict[str, Any], context: LambdaContext, status: str, reason: str, data: dict[str, str]) -> None:
    body = json.dumps(
        {
            "Status": status,
            "Reason": reason or f"see log stream {context.log_stream_name}",
            "PhysicalResourceId": event.get("PhysicalResourceId") or f"logpipe-setup-{event['LogicalResourceId']}",
            "StackId": event["StackId"],
            "RequestId": event["RequestId"],
            "LogicalResourceId": event["LogicalResourceId"],
            "Data": data,
        }
    ).encode()
    request = urllib.request.Request(
        event["ResponseURL"], data=body, method="PUT", headers={"Content-Type": "", "Content-Length": str(len(body))}
    )
    with urllib.request.urlopen(request, timeout=30):
        pass
