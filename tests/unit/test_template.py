"""template.yaml is what AWS deploys and what the runner reads: it must validate and point at real code."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from local.lambda_runner.cfn_yaml import load_yaml
from local.lambda_runner.sam_model import FunctionSpec
from local.lambda_runner.template import load_template

REPO_ROOT = Path(__file__).resolve().parents[2]


def functions() -> dict[str, FunctionSpec]:
    """The functions as the runner reads them: Globals merged, intrinsics resolved."""
    return load_template(REPO_ROOT / "template.yaml").functions


def test_sam_validate_lint_passes() -> None:
    sam = shutil.which("sam") or str(Path(sys.executable).with_name("sam"))
    result = subprocess.run(
        [sam, "validate", "--lint", "--region", "us-east-1"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "SAM_CLI_TELEMETRY": "0"},
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("name", sorted(functions()))
def test_each_handler_names_a_module_that_exists(name: str) -> None:
    function = functions()[name]
    module, _, attribute = function.handler.rpartition(".")
    source = function.code_uri / f"{module}.py"
    assert source.is_file(), source
    assert f"def {attribute}(" in source.read_text()


def test_the_consumer_reads_log_events_through_msk() -> None:
    [msk] = [source for source in functions()["ConsumerFunction"].kafka_sources if source.kind == "MSK"]
    assert msk.topics == ("log-events",)
    assert msk.group_id == "logpipe-consumer"


def test_the_consumer_has_lambdas_kafka_error_controls_in_provisioned_mode() -> None:
    [msk] = functions()["ConsumerFunction"].kafka_sources
    assert msk.report_batch_item_failures and msk.bisect_batch_on_function_error
    assert msk.on_failure_destination == "kafka://log-events-dlq"
    assert msk.effective_max_retries == 100
    assert msk.minimum_pollers == 3  # ProvisionedPollerConfig: required by AWS for these controls
    assert msk.batch_size <= 10_000


def test_kafka_batching_windows_are_whole_seconds_as_aws_takes_them() -> None:
    """AWS takes MaximumBatchingWindowInSeconds as an integer 0-300; the 500 ms default is had by leaving it out."""

    resources = load_yaml(REPO_ROOT / "template.yaml")["Resources"]
    windows = [
        event["Properties"]["MaximumBatchingWindowInSeconds"]
        for resource in resources.values()
        for event in (resource.get("Properties", {}).get("Events") or {}).values()
        if "MaximumBatchingWindowInSeconds" in event.get("Properties", {})
    ]
    assert all(isinstance(window, int) and 0 <= window <= 300 for window in windows), windows
    [msk] = functions()["ConsumerFunction"].kafka_sources
    assert msk.batching_window_s == 0.5  # the default the runner applies, as AWS does
