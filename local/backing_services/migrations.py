"""Apply the schema migrations with the project's own command, `python -m logpipe.ops.migrate`."""

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


def migrate(cfg: Config) -> None:
    env = dict(os.environ, DATABASE_URL=cfg.database_url)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(LAYER), os.environ.get("PYTHONPATH")) if p)
    started = time.monotonic()
    cmd = [sys.executable, "-m", "logpipe.ops.migrate"]
    try:
        proc = subprocess.run(cmd, env=env, cwd=REPO, stdin=subprocess.DEVNULL, stdout=sys.stderr, timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        raise ServiceError(f"migrations: `{shlex.join(cmd)}` timed out after {TIMEOUT}s") from None
    if proc.returncode != 0:
        raise ServiceError(
            f"migrations failed (exit {proc.returncode}; output above): PYTHONPATH={LAYER} "
            f"DATABASE_URL={redact(cfg.database_url)} {shlex.join(cmd)}"
        )
    say(f"migrations: done ({time.monotonic() - started:.1f}s)")
