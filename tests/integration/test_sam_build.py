"""`sam build` artifacts run on the Lambda runtime: every handler imports from .aws-sam/build in a Python of the
template's runtime version, with nothing but the built code, the built layer and what the runtime itself ships
(boto3/botocore), and the layer does not carry a second botocore."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from local.lambda_runner.cfn_yaml import load_yaml
from local.lambda_runner.template import load_template

REPO_ROOT = Path(__file__).resolve().parents[2]
BUILD_DIR = REPO_ROOT / ".aws-sam" / "build"
SOURCES = [REPO_ROOT / "template.yaml", REPO_ROOT / "functions", REPO_ROOT / "layers"]
RUNTIME_PACKAGES = ("boto3", "botocore", "s3transfer")  # what the python3.12 Lambda runtime ships
LAYER_LIMIT_BYTES = 250 * 1024 * 1024  # Lambda: function + layers, unzipped

# `sam build` (when .aws-sam/build is stale) downloads the layer's wheels: allow it more than the default 120 s.
pytestmark = pytest.mark.timeout(600)


def newest_source_mtime() -> float:
    files = [p for root in SOURCES for p in ([root] if root.is_file() else root.rglob("*")) if p.is_file()]
    return max(p.stat().st_mtime for p in files if "__pycache__" not in p.parts)


@pytest.fixture(scope="module")
def built() -> Path:
    """.aws-sam/build as `make build` (.ci/run) leaves it; built here when missing or older than the sources."""
    built_template = BUILD_DIR / "template.yaml"
    if not built_template.exists() or built_template.stat().st_mtime < newest_source_mtime():
        sam = Path(sys.executable).with_name("sam")
        env = {**os.environ, "SAM_CLI_TELEMETRY": "0", "PATH": f"{sam.parent}{os.pathsep}{os.environ['PATH']}"}
        result = subprocess.run([sam, "build"], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=600)
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return BUILD_DIR


@pytest.fixture(scope="module")
def runtime_python() -> str:
    """A Python of the runtime's version (python3.12): this interpreter, else the one the Makefile finds."""
    runtime = load_yaml(REPO_ROOT / "template.yaml")["Globals"]["Function"]["Runtime"]
    version = runtime.removeprefix("python")
    if f"{sys.version_info.major}.{sys.version_info.minor}" == version:
        return sys.executable
    found = subprocess.run([REPO_ROOT / "local" / "find-python", version], capture_output=True, text=True)
    python = found.stdout.strip()
    check = subprocess.run([python, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"], capture_output=True)
    assert check.stdout.decode().strip() == version, f"no python{version} on this machine for {runtime}"
    return python


@pytest.fixture(scope="module")
def runtime_provided(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder holding only what the Lambda runtime adds to sys.path: boto3 and botocore."""
    folder = tmp_path_factory.mktemp("lambda-runtime")
    for name in RUNTIME_PACKAGES:
        module = __import__(name)
        (folder / name).symlink_to(Path(module.__file__).parent)
    return folder


def test_the_layer_leaves_boto_to_the_runtime_and_fits_lambda(built: Path) -> None:
    layer = built / "LogpipeLayer" / "python"
    assert (layer / "confluent_kafka").is_dir() and (layer / "logpipe" / "ops" / "migrations").is_dir()
    assert (layer / "logpipe" / "adapters" / "rds-ca-roots.pem").is_file()  # DATABASE_URL's sslrootcert on AWS
    for name in RUNTIME_PACKAGES:
        assert not (layer / name).exists(), f"the layer ships its own {name}"
    size = sum(p.stat().st_size for p in layer.rglob("*") if p.is_file())
    assert size < LAYER_LIMIT_BYTES / 4, f"layer is {size / 1e6:.0f} MB"


def test_every_handler_imports_from_the_built_artifacts(
    built: Path, runtime_python: str, runtime_provided: Path
) -> None:
    functions = load_template(built / "template.yaml", environ={}).functions
    assert set(functions) == set(load_template(REPO_ROOT / "template.yaml", environ={}).functions)
    for name, spec in functions.items():
        assert spec.code_uri.is_relative_to(built), f"{name}: {spec.code_uri} is not a built artifact"
        module, _, attribute = spec.handler.rpartition(".")
        paths = [str(spec.code_uri), *map(str, spec.layer_paths), str(runtime_provided)]
        code = (
            "import sys, importlib; sys.path[:0] = sys.argv[1:]; "
            f"handler = getattr(importlib.import_module({module!r}), {attribute!r}); "
            "assert callable(handler); "
            "import confluent_kafka, psycopg, pydantic_core; "
            "assert all(m.__file__.startswith(tuple(sys.argv[1:])) for m in (confluent_kafka, psycopg, pydantic_core))"
        )
        env = {
            "PATH": os.environ["PATH"],
            "KAFKA_BOOTSTRAP_SERVERS": "broker:9098",
            "DATABASE_URL": "postgresql://logpipe@db:5432/logpipe",
            "REDIS_URL": "rediss://cache:6379/0",
            "AWS_REGION": "us-east-1",
            "POWERTOOLS_TRACE_DISABLED": "true",
        }
        # -S: no site-packages, so nothing outside the artifacts and the runtime's own packages is importable
        result = subprocess.run(
            [runtime_python, "-S", "-c", code, *paths], env=env, capture_output=True, text=True, timeout=120
        )
        assert result.returncode == 0, f"{name}: {result.stderr[-2000:]}"
