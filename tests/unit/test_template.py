"""template.yaml is what AWS deploys and what the runner reads: it must validate and point at real code."""

import copy
import json
import os
import shutil
import subprocess
import sys
import urllib.parse
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

import boto3
import pytest
from cfnlint.api import ManualArgs, lint
from cryptography import x509
from samtranslator.model.exceptions import InvalidDocumentException
from samtranslator.parser.parser import Parser
from samtranslator.translator.translator import Translator

from local.lambda_runner.cfn_yaml import load_yaml
from local.lambda_runner.sam_model import FunctionSpec
from local.lambda_runner.template import load_template
from logpipe.ops.roles import ROLES

REPO_ROOT = Path(__file__).resolve().parents[2]


def functions() -> dict[str, FunctionSpec]:
    """The functions as the runner reads them: Globals merged, intrinsics resolved."""
    return load_template(REPO_ROOT / "template.yaml").functions


@cache
def sam_template() -> dict[str, Any]:
    return load_yaml(REPO_ROOT / "template.yaml")


def deployment_errors(template: dict[str, Any]) -> list[str]:
    """What CloudFormation would refuse: the SAM transform's errors, then the resource schemas' on its output.

    `sam validate --lint` checks the SAM resources against SAM's schemas, but cfn-lint gives up on an event that holds
    an intrinsic function (every event here: `ApiId: !Ref HttpApi`, `Stream: !If ...`), so a value such as
    `MaximumBatchingWindowInSeconds: 0.5` passes it. Here the template goes through the SAM transform itself (the
    translator CloudFormation runs, after `sam package` put the code in S3) and the resulting AWS:: resources through
    cfn-lint with strict types (0.5 is not an integer, "yes" not a boolean). Errors only: the translator substitutes
    parameter defaults in a few names, which leaves warnings such as W1020 that the template itself does not have.
    """
    packaged = copy.deepcopy(template)
    for resource in packaged["Resources"].values():
        properties = resource.get("Properties", {})
        for uri in ("CodeUri", "ContentUri"):
            if uri in properties:
                properties[uri] = "s3://deployment-bucket/code.zip"
    translator = Translator(None, Parser(), boto_session=boto3.Session(region_name="us-east-1"))
    try:
        transformed = translator.translate(packaged, parameter_values={}, get_managed_policy_map=dict)
    except InvalidDocumentException as exc:
        return [str(cause) for cause in exc.causes]
    config = ManualArgs(regions=["us-east-1"], configure_rules={"E3012": {"strict": True}})
    return [str(match) for match in lint(json.dumps(transformed), config=config) if match.rule.id.startswith("E")]


def test_the_template_as_cloudformation_receives_it_passes_the_resource_schemas() -> None:
    assert deployment_errors(sam_template()) == []


BATCHING_WINDOW = ("ConsumerFunction", "Properties", "Events", "LogEvents", "Properties")


@pytest.mark.parametrize(
    ("path", "value", "named"),
    [
        ((*BATCHING_WINDOW, "MaximumBatchingWindowInSeconds"), 0.5, "'MaximumBatchingWindowInSeconds' is invalid"),
        (("Database", "Properties", "BackupRetentionPeriod"), 0.5, "0.5 is not of type 'integer'"),
        (("Database", "Properties", "DeletionProtection"), "sometimes", "'sometimes' is not of type 'boolean'"),
        (("Cache", "Properties", "CacheUsageLimits", "DataStorage", "Unit"), "TB", "'tb' is not one of ['gb']"),
    ],
    ids=["batching-window-0.5", "backup-retention-0.5", "deletion-protection-string", "cache-storage-unit"],
)
def test_a_value_aws_would_refuse_is_caught(path: tuple[str, ...], value: object, named: str) -> None:
    broken = copy.deepcopy(sam_template())
    *parents, last = path
    node = broken["Resources"]
    for key in parents:
        node = node[key]
    node[last] = value
    errors = deployment_errors(broken)
    assert any(named in error for error in errors), errors


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


@pytest.mark.parametrize("name", sorted(name for name, function in functions().items() if function.http_routes))
def test_no_route_admits_at_once_more_requests_than_its_function_has_instances(name: str) -> None:
    """The stage throttle's burst is how many requests its bucket admits at once, and each needs an instance at that
    moment (Lambda queues no synchronous invocation): beyond the function's reserved concurrency the excess is
    throttled, and API Gateway answers a throttled integration 500, not 429. With a burst of 100 for 8 producer
    instances, the ingest bench's overload answered every admitted request 500 for its first 1.5 s (841 x 500)."""
    function = functions()[name]
    assert function.reserved_concurrency is not None, f"{name}: no ReservedConcurrentExecutions"
    for route in function.http_routes:
        assert route.throttle is not None, f"{route.route_key}: not throttled"
        assert route.throttle.burst <= function.reserved_concurrency, route.route_key


