"""template.yaml and the code describe the same system: handlers, routes, environment and event sources exist on
both sides. A route, variable or topic added on one side only fails here, not on AWS."""

import re
from pathlib import Path

import pytest
import yaml

from local.lambda_runner.cfn_yaml import load_yaml
from local.lambda_runner.template import load_template
from logpipe.config import Settings
from tests.conftest import load_function

REPO_ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = REPO_ROOT / "template.yaml"
# Variables the Lambda runtime or Powertools read, not logpipe's settings.
RUNTIME_VARIABLES = {"POWERTOOLS_SERVICE_NAME", "POWERTOOLS_METRICS_NAMESPACE", "LOG_LEVEL"}

RAW = load_yaml(TEMPLATE)
FUNCTIONS = load_template(TEMPLATE, environ={}).functions
HTTP_FUNCTIONS = sorted(name for name, spec in FUNCTIONS.items() if spec.http_routes)


def template_variables(function_id: str) -> set[str]:
    """The function's environment as written in the template (Globals merged), before any local override."""
    globals_vars = RAW["Globals"]["Function"]["Environment"]["Variables"]
    own = ((RAW["Resources"][function_id]["Properties"].get("Environment") or {}).get("Variables")) or {}
    return set(globals_vars) | set(own)


def code_routes(function_id: str) -> set[tuple[str, str]]:
    module = load_function(FUNCTIONS[function_id].code_uri.name)
    resolver = module.app
    return {(route.method, route.openapi_path) for route in resolver._static_routes + resolver._dynamic_routes}


@pytest.mark.parametrize("function_id", sorted(FUNCTIONS))
def test_every_handler_is_a_function_of_the_code(function_id: str) -> None:
    spec = FUNCTIONS[function_id]
    module_name, _, attribute = spec.handler.rpartition(".")
    assert (spec.code_uri / f"{module_name}.py").is_file()
    assert callable(getattr(load_function(spec.code_uri.name), attribute))


@pytest.mark.parametrize("function_id", HTTP_FUNCTIONS)
def test_the_templates_routes_are_the_codes_routes(function_id: str) -> None:
    declared = {(route.method, route.path) for route in FUNCTIONS[function_id].http_routes}
    assert declared == code_routes(function_id)


@pytest.mark.parametrize("function_id", sorted(FUNCTIONS))
def test_every_variable_of_the_template_is_read_by_the_code(function_id: str) -> None:
    settings_variables = {name.upper() for name in Settings.model_fields}
    unread = template_variables(function_id) - settings_variables - RUNTIME_VARIABLES
    assert not unread, f"{function_id}: the template sets variables nothing reads: {sorted(unread)}"


@pytest.mark.parametrize("function_id", sorted(FUNCTIONS))
def test_every_required_setting_is_set_by_the_template(function_id: str) -> None:
    required = {name.upper() for name, field in Settings.model_fields.items() if field.is_required()}
    missing = required - template_variables(function_id)
    assert not missing, f"{function_id} would fail its cold start on AWS: {sorted(missing)} not in the template"


def test_the_settings_defaults_are_the_templates_topics() -> None:
    parameters = RAW["Parameters"]
    defaults = (Settings.model_fields["kafka_topic"].default, Settings.model_fields["kafka_dlq_topic"].default)
    assert defaults == (parameters["EventsTopic"]["Default"], parameters["DeadLetterTopic"]["Default"])


def test_every_kafka_event_source_reads_the_events_topic_into_a_batch_handler() -> None:
    sources = [(name, source) for name, spec in FUNCTIONS.items() for source in spec.kafka_sources]
    assert sources, "no Kafka event source in the template"
    for name, source in sources:
        assert source.topics == (RAW["Parameters"]["EventsTopic"]["Default"],), name
        # The IAM policy grants exactly this consumer group (kafka-cluster:AlterGroup/DescribeGroup).
        assert f"group/${{ClusterPath}}/{source.group_id}" in TEMPLATE.read_text(), name


def test_docker_compose_creates_the_templates_topics() -> None:
    """local/docker-compose.yml cannot read template.yaml; this keeps its setup service's topics in step."""
    compose = yaml.safe_load((REPO_ROOT / "local" / "docker-compose.yml").read_text())
    command = compose["services"]["setup"]["command"][-1]
    arguments = re.search(r"logpipe\.ops\.setup topics --bootstrap-servers \S+ ([^&]+)", command).group(1).split()
    created = {name: int(n) for name, _, n in (argument.rpartition(":") for argument in arguments)}
    parameters = RAW["Parameters"]
    assert created == {
        parameters["EventsTopic"]["Default"]: parameters["EventsTopicPartitions"]["Default"],
        parameters["DeadLetterTopic"]["Default"]: parameters["DeadLetterTopicPartitions"]["Default"],
    }
