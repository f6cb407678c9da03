"""The results: bench/results/chaos.json (chaos-short.json for the short form) and the README's table."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path
from typing import Any

from _common import REPO
from ledger import Attempt

README = REPO / "README.md"
BEGIN, END = "<!-- chaos table: written by make chaos -->", "<!-- end of chaos table -->"
TARGETS = {
    "unavailable_s": "ingest available again within 5 s of the part's return",
    "lag_caught_up_after_return_s": "consumer caught up within 30 s",
    "slowest_503_ms": "503 within 50 ms once the breaker is open",
    "answers_500": "no 500",
}


def results_path(short: bool) -> Path:
    return REPO / "bench" / "results" / ("chaos-short.json" if short else "chaos.json")


def write(results: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2) + "\n")


def write_attempts(attempts: list[Attempt], path: Path) -> None:
    """Every attempt, one CSV line each, for a closer look at a run (not committed)."""
    with path.open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["started", "latency_s", "kind", "status", "retry_after"])
        for a in sorted(attempts, key=lambda a: a.started):
            writer.writerow([f"{a.started:.3f}", f"{a.latency_s:.4f}", a.kind, a.status, int(a.retry_after)])


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, dict):
        return ", ".join(f"{n} x {code}" for code, n in value.items()) or "-"
    return str(value)


def table(results: dict[str, Any]) -> str:
    columns = [
        ("fault", "fault"),
        ("unavailable_s", "unavailable (s)"),
        ("answers_during", "answers while unavailable"),
        ("answers_500", "500s"),
        ("slowest_503_ms", "slowest 503 (ms)"),
        ("first_2xx_after_return_s", "first 2xx after return (s)"),
        ("lag_caught_up_after_return_s", "lag caught up after return (s)"),
        ("events_acknowledged", "events acknowledged"),
        ("lost", "lost"),
        ("duplicated", "duplicated"),
    ]
    lines = ["| " + " | ".join(title for _, title in columns) + " |", "|" + "---|" * len(columns)]
    for fault in results["faults"]:
        lines.append("| " + " | ".join(_cell(fault.get(key)) for key, _ in columns) + " |")
    return "\n".join(lines)


def update_readme(results: dict[str, Any]) -> None:
    text = README.read_text()
    block = f"{BEGIN}\n{table(results)}\n{END}"
    updated, found = re.subn(re.escape(BEGIN) + ".*?" + re.escape(END), lambda _: block, text, flags=re.S)
    if not found:
        raise SystemExit(f"README.md has no {BEGIN!r} ... {END!r} block to update")
    README.write_text(updated)