# How long an ingest request holds its instance when the host is busy or a restarted broker warms up (20-50 ms
# measured, mostly waiting for Kafka and Redis; 3 ms on a quiet host): docs/runner.md, "Overload".
BUSY_HOLD_S = 0.03


def test_the_ingest_function_has_instances_for_its_routes_rate_at_a_busy_hosts_hold() -> None:
    """Little's law: the stage admits up to its rate, and each admitted request holds an instance as long as the
    request takes. With 8 producer instances for 500 requests/s, a hold of 16 ms already took every one, and a busy
    host's holds answered thousands of throttled invocations 500 where 16 instances answered a few dozen. Every one
    of them is provisioned: an instance cold-starting under load holds the CPU the others need."""
    producer = functions()["ProducerFunction"]
    assert producer.reserved_concurrency is not None
    for route in producer.http_routes:
        assert route.throttle is not None, route.route_key
        assert producer.reserved_concurrency >= route.throttle.rate_per_s * BUSY_HOLD_S, route.route_key
    assert producer.provisioned_concurrency == producer.reserved_concurrency


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


def test_the_runner_applies_the_500_ms_batching_window_aws_gives_when_it_is_left_out() -> None:
    """AWS takes the window in whole seconds (the schema test above); 500 ms is had by leaving it out."""
    [msk] = functions()["ConsumerFunction"].kafka_sources
    assert msk.batching_window_s == 0.5


def test_the_database_is_protected_from_deletion_and_multi_az_is_a_parameter() -> None:
    database = sam_template()["Resources"]["Database"]
    assert database["Properties"]["DeletionProtection"] is True
    assert database["DeletionPolicy"] == "Snapshot"
    assert database["Properties"]["MultiAZ"] == {"Ref": "DatabaseMultiAZ"}
    assert sam_template()["Parameters"]["DatabaseMultiAZ"]["AllowedValues"] == ["true", "false"]


def egress_ports(group: dict[str, Any]) -> set[int]:
    """The ports a security group lets out, over both branches of each condition."""
    rules = []
    for rule in group["Properties"]["SecurityGroupEgress"]:
        rules.extend(rule["Fn::If"][1:] if "Fn::If" in rule else [rule])
    assert all(rule["IpProtocol"] == "tcp" for rule in rules), rules
    return {port for rule in rules for port in range(rule["FromPort"], rule["ToPort"] + 1)}


KAFKA, REDIS, POSTGRES, AWS_APIS = {9098}, {6379, 6380}, {5432}, {443}


@pytest.mark.parametrize(
    ("function", "ports"),
    [
        ("ProducerFunction", KAFKA | REDIS | POSTGRES | AWS_APIS),
        ("ConsumerFunction", KAFKA | POSTGRES | AWS_APIS),
        ("GatewayFunction", KAFKA | REDIS | POSTGRES | AWS_APIS),
        ("MaintenanceFunction", POSTGRES | AWS_APIS),
        ("SetupFunction", KAFKA | POSTGRES | AWS_APIS),
    ],
)
def test_each_function_may_reach_only_the_ports_it_uses(function: str, ports: set[int]) -> None:
    resources = sam_template()["Resources"]
    groups = resources[function]["Properties"]["VpcConfig"]["SecurityGroupIds"]
    assert groups[0] == {"Ref": "FunctionSecurityGroup"}
    [own] = groups[1:]
    assert egress_ports(resources[own["Ref"]]) == ports
    [nothing] = resources["FunctionSecurityGroup"]["Properties"]["SecurityGroupEgress"]
    assert nothing["CidrIp"] == "127.0.0.1/32" and nothing["IpProtocol"] == "icmp"


MASTER_SECRET = {"Fn::GetAtt": ["Database", "MasterUserSecret.SecretArn"]}
OWNER_SECRET = {"Fn::If": ["CreateDatabase", MASTER_SECRET, {"Ref": "DatabaseSecretArn"}]}


