"""The inside of one local Lambda instance: import the handler once (cold start), then invoke it, one event at a time.

Started by :mod:`workers` as ``python -P worker_process.py <request-fd> <response-fd> <config-json>`` with the
function's environment. Standard library only, and nothing of the runner is imported: the handler sees a fresh
interpreter, like on Lambda. Frames on both pipes are a 4-byte big-endian length followed by a JSON document.

parent -> worker: {"id", "deadline_ms", "arn", "trace_id", "event"}
worker -> parent: {"type": "ready", "init_ms"} | {"type": "init_error", "error"}
                  {"type": "result", "id", "ok": true, "result"} | {"type": "result", "id", "ok": false, "error"}

A result whose JSON is over Lambda's response limit is not sent: the invocation fails with Lambda's
`Function.ResponseSizeTooLarge` error, as the runtime API refuses such a response on AWS.
"""

from __future__ import annotations

import decimal
import importlib
import json
import os
import signal
import struct
import sys
import time
import traceback
from typing import Any

_HEADER = struct.Struct("!I")
# Lambda's limit on a synchronous invocation's response (the function's JSON result), as its error states it:
# "Response payload size exceeded maximum allowed payload size (6291556 bytes)." (Function.ResponseSizeTooLarge).
MAX_RESPONSE_BYTES = 6_291_556
RESPONSE_TOO_LARGE = "Function.ResponseSizeTooLarge"


class _LineBuffered:
    """stdout/stderr as prompt as the Lambda runtime's unbuffered ones, a line at a time.

    print() writes the text and its newline separately: unbuffered, that is two system calls per log line (the EMF
    line of every invocation among them); here it is one. The runner flushes what is left after each invocation.
    """

    def __init__(self, stream: Any) -> None:
        self._stream = stream

    def write(self, data: str) -> int:
        n = self._stream.write(data)
        if "\n" in data:
            self._stream.flush()
        return n

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


class CognitoIdentity:
    cognito_identity_id = None
    cognito_identity_pool_id = None


class LambdaContext:
    """Mirrors awslambdaric's LambdaContext (memory_limit_in_mb is a string there too).

    The function's identity is read from the instance's environment once, when this module starts the instance
    (awslambdaric reads it per invocation: five os.environ lookups, as much CPU as framing the answer).
    """

    log_group_name = os.environ.get("AWS_LAMBDA_LOG_GROUP_NAME")
    log_stream_name = os.environ.get("AWS_LAMBDA_LOG_STREAM_NAME")
    function_name = os.environ.get("AWS_LAMBDA_FUNCTION_NAME")
    memory_limit_in_mb = os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE")
    function_version = os.environ.get("AWS_LAMBDA_FUNCTION_VERSION")

    def __init__(self, request_id: str, deadline_ms: int, invoked_function_arn: str) -> None:
        self.aws_request_id = request_id
        self.invoked_function_arn = invoked_function_arn
        self.tenant_id = None
        self.client_context = None
        self.identity = CognitoIdentity()
        self._epoch_deadline_time_in_ms = deadline_ms

    def get_remaining_time_in_millis(self) -> int:
        return max(self._epoch_deadline_time_in_ms - int(time.time() * 1000), 0)

    def log(self, msg: str) -> None:
        sys.stdout.write(msg)

    def __repr__(self) -> str:
        return (
            f"LambdaContext([aws_request_id={self.aws_request_id},function_name={self.function_name},"
            f"function_version={self.function_version},invoked_function_arn={self.invoked_function_arn}])"
        )


def _decimal_serializer(o: Any) -> Any:
    if isinstance(o, decimal.Decimal):
        return float(o)
    raise TypeError(repr(o) + " is not JSON serializable")


def _too_large(size: int) -> dict[str, Any]:
    return {
        "errorType": RESPONSE_TOO_LARGE,
        "errorMessage": f"Response payload size ({size} bytes) exceeded maximum allowed payload size "
        f"({MAX_RESPONSE_BYTES} bytes).",
    }


def _error(exc: BaseException, error_type: str | None = None) -> dict[str, Any]:
    return {
        "errorType": error_type or type(exc).__name__,
        "errorMessage": str(exc),
        "stackTrace": traceback.format_list(traceback.extract_tb(exc.__traceback__)),
    }


