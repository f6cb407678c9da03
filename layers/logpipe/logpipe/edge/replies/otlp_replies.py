"""OTLP/HTTP answers (the OTLP specification, "OTLP/HTTP Response"), in the request's content type.

- every record accepted: 200 with an empty `ExportLogsServiceResponse`;
- some records refused: 200 with `partial_success.rejected_log_records` and an `error_message` naming the first
  reasons (a client must not retry them: the same records would be refused again);
- every record refused: 400 with a `google.rpc.Status` naming the first reasons (nothing was stored);
- a request refused whole: its status (400 undecodable, 401, 403, 413, 415, 429, 503) with a `google.rpc.Status`
  body; 429 and 503 carry Retry-After, as a retry can succeed.
"""

import json
from typing import Any

from aws_lambda_powertools.event_handler import Response
from google.protobuf import json_format
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceResponse

from logpipe.edge.answers import error_headers, status_for
from logpipe.edge.replies.rejections import rejection_summary
from logpipe.errors import LogpipeError
from logpipe.models import BatchAccepted

PROTOBUF = "application/x-protobuf"
JSON = "application/json"
# google.rpc.Code of each HTTP status logpipe answers (the OTLP specification maps them the other way).
_GRPC_CODES = {400: 3, 401: 16, 403: 7, 404: 5, 409: 10, 413: 3, 415: 3, 422: 3, 429: 8, 503: 14}
_INTERNAL = 13


def wants_json(content_type: str) -> bool:
    return content_type.split(";")[0].strip().lower() == JSON


def accepted(answer: BatchAccepted, content_type: str) -> Response:
    if not answer.accepted:  # nothing of the request can be stored, now or on a retry
        return _status(400, _GRPC_CODES[400], rejection_summary(answer), content_type)
    reply = ExportLogsServiceResponse()
    if answer.rejected:
        reply.partial_success.rejected_log_records = answer.rejected
        reply.partial_success.error_message = rejection_summary(answer)
    if wants_json(content_type):
        return Response(200, JSON, json_format.MessageToJson(reply, indent=None))
    return Response(200, PROTOBUF, reply.SerializeToString())


def refused(error: LogpipeError, request: dict[str, Any]) -> Response:
    status = status_for(error)
    content_type = (request.get("headers") or {}).get("content-type", "")
    return _status(status, _GRPC_CODES.get(status, _INTERNAL), error.message, content_type, error_headers(error))


def _status(status: int, code: int, message: str, content_type: str, headers: dict[str, str] | None = None) -> Response:
    """A google.rpc.Status answer."""
    if wants_json(content_type):
        return Response(status, JSON, json.dumps({"code": code, "message": message}), headers)
    return Response(status, PROTOBUF, _status_protobuf(code, message), headers)


def _status_protobuf(code: int, message: str) -> bytes:
    """google.rpc.Status {code = 1 (int32), message = 2 (string)} in protobuf's wire format."""
    text = message.encode()
    return b"\x08" + _varint(code) + b"\x12" + _varint(len(text)) + text


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)