@pytest.mark.parametrize(
    ("function", "secret", "policy"),
    [
        ("GatewayFunction", {"Ref": "DatabaseReaderSecret"}, "DatabaseReaderSecretPolicy"),
        ("ProducerFunction", {"Ref": "DatabaseReaderSecret"}, "DatabaseReaderSecretPolicy"),
        ("ConsumerFunction", {"Ref": "DatabaseWriterSecret"}, "DatabaseWriterSecretPolicy"),
        ("MaintenanceFunction", OWNER_SECRET, "DatabaseSecretPolicy"),
        ("SetupFunction", OWNER_SECRET, "DatabaseSecretPolicy"),
    ],
)
def test_each_function_logs_in_to_postgresql_as_its_role(function: str, secret: dict, policy: str) -> None:
    template = sam_template()
    variables = {
        **template["Globals"]["Function"]["Environment"]["Variables"],
        **template["Resources"][function]["Properties"]["Environment"]["Variables"],
    }
    assert variables["DATABASE_SECRET_ARN"] == secret
    policies = template["Resources"][function]["Properties"]["Policies"]
    assert {"Ref": policy} in policies
    other_secrets = {"DatabaseSecretPolicy", "DatabaseReaderSecretPolicy", "DatabaseWriterSecretPolicy"} - {policy}
    if function != "SetupFunction":  # setup reads the roles' secrets to set their passwords
        assert not [p for p in policies if p.get("Ref") in other_secrets], policies


def test_setup_gives_a_login_to_each_role_of_the_migrations_with_a_secret_of_that_name() -> None:
    resources = sam_template()["Resources"]
    roles = resources["KafkaSetup"]["Properties"]["DatabaseRoles"]
    assert {role["Role"] for role in roles} == ROLES
    for role in roles:
        secret = resources[role["SecretArn"]["Ref"]]["Properties"]["GenerateSecretString"]
        assert json.loads(secret["SecretStringTemplate"]) == {"username": role["Role"]}
        assert secret["GenerateStringKey"] == "password"


def test_the_database_connection_verifies_the_server_against_the_rds_roots_in_the_layer() -> None:
    url = sam_template()["Globals"]["Function"]["Environment"]["Variables"]["DATABASE_URL"]["Fn::If"][1]["Fn::Sub"]
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)
    assert query["sslmode"] == ["verify-full"]  # require would take any certificate, from any host
    [bundle] = query["sslrootcert"]
    layer = Path(bundle).relative_to("/opt/python")  # where Lambda mounts a Python layer's files
    roots = x509.load_pem_x509_certificates((REPO_ROOT / "layers/logpipe" / layer).read_bytes())
    assert len(roots) >= 3 * 25  # RSA2048, RSA4096 and ECC384 roots of each region
    for root in roots:
        subject = root.subject.rfc4514_string()
        assert root.issuer == root.subject and "OU=Amazon RDS" in subject, subject
        assert root.not_valid_after_utc > datetime.now(UTC) + timedelta(days=3650), subject


def test_the_cache_admits_only_its_user_whose_password_the_functions_read_from_the_secret() -> None:
    template = sam_template()
    resources = template["Resources"]
    group = resources[resources["Cache"]["Properties"]["UserGroupId"]["Ref"]]["Properties"]
    users = {
        resources[user["Ref"]]["Properties"]["UserName"]: resources[user["Ref"]]["Properties"]
        for user in group["UserIds"]
    }
    assert users["default"]["AccessString"].startswith("off ")
    assert users["logpipe"]["AccessString"].startswith("on ") and "-@dangerous" in users["logpipe"]["AccessString"]
    secret = json.loads(resources["CacheSecret"]["Properties"]["GenerateSecretString"]["SecretStringTemplate"])
    assert secret == {"username": "logpipe"}
    for user in users.values():
        [password] = user["AuthenticationMode"]["Passwords"]
        assert password == {"Fn::Sub": "{{resolve:secretsmanager:${CacheSecret}:SecretString:password}}"}
    variables = template["Globals"]["Function"]["Environment"]["Variables"]
    assert variables["REDIS_SECRET_ARN"]["Fn::If"][:2] == ["CreateCache", {"Ref": "CacheSecret"}]
    assert variables["REDIS_URL"]["Fn::If"][1]["Fn::Sub"].startswith("rediss://")
    for function in ("ProducerFunction", "GatewayFunction"):  # the functions that use Redis
        [policy] = [p for p in resources[function]["Properties"]["Policies"] if "Fn::If" in p]
        assert policy["Fn::If"][:2] == ["CreateCache", {"Ref": "CacheSecretPolicy"}]
