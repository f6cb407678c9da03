"""`runner.py invoke FUNCTION -e EVENT.json`: one invocation of one function, without Docker, as `sam local
invoke` does it: the response JSON on stdout, the START/END/REPORT lines and the function's logs on stderr.

The function runs in one worker process with the environment the runner gives it (template variables, with
variables already set in this environment winning, and `--env-vars` like sam's). Exit status 0 when the
handler returned, 1 when it failed (sam prints the error and exits 0; a script wants to know).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

from .environment import function_environment
from .template import load_template
from .workers import FunctionPool, InvokeResult


def parse_args(argv: list[str], default_template: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="runner.py invoke", description=__doc__.split("\n\n")[0])
    parser.add_argument("function", help="logical id of the function in the template, e.g. ProducerFunction")
    parser.add_argument("-e", "--event", help="JSON event file ('-' for stdin; default: {})")
    parser.add_argument("-t", "--template", default=default_template)
    parser.add_argument("-n", "--env-vars", help='JSON file like sam\'s: {"Parameters": {...}, "<Function>": {...}}')
    parser.add_argument("--parameter-overrides", nargs="*", default=[], help="template parameters, Key=Value")
    return parser.parse_args(argv)


def read_event(source: str | None) -> bytes:
    if source is None:
        return b"{}"
    text = sys.stdin.read() if source == "-" else Path(source).read_text()
    return json.dumps(json.loads(text), separators=(",", ":")).encode()


def env_vars_file(path: str | None, function_id: str) -> dict[str, str]:
    """sam's --env-vars: "Parameters" apply to every function, a function's own block to it."""
    if not path:
        return {}
    document = json.loads(Path(path).read_text())
    return {k: str(v) for k, v in {**document.get("Parameters", {}), **document.get(function_id, {})}.items()}


async def invoke_once(pool: FunctionPool, event: bytes) -> InvokeResult:
    try:
        return await pool.invoke(event)
    finally:
        await pool.shutdown(grace_s=1.0)


def main(argv: list[str], *, default_template: str, overrides: dict[str, str]) -> int:
    args = parse_args(argv, default_template)
    template = load_template(args.template, parameter_overrides=overrides)
    spec = template.functions.get(args.function)
    if spec is None:
        print(f"no function {args.function!r} in {args.template}; functions: {', '.join(template.functions)}",
              file=sys.stderr)  # fmt: skip
        return 2
    event = read_event(args.event)
    base_env = {**os.environ, **env_vars_file(args.env_vars, args.function)}
    env = function_environment(spec, base_env=base_env, region=template.region, account_id=template.account_id)

    async def run() -> InvokeResult:
        pool = FunctionPool(spec, env, region=template.region, account_id=template.account_id, max_workers=1,
                            loop=asyncio.get_running_loop())  # fmt: skip
        return await invoke_once(pool, event)

    print(f"Invoking {spec.handler} ({spec.runtime}) from {spec.code_uri}", file=sys.stderr)
    with function_output_to_stderr() as response_out:
        result = asyncio.run(run())
        response = result.result if result.ok else result.error
        response_out.write(json.dumps(response) + "\n")
    print(f"START RequestId: {result.request_id} Version: $LATEST", file=sys.stderr)
    print(f"END RequestId: {result.request_id}", file=sys.stderr)
    print(f"REPORT RequestId: {result.request_id}\tDuration: {result.duration_ms:.2f} ms\t"
          f"Memory Size: {spec.memory_mb} MB", file=sys.stderr)  # fmt: skip
    return 0 if result.ok else 1


@contextlib.contextmanager
def function_output_to_stderr() -> Iterator[TextIO]:
    """Like sam: what the function prints (its logs) goes to stderr, stdout carries the response alone."""
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)  # the worker process inherits fd 1
    response_out = os.fdopen(os.dup(saved), "w")
    try:
        yield response_out
    finally:
        response_out.close()
        os.dup2(saved, 1)
        os.close(saved)
