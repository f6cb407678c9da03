"""Bench baseline handler: answers what the producer answers, without doing anything."""

from typing import Any

ANSWER = {
    "statusCode": 202,
    "headers": {"Content-Type": "application/json"},
    "body": '{"status":"success","id":"00000000-0000-0000-0000-000000000000",'
    '"message":"Log event queued for processing"}',
}


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return ANSWER