class Channel:
    def __init__(self, read_fd: int, write_fd: int) -> None:
        self.rfile = os.fdopen(read_fd, "rb", buffering=1 << 16)
        self.write_fd = write_fd

    def recv(self) -> dict[str, Any] | None:
        header = self.rfile.read(4)
        if len(header) < 4:
            return None
        (size,) = _HEADER.unpack(header)
        data = self.rfile.read(size)
        if len(data) < size:
            return None
        return json.loads(data)

    def send_raw(self, payload: bytes) -> None:
        data = memoryview(_HEADER.pack(len(payload)) + payload)
        while data:
            n = os.write(self.write_fd, data)
            data = data[n:]

    def send(self, message: dict[str, Any]) -> None:
        self.send_raw(json.dumps(message, separators=(",", ":")).encode())


def load_handler(handler: str) -> Any:
    module_name, _, function_name = handler.rpartition(".")
    module = importlib.import_module(module_name.replace("/", "."))
    try:
        return getattr(module, function_name)
    except AttributeError:
        raise AttributeError(f"Handler '{function_name}' missing on module '{module_name}'") from None


def _send_result(channel: Channel, request_id: str, body: str) -> None:
    """The handler's result (`body`, its JSON: ASCII, one byte a character), or Lambda's error for a result over the
    response limit."""
    if len(body) > MAX_RESPONSE_BYTES:
        channel.send({"type": "result", "id": request_id, "ok": False, "error": _too_large(len(body))})
        return
    head = json.dumps({"type": "result", "id": request_id, "ok": True}, separators=(",", ":"))
    channel.send_raw(f'{head[:-1]},"result":{body}}}'.encode())


def main(argv: list[str]) -> int:
    # The parent owns our lifecycle: Ctrl-C in the terminal must not kill an invocation half-way.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    channel = Channel(int(argv[1]), int(argv[2]))
    config = json.loads(argv[3])
    for stream in (sys.stdout, sys.stderr):  # buffered even under PYTHONUNBUFFERED: _LineBuffered flushes
        stream.reconfigure(line_buffering=False, write_through=False)
    sys.stdout = _LineBuffered(sys.stdout)
    sys.stderr = _LineBuffered(sys.stderr)

    # sys.path like Lambda's: the task root, then what the layers put in /opt/python, then the runtime.
    sys.path[:0] = [os.environ["LAMBDA_TASK_ROOT"], *config["layer_paths"]]
    started = time.perf_counter()
    try:
        handler = load_handler(os.environ["_HANDLER"])
    except BaseException as exc:
        error_type = "Runtime.ImportModuleError" if isinstance(exc, ImportError) else f"Runtime.{type(exc).__name__}"
        sys.stderr.write(f"[ERROR] {error_type}: init failed\n{traceback.format_exc()}")
        channel.send({"type": "init_error", "error": _error(exc, error_type)})
        return 1
    channel.send({"type": "ready", "init_ms": round((time.perf_counter() - started) * 1000, 1)})

    while True:
        message = channel.recv()
        if message is None:  # the parent closed the pipe: shut down
            return 0
        request_id = message["id"]
        os.environ["_X_AMZN_TRACE_ID"] = message.get("trace_id") or ""
        context = LambdaContext(request_id, message["deadline_ms"], message["arn"])
        try:
            result = handler(message["event"], context)
            body = json.dumps(result, default=_decimal_serializer, separators=(",", ":"))
        except Exception as exc:
            sys.stderr.write(f"[ERROR] {type(exc).__name__}: {exc}\n{traceback.format_exc()}")
            error = _error(exc)
            if isinstance(exc, TypeError) and "JSON serializable" in str(exc):
                error["errorType"] = "Runtime.MarshalError"
            error["requestId"] = request_id
            channel.send({"type": "result", "id": request_id, "ok": False, "error": error})
        else:
            _send_result(channel, request_id, body)
        sys.stdout.flush()  # an unfinished line of this invocation, once its answer is on its way
        sys.stderr.flush()


if __name__ == "__main__":
    sys.exit(main(sys.argv))
