"""Prepare the running services for logpipe with the project's own commands, as the deploy-time setup does on AWS:
the topics of template.yaml (`python -m logpipe.ops.setup topics`), then the schema migrations
(`python -m logpipe.ops.migrate`)."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import time

from .process import ServiceError, redact, say
from .settings import REPO, Config

TIMEOUT = 300
LAYER = REPO / "layers" / "logpipe"


def setup(cfg: Config) -> None:
    topics = [f"{topic.name}:{topic.partitions}" for topic in cfg.topics]
    _run_layer("topics", ["logpipe.ops.setup", "topics", "--bootstrap-servers", cfg.bootstrap_servers, *topics], {})
    _run_layer("migrations", ["logpipe.ops.migrate"], {"DATABASE_URL": cfg.database_url})


def _run_layer(what: str, module_args: list[str], extra_env: dict[str, str]) -> None:
    env = dict(os.environ, **extra_env)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(LAYER), os.environ.get("PYTHONPATH")) if p)
    started = time.monotonic()
    cmd = [sys.executable, "-m", *module_args]
    try:
        proc = subprocess.run(cmd, env=env, cwd=REPO, stdin=subprocess.DEVNULL, stdout=sys.stderr, timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        raise ServiceError(f"{what}: `{shlex.join(cmd)}` timed out after {TIMEOUT}s") from None
    if proc.returncode != 0:
        shown = " ".join(f"{name}={redact(value)}" for name, value in extra_env.items())
        raise ServiceError(
            f"{what} failed (exit {proc.returncode}; output above): PYTHONPATH={LAYER} {shown} {shlex.join(cmd)}"
        )
    say(f"{what}: done ({time.monotonic() - started:.1f}s)")
