"""template.yaml is what AWS deploys and what the runner reads: it must validate and point at real code."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]


class _CloudFormationLoader(yaml.SafeLoader):
    """Reads !Ref, !Sub ... as plain values; only the structure matters here."""


_CloudFormationLoader.add_multi_constructor("!", lambda loader, suffix, node: None)


def functions() -> dict[str, dict]:
    template = yaml.load((REPO_ROOT / "template.yaml").read_text(), Loader=_CloudFormationLoader)
    return {
        name: resource["Properties"]
        for name, resource in template["Resources"].items()
        if resource["Type"] == "AWS::Serverless::Function"
    }


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
    properties = functions()[name]
    module, _, attribute = properties["Handler"].rpartition(".")
    source = REPO_ROOT / properties["CodeUri"] / f"{module}.py"
    assert source.is_file(), source
    assert f"def {attribute}(" in source.read_text()


def test_the_consumer_reads_log_events_through_msk() -> None:
    [msk] = [event for event in functions()["ConsumerFunction"]["Events"].values() if event["Type"] == "MSK"]
    assert msk["Properties"]["Topics"] == ["log-events"]
    assert msk["Properties"]["ConsumerGroupId"]
