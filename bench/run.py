"""`make bench`: run every scenario script of bench/ in order, collect their figures, print a table.

    python bench/run.py [--quick [SCENARIO ...]] [--only SCENARIO ...] [--results FILE]

``--only`` replaces those scenarios' figures in an existing latest.json and keeps the others (every scenario
records when it ran). ``--quick`` alone makes every scenario a short smoke run; ``--quick gateway`` only the
scenarios named (each scenario's figures say whether they come from a quick run). ``--results`` writes the figures
to another file than bench/results/latest.json (CI's smoke run: ``--quick --results <a temporary file>``).

A scenario is ``bench/<name>.py`` (files starting with ``_`` are helpers). Each runs as its own process with the
services' environment, prints progress on stderr and, on its last stdout line, one JSON object of named figures.
The figures land in ``bench/results/latest.json`` as ``{"<scenario>": {"started_at": ..., ...}, "machine": ...}``.
A scenario that fails is recorded as ``{"error": ...}`` and makes the command exit 1 after the others ran.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

BENCH = Path(__file__).resolve().parent
RESULTS = BENCH / "results" / "latest.json"


def scenarios() -> list[str]:
    return sorted(p.stem for p in BENCH.glob("*.py") if not p.name.startswith("_") and p.name != "run.py")


def machine() -> dict[str, object]:
    cpuinfo = Path("/proc/cpuinfo").read_text().splitlines()
    model = next((line.split(":", 1)[1].strip() for line in cpuinfo if "model name" in line), platform.processor())
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "python": platform.python_version(),
        "kernel": platform.release(),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
    }


def cpu_times() -> list[int]:
    """The machine's CPU time counters (user, nice, system, idle, iowait, irq, softirq, steal, ...), in ticks."""
    return [int(field) for field in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]


def run_scenario(name: str, quick: bool) -> dict[str, object]:
    started_at = datetime.now(UTC).isoformat(timespec="seconds")
    before = cpu_times()
    figures = _run_scenario(name, quick)
    spent = [after - then for after, then in zip(cpu_times(), before, strict=True)]
    # Steal: time this VM's vCPUs were ready to run but the hypervisor ran something else. On a shared host it
    # swings from run to run, and every figure of a scenario run with a high steal share is that much worse.
    steal_pct = round(100 * spent[7] / max(1, sum(spent[:8])), 1)
    return {"started_at": started_at, "quick": quick, "cpu_steal_pct": steal_pct, **figures}


def _run_scenario(name: str, quick: bool) -> dict[str, object]:
    command = [sys.executable, str(BENCH / f"{name}.py"), *(["--quick"] if quick else [])]
    started = time.monotonic()
    proc = subprocess.run(command, stdout=subprocess.PIPE, text=True, check=False)
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        return {"error": f"exit code {proc.returncode}", "seconds": round(time.monotonic() - started, 1)}
    try:
        figures = json.loads(lines[-1])
    except json.JSONDecodeError:
        return {"error": f"last stdout line is not JSON: {lines[-1][:200]}"}
    return {**figures, "seconds": round(time.monotonic() - started, 1)}


def print_table(results: dict[str, dict[str, object]]) -> None:
    width = max((len(f"{s}.{k}") for s, figures in results.items() for k in figures), default=20)
    for scenario, figures in results.items():
        print(f"\n{scenario}")
        for key, value in figures.items():
            shown = json.dumps(value) if isinstance(value, dict | list) else value
            print(f"  {key:<{width}} {shown}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--quick", nargs="*", default=None, help="short smoke runs: of every scenario, or of the scenarios named"
    )
    parser.add_argument("--only", nargs="*", default=None, help="scenario names to run")
    parser.add_argument("--results", type=Path, default=RESULTS, help="where the figures go (default: %(default)s)")
    args = parser.parse_args(argv)
    names = args.only or scenarios()
    quick = set() if args.quick is None else set(args.quick or names)
    results_file: Path = args.results.resolve()
    kept = json.loads(results_file.read_text()) if args.only and results_file.is_file() else {}
    report: dict[str, object] = {**kept, "machine": machine()}
    results: dict[str, dict[str, object]] = {}
    for name in names:
        print(f"== {name}", file=sys.stderr, flush=True)
        results[name] = run_scenario(name, name in quick)
    report.update(results)
    results_file.parent.mkdir(parents=True, exist_ok=True)
    results_file.write_text(json.dumps(report, indent=2) + "\n")
    print_table(results)
    print(f"\nwritten to {results_file}")
    return 1 if any("error" in figures for figures in results.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
