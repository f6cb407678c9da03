"""`python local/services.py up|down|env|status|observe|browser`: the commands over the services (and the
browser the log explorer's tests drive)."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence

from .browser import ensure_browser
from .kafka import Kafka
from .postgres import Postgres, remove_orphaned_fallbacks
from .process import ServiceError, StateLock, say
from .prometheus import Dashboard, Prometheus, runner_address
from .redis import Redis
from .service import Service
from .settings import Config
from .setup import setup


def services(cfg: Config) -> list[Service]:
    """In start order: sequential on purpose, simple to follow, and every step has its own timeout."""
    return [Redis(cfg), Kafka(cfg), Postgres(cfg)]


def observability(cfg: Config) -> list[Service]:
    """Only for `observe`: Prometheus scraping the runner, and the dashboard page drawing from it."""
    prometheus = Prometheus(cfg)
    return [prometheus, Dashboard(cfg, prometheus)]


def cmd_up(cfg: Config, purge: bool = False) -> int:
    started = time.monotonic()
    try:  # fail before starting anything rather than after the broker is up
        import confluent_kafka  # noqa: F401
    except ImportError:
        raise ServiceError(
            f"confluent_kafka is not importable by {sys.executable}; run `up` with the project's virtualenv "
            "python (e.g. .venv/bin/python local/services.py up; `make setup` creates it)"
        ) from None
    with StateLock(cfg.state / ".lock"):
        remove_orphaned_fallbacks()
        for service in services(cfg):
            service.up()
        setup(cfg)
    say(f"all services up in {time.monotonic() - started:.1f}s")
    print("\n".join(cfg.env_lines()), flush=True)
    return 0


def cmd_down(cfg: Config, purge: bool = False) -> int:
    started = time.monotonic()
    errors = []
    with StateLock(cfg.state / ".lock"):
        for service in [*reversed(observability(cfg)), *reversed(services(cfg))]:
            try:
                service.down()
                if purge:
                    service.purge()
            except ServiceError as exc:
                errors.append(str(exc))
        remove_orphaned_fallbacks()
    if errors:
        raise ServiceError("\n".join(errors))
    kept = "data outside the clone removed" if purge else f"data kept in {cfg.state}"
    say(f"down in {time.monotonic() - started:.1f}s ({kept})")
    return 0


def cmd_status(cfg: Config, purge: bool = False) -> int:
    all_up = True
    for service in services(cfg):
        up, detail = service.status()
        all_up &= up
        print(f"{service.name:<11} {'up' if up else 'down':<5} {detail}")
    return 0 if all_up else 1


def cmd_env(cfg: Config, purge: bool = False) -> int:
    for service in services(cfg):
        if not service.status()[0]:
            say(f"warning: {service.name} is not running; start it with: python local/services.py up")
    print("\n".join(cfg.env_lines()))
    return 0


def cmd_observe(cfg: Config, purge: bool = False) -> int:
    with StateLock(cfg.state / ".lock"):
        prometheus, dashboard = observability(cfg)
        prometheus.up()
        dashboard.up()
    print(f"Prometheus  {prometheus.url}  (scraping http://{runner_address()}/metrics)")
    print(f"Dashboard   {dashboard.url}/  (the panels of local/grafana/dashboards/logpipe.json)")
    return 0


def cmd_browser(cfg: Config, purge: bool = False) -> int:
    ensure_browser()
    return 0


COMMANDS = {
    "up": cmd_up,
    "down": cmd_down,
    "env": cmd_env,
    "status": cmd_status,
    "observe": cmd_observe,
    "browser": cmd_browser,
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="services.py",
        description="Start/stop logpipe's Kafka, PostgreSQL and Redis natively (see local/backing_services).",
    )
    parser.add_argument("command", choices=sorted(COMMANDS))
    parser.add_argument(
        "--purge", action="store_true", help="down: also remove what lives outside the clone (/var/tmp cluster)"
    )
    args = parser.parse_args(argv)
    try:
        return COMMANDS[args.command](Config.from_env(), purge=args.purge)
    except ServiceError as exc:
        say(f"ERROR: {exc}")
        return 1
    except KeyboardInterrupt:
        say("interrupted")
        return 130
