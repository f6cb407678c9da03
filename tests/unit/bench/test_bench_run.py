"""bench/run.py, the driver of `make bench`: where the figures go, and a crashed scenario failing the run (what
CI's smoke run relies on)."""

import json
import sys
import textwrap
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT

sys.path.insert(0, str(REPO_ROOT / "bench"))

import run  # bench/ is not a package: found through the sys.path entry above

pytestmark = pytest.mark.unit


@pytest.fixture
def bench(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A bench folder of two toy scenarios, one that crashes, and its own latest.json."""
    folder = tmp_path / "bench"
    folder.mkdir()
    (folder / "fine.py").write_text(
        textwrap.dedent("""
        import json, sys
        print(json.dumps({"quick": "--quick" in sys.argv, "answer": 42}))
        """)
    )
    (folder / "broken.py").write_text("raise SystemExit('a scenario that crashed')\n")
    monkeypatch.setattr(run, "BENCH", folder)
    monkeypatch.setattr(run, "RESULTS", folder / "results" / "latest.json")
    return folder


def test_a_smoke_run_writes_its_figures_to_the_file_named_and_fails_on_a_crash(bench: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "smoke.json"

    assert run.main(["--quick", "--results", str(elsewhere)]) == 1  # broken.py crashed

    figures = json.loads(elsewhere.read_text())
    assert figures["fine"]["answer"] == 42
    assert figures["fine"]["quick"] is True
    assert figures["broken"]["error"] == "exit code 1"
    assert not run.RESULTS.exists()  # latest.json untouched


def test_without_results_the_figures_go_to_latest_json(bench: Path) -> None:
    assert run.main(["--only", "fine"]) == 0
    assert json.loads(run.RESULTS.read_text())["fine"]["answer"] == 42


def test_ci_runs_every_scenario_quick_into_a_file_of_its_own() -> None:
    ci = (REPO_ROOT / ".ci" / "run").read_text()
    assert 'make bench BENCH_ARGS="--quick --results ' in ci
    assert "latest.json" not in ci.split("make bench", 1)[1].splitlines()[0]
