"""Build the OpenTelemetry Collector of local/otelcol/manifest.yaml with the official builder, once.

    python -m local.otelcol.build            # prints the binary's path (alone on the last line)
    python -m local.otelcol.build --force    # rebuild even when nothing changed

- The builder (``go.opentelemetry.io/collector/cmd/builder``, at ``BUILDER_VERSION``, the release of the manifest's
  core modules) is installed with ``go install`` into <state>/otelcol/bin.
- The manifest is copied to <state>/otelcol/manifest.yaml with ``dist.output_path`` set to <state>/otelcol/dist,
  so ``LOGPIPE_STATE_DIR`` moves the output too; the collector is <state>/otelcol/dist/otelcol-logpipe.
- Idempotent: <state>/otelcol/dist/build.sha256 holds the digest of the effective manifest, the builder version
  and the Go version of the last good build; when the binary exists and the digest matches, nothing runs.
- A lock file (<state>/otelcol/build.lock) makes a second build (another worktree sharing the state folder,
  another pytest process) wait for the first one instead of writing into the same folder.
- Modules come from the Go module proxy (GOPROXY as the machine sets it) into Go's module cache; a cold build
  takes minutes (compiling the Collector dominates), a warm one with an unchanged manifest returns at once.

The layer never imports this; tests/e2e/test_otel_collector.py calls ``ensure_collector()``.
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
MANIFEST = REPO / "local" / "otelcol" / "manifest.yaml"
BUILDER_MODULE = "go.opentelemetry.io/collector/cmd/builder"
BUILDER_VERSION = "v0.165.0"
GO_MINIMUM = "1.26"  # the `go` line of the builder's go.mod and of the go.mod it writes


class CollectorBuildError(Exception):
    """The collector cannot be built here; the message says why and what to do."""


def state_dir() -> Path:
    return Path(os.environ.get("LOGPIPE_STATE_DIR") or REPO / "local" / ".state").resolve() / "otelcol"


def say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def go_executable() -> str:
    go = shutil.which("go")
    if not go:
        raise CollectorBuildError(
            "Go is not installed (no `go` on PATH): the OpenTelemetry Collector is built from source with its "
            f"official builder ({BUILDER_MODULE}@{BUILDER_VERSION}), which needs Go {GO_MINIMUM} or newer and the Go "
            "module proxy. Install Go, put it on PATH and run `python -m local.otelcol.build` again."
        )
    return go


def _run(cmd: list[str], *, env: dict[str, str], cwd: Path, log: Path, what: str) -> None:
    with open(log, "ab") as out:
        out.write(f"\n$ {' '.join(cmd)}\n".encode())
        out.flush()
        result = subprocess.run(cmd, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT, check=False)
    if result.returncode != 0:
        lines = log.read_text(errors="replace").splitlines()[-30:]
        raise CollectorBuildError(f"{what} failed (exit {result.returncode}); the end of {log}:\n" + "\n".join(lines))


def _go_version(go: str) -> str:
    return subprocess.run([go, "version"], capture_output=True, text=True, check=True).stdout.strip()


def effective_manifest(dist_dir: Path) -> str:
    """The repository's manifest with the output path pointing into the state folder."""
    manifest = yaml.safe_load(MANIFEST.read_text())
    manifest["dist"]["output_path"] = str(dist_dir)
    return yaml.safe_dump(manifest, sort_keys=False)


def binary_path(state: Path | None = None) -> Path:
    state = state or state_dir()
    name = yaml.safe_load(MANIFEST.read_text())["dist"]["name"]
    return state / "dist" / name


def ensure_builder(go: str, state: Path, env: dict[str, str], log: Path) -> Path:
    builder = state / "bin" / "builder"
    if builder.exists():
        result = subprocess.run([str(builder), "version"], capture_output=True, text=True, check=False)
        if result.returncode == 0 and BUILDER_VERSION in result.stdout + result.stderr:  # "ocb version v…" (stderr)
            return builder
    say(f"otelcol: installing {BUILDER_MODULE}@{BUILDER_VERSION} into {builder.parent}")
    _run(
        [go, "install", f"{BUILDER_MODULE}@{BUILDER_VERSION}"],
        env={**env, "GOBIN": str(builder.parent)},
        cwd=REPO,
        log=log,
        what="go install of the collector builder",
    )
    return builder


def ensure_collector(force: bool = False) -> Path:
    """The path of the built collector, building it first if the binary is missing or the manifest changed."""
    state = state_dir()
    dist = state / "dist"
    binary = binary_path(state)
    stamp = dist / "build.sha256"
    state.mkdir(parents=True, exist_ok=True)
    go = go_executable()
    manifest_text = effective_manifest(dist)
    digest = hashlib.sha256(f"{manifest_text}\n{BUILDER_VERSION}\n{_go_version(go)}".encode()).hexdigest()

    with open(state / "build.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # a concurrent build finishes first; then the stamp says it is done
        if not force and binary.exists() and stamp.exists() and stamp.read_text().strip() == digest:
            return binary

        log = state / "build.log"
        log.write_text("")
        env = dict(os.environ)
        env.setdefault("GOFLAGS", "-buildvcs=false")  # the dist folder sits inside the git work tree
        builder = ensure_builder(go, state, env, log)
        manifest = state / "manifest.yaml"
        manifest.write_text(manifest_text)
        stamp.unlink(missing_ok=True)
        say(f"otelcol: building {binary.name} from {MANIFEST.relative_to(REPO)} (a cold build takes minutes)")
        started = time.monotonic()
        _run([str(builder), "--config", str(manifest)], env=env, cwd=state, log=log, what="the collector build")
        if not binary.exists():
            raise CollectorBuildError(f"the builder succeeded but {binary} is missing; see {log}")
        stamp.write_text(digest + "\n")
        say(f"otelcol: built {binary} in {time.monotonic() - started:.0f} s")
        return binary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--force", action="store_true", help="rebuild even when the binary is up to date")
    args = parser.parse_args(argv)
    try:
        print(ensure_collector(force=args.force))
    except CollectorBuildError as error:
        say(f"otelcol: {error}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
