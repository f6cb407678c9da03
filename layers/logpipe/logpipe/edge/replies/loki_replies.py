"""Loki push answers: 204 when every entry was accepted; otherwise the status and a plain-text reason as Loki
gives it (400 for entries refused, naming how many and why; their valid neighbours are stored, as Loki does)."""

from typing import Any

from aws_lambda_powertools.event_handler import Response

from logpipe.edge.answers import error_headers, status_for
from logpipe.edge.replies.rejections import rejection_summary
from logpipe.errors import LogpipeError
from logpipe.models import BatchAccepted

TEXT = "text/plain; charset=utf-8"


def accepted(answer: BatchAccepted) -> Response:
    if answer.rejected:
        return Response(400, TEXT, rejection_summary(answer, "entry", "entries") + "\n")
    return Response(204, TEXT, "")


def refused(error: LogpipeError, _request: dict[str, Any]) -> Response:
    return Response(status_for(error), TEXT, error.message + "\n", error_headers(error))
