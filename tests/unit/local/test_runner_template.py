"""Template loading: CloudFormation short tags, intrinsic resolution, Globals, events, function environment."""

from __future__ import annotations

from pathlib import Path

import pytest

from local.lambda_runner.cfn_yaml import load_yaml
from local.lambda_runner.environment import function_environment
from local.lambda_runner.intrinsics import Resolver, UnsupportedIntrinsicError
from local.lambda_runner.sam_model import DEFAULT_KAFKA_BATCHING_WINDOW_S
from local.lambda_runner.template import load_template, merge_globals

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[3]

TEMPLATE = """
AWSTemplateFormatVersion: "2010-09-09"
Transform: AWS::Serverless-2016-10-31
Parameters:
  Stage:
    Type: String
    Default: dev
  Brokers:
    Type: String
    Default: 10.0.0.1:9092
  Cluster:
    Type: String
    Default: arn:aws:kafka:us-east-1:123456789012:cluster/toy/abc-1
  Zones:
    Type: CommaDelimitedList
    Default: a,b,c
Mappings:
  StageConfig:
    dev: {LogLevel: DEBUG}
    prod: {LogLevel: WARN}
Conditions:
  IsProd: !Equals [!Ref Stage, prod]
  IsNotProd: !Not [!Condition IsProd]
Globals:
  Function:
    Runtime: python3.11
    Timeout: 30
    MemorySize: 512
    Layers:
      - !Ref SharedLayer
    Environment:
      Variables:
        SERVICE: shared
        STAGE: !Ref Stage
        BROKERS: !Ref Brokers
        FROM_GLOBALS: "yes"
Resources:
  SharedLayer:
    Type: AWS::Serverless::LayerVersion
    Properties:
      LayerName: !Sub "shared-${Stage}"
      ContentUri: layers/shared/
  PlainLayer:
    Type: AWS::Serverless::LayerVersion
    Properties:
      ContentUri: layers/plain/
  Api:
    Type: AWS::Serverless::HttpApi
  Queue:
    Type: AWS::SQS::Queue
  Web:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: functions/web/
      Handler: app.handler
      Timeout: 5
      Layers:
        - !Ref PlainLayer
        - arn:aws:lambda:us-east-1:123456789012:layer:remote:1
      Environment:
        Variables:
          SERVICE: web
          LEVEL: !FindInMap [StageConfig, !Ref Stage, LogLevel]
          URL: !Sub "https://${Api}.execute-api.${AWS::Region}.${AWS::URLSuffix}/${Stage}"
          SUB_LIST: !Sub ["${Proto}://${Host}", {Proto: http, Host: !Ref Brokers}]
          JOINED: !Join [":", [a, !Ref Stage, 3]]
          FIRST_BROKER: !Select [0, !Split [",", !Ref Brokers]]
          ZONE: !Select [1, !Ref Zones]
          QUEUE_ARN: !GetAtt Queue.Arn
          QUEUE_URL: !Ref Queue
          PROD_ONLY: !If [IsProd, "on", !Ref AWS::NoValue]
          NOT_PROD: !If [IsNotProd, "true", "false"]
          ACCOUNT: !Ref AWS::AccountId
          ENCODED: !Base64 hello
          LITERAL: !Sub "${!NotAVar}"
          NUMBER: 42
          FLAG: true
      Events:
        Get:
          Type: HttpApi
          Properties:
            ApiId: !Ref Api
            Path: /items/{id}
            Method: get
        Any:
          Type: HttpApi
          Properties:
            Path: /things
        Default:
          Type: HttpApi
        Queue:
          Type: SQS
          Properties:
            Queue: !GetAtt Queue.Arn
  Worker:
    Type: AWS::Serverless::Function
    Properties:
      FunctionName: !Sub "worker-${Stage}"
      CodeUri: functions/worker/
      Handler: pkg/mod.run
      Events:
        Msk:
          Type: MSK
          Properties:
            Stream: !Ref Cluster
            Topics: [events]
            StartingPosition: TRIM_HORIZON
            BatchSize: 250
            MaximumBatchingWindowInSeconds: 2
            ConsumerGroupId: !Sub "grp-${Stage}"
            FunctionResponseTypes: [ReportBatchItemFailures]
            MaximumRetryAttempts: 3
            DestinationConfig:
              OnFailure:
                Destination: kafka://events-dlq
        SelfManaged:
          Type: SelfManagedKafka
          Properties:
            KafkaBootstrapServers: [h1:9092, h2:9092]
            Topics: [other]
            DestinationConfig:
              OnFailure:
                Destination: arn:aws:sqs:us-east-1:123456789012:dlq
  ProdOnly:
    Type: AWS::Serverless::Function
    Condition: IsProd
    Properties:
      CodeUri: functions/web/
      Handler: app.handler
"""


@pytest.fixture
def project(write_files):
    root = write_files(
        {
            "template.yaml": TEMPLATE,
            "functions/web/app.py": "def handler(event, context):\n    return {}\n",
            "functions/worker/pkg/mod.py": "def run(event, context):\n    return {}\n",
            "layers/shared/python/shared.py": "X = 1\n",
            "layers/plain/plain.py": "Y = 1\n",
        }
    )
    return root


def test_short_tags_become_intrinsic_functions(project: Path) -> None:
    raw = load_yaml(project / "template.yaml")
    env = raw["Resources"]["Web"]["Properties"]["Environment"]["Variables"]
    assert env["QUEUE_URL"] == {"Ref": "Queue"}
    assert env["QUEUE_ARN"] == {"Fn::GetAtt": ["Queue", "Arn"]}
    assert env["LEVEL"] == {"Fn::FindInMap": ["StageConfig", {"Ref": "Stage"}, "LogLevel"]}
    assert env["SUB_LIST"] == {"Fn::Sub": ["${Proto}://${Host}", {"Proto": "http", "Host": {"Ref": "Brokers"}}]}
    assert raw["Conditions"]["IsNotProd"] == {"Fn::Not": [{"Condition": "IsProd"}]}


def test_intrinsics_resolve_against_parameter_defaults_and_pseudo_parameters(project: Path) -> None:
    tpl = load_template(project / "template.yaml", environ={"AWS_REGION": "eu-west-1"})
    assert tpl.region == "eu-west-1"
    env = tpl.functions["Web"].environment
    assert env["SERVICE"] == "web"  # the function wins over Globals
    assert env["FROM_GLOBALS"] == "yes"  # Globals variables are merged in
    assert env["STAGE"] == "dev"
    assert env["LEVEL"] == "DEBUG"
    assert env["URL"] == "https://Api.execute-api.eu-west-1.amazonaws.com/dev"
    assert env["SUB_LIST"] == "http://10.0.0.1:9092"
    assert env["JOINED"] == "a:dev:3"
    assert env["FIRST_BROKER"] == "10.0.0.1:9092"
    assert env["ZONE"] == "b"
    assert env["QUEUE_ARN"] == "arn:aws:sqs:eu-west-1:123456789012:Queue"
    assert env["QUEUE_URL"] == "Queue"
    assert "PROD_ONLY" not in env  # AWS::NoValue removes the key
    assert env["NOT_PROD"] == "true"
    assert env["ACCOUNT"] == "123456789012"
    assert env["ENCODED"] == "aGVsbG8="
    assert env["LITERAL"] == "${NotAVar}"
    assert env["NUMBER"] == "42"
    assert env["FLAG"] == "true"
    assert "ProdOnly" not in tpl.functions  # its Condition is false


def test_parameter_overrides_and_conditions(project: Path) -> None:
    tpl = load_template(project / "template.yaml", environ={}, parameter_overrides={"Stage": "prod"})
    assert tpl.region == "us-east-1"
    env = tpl.functions["Web"].environment
    assert env["LEVEL"] == "WARN"
    assert env["PROD_ONLY"] == "on"
    assert env["NOT_PROD"] == "false"
    assert "ProdOnly" in tpl.functions
    assert tpl.functions["Worker"].function_name == "worker-prod"


def test_globals_merge_scalars_lists_and_layers(project: Path) -> None:
    tpl = load_template(project / "template.yaml", environ={})
    web, worker = tpl.functions["Web"], tpl.functions["Worker"]
    assert (web.timeout_s, web.memory_mb, web.runtime) == (5.0, 512, "python3.11")
    assert (worker.timeout_s, worker.memory_mb) == (30.0, 512)
    assert web.code_uri == project / "functions" / "web"
    assert web.handler == "app.handler"
    assert worker.handler == "pkg/mod.run"
    assert worker.function_name == "worker-dev"
    assert web.function_name == "Web"
    # Globals layers come first, the function's are added; later layers win, so they come first on sys.path.
    # A layer with a python/ folder contributes that folder (/opt/python); the remote ARN is ignored.
    assert web.layer_paths == [project / "layers" / "plain", project / "layers" / "shared" / "python"]
    assert worker.layer_paths == [project / "layers" / "shared" / "python"]


def test_http_routes(project: Path) -> None:
    tpl = load_template(project / "template.yaml", environ={})
    routes = {r.event_id: r for r in tpl.functions["Web"].http_routes}
    assert set(routes) == {"Get", "Any", "Default"}  # the SQS event is not run locally
    assert routes["Get"].route_key == "GET /items/{id}"
    assert routes["Any"].route_key == "ANY /things"
    assert routes["Default"].route_key == "$default"
    assert all(r.function_id == "Web" for r in tpl.routes)
    assert tpl.http_api_ids == ["Api"]


def test_kafka_sources(project: Path) -> None:
    tpl = load_template(project / "template.yaml", environ={})
    msk, smk = tpl.functions["Worker"].kafka_sources
    assert msk.kind == "MSK" and msk.event_source == "aws:kafka"
    assert msk.topics == ("events",)
    assert msk.group_id == "grp-dev"
    assert msk.auto_offset_reset == "earliest"
    assert (msk.batch_size, msk.batching_window_s) == (250, 2.0)
    assert msk.stream_arn == "arn:aws:kafka:us-east-1:123456789012:cluster/toy/abc-1"
    assert msk.report_batch_item_failures is True
    assert msk.effective_max_retries == 3
    assert msk.on_failure_destination == "kafka://events-dlq"

    assert smk.kind == "SelfManagedKafka" and smk.event_source == "SelfManagedKafka"
    assert smk.bootstrap_servers == "h1:9092,h2:9092"
    assert smk.group_id == "Worker"  # no ConsumerGroupId: the function's logical id
    assert (smk.batch_size, smk.batching_window_s) == (100, DEFAULT_KAFKA_BATCHING_WINDOW_S)
    assert smk.report_batch_item_failures is False
    # infinite retries + an on-failure destination: AWS caps retries at 10
    assert smk.effective_max_retries == 10


def test_function_environment_precedence(project: Path) -> None:
    tpl = load_template(project / "template.yaml", environ={})
    web = tpl.functions["Web"]
    base = {"PATH": "/usr/bin", "BROKERS": "127.0.0.1:9092", "AWS_LAMBDA_FUNCTION_NAME": "not-this-one"}
    env = function_environment(web, base_env=base, region="eu-central-1")
    assert env["PATH"] == "/usr/bin"  # the runner's environment is the base
    assert env["BROKERS"] == "127.0.0.1:9092"  # already set in the runner's environment: it wins
    assert env["STAGE"] == "dev"  # not set in the runner: the template's value
    assert env["AWS_LAMBDA_FUNCTION_NAME"] == "Web"  # runtime variables describe the function
    assert env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"] == "512"
    assert env["AWS_LAMBDA_FUNCTION_VERSION"] == "$LATEST"
    assert env["AWS_LAMBDA_LOG_GROUP_NAME"] == "/aws/lambda/Web"
    assert env["AWS_REGION"] == env["AWS_DEFAULT_REGION"] == "eu-central-1"
    assert env["AWS_EXECUTION_ENV"] == "AWS_Lambda_python3.11"
    assert env["LAMBDA_TASK_ROOT"] == str(project / "functions" / "web")
    assert env["_HANDLER"] == "app.handler"


def test_merge_globals_rules() -> None:
    merged = merge_globals(
        {"Timeout": 3, "Layers": ["A"], "Environment": {"Variables": {"X": "1", "Y": "1"}}, "Tags": {"t": "g"}},
        {"Timeout": 9, "Layers": ["B"], "Environment": {"Variables": {"Y": "2"}}},
    )
    assert merged == {
        "Timeout": 9,
        "Layers": ["A", "B"],
        "Environment": {"Variables": {"X": "1", "Y": "2"}},
        "Tags": {"t": "g"},
    }


def test_what_exists_once_deployed_resolves_to_stand_ins() -> None:
    resolver = Resolver({"Resources": {}}, region="us-east-1")
    assert resolver.resolve({"Ref": "Nowhere"}) == "Nowhere"
    assert resolver.resolve({"Fn::GetAZs": ""}) == ["us-east-1a", "us-east-1b", "us-east-1c"]
    assert resolver.resolve({"Fn::Sub": "${Missing.Attr}"}) == "Missing.Attr"


def test_an_unsupported_intrinsic_fails_naming_it(write_files) -> None:
    resolver = Resolver({"Resources": {}}, region="us-east-1")
    with pytest.raises(UnsupportedIntrinsicError, match="Fn::Cidr"):
        resolver.resolve({"Fn::Cidr": ["10.0.0.0/16", 4, 8]})
    resolver = Resolver({"Conditions": {"Both": {"Fn::And": [True, True]}}}, region="us-east-1")
    with pytest.raises(UnsupportedIntrinsicError, match="Fn::And"):
        resolver.resolve({"Fn::If": ["Both", "a", "b"]})

    root = write_files(
        {
            "template.yaml": """
Resources:
  Fn:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: fn/
      Handler: app.handler
      Environment:
        Variables:
          IMPORTED: !ImportValue SharedStack-Output
"""
        }
    )
    with pytest.raises(UnsupportedIntrinsicError, match="Fn::ImportValue"):
        load_template(root / "template.yaml", environ={})


def test_provisioned_concurrency_is_read_from_the_functions_alias(write_files) -> None:
    function = """
  Fn:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: fn/
      Handler: app.handler
"""
    provisioned = "      ProvisionedConcurrencyConfig: {ProvisionedConcurrentExecutions: !Ref Warm}\n"
    parameters = "Parameters:\n  Warm: {Type: Number, Default: 3}\nResources:"
    root = write_files({"template.yaml": f"{parameters}{function}      AutoPublishAlias: live\n{provisioned}"})
    assert load_template(root / "template.yaml", environ={}).functions["Fn"].provisioned_concurrency == 3
    root = write_files({"template.yaml": f"Resources:{function}"})
    assert load_template(root / "template.yaml", environ={}).functions["Fn"].provisioned_concurrency == 0
    root = write_files({"template.yaml": f"{parameters}{function}{provisioned}"})
    with pytest.raises(ValueError, match="Fn: ProvisionedConcurrencyConfig needs AutoPublishAlias"):
        load_template(root / "template.yaml", environ={})


def test_the_projects_template_loads() -> None:
    """The real template.yaml must stay readable by the runner (its functions are tested elsewhere)."""
    tpl = load_template(REPO / "template.yaml", environ={})
    assert tpl.functions
    assert tpl.routes
    for spec in tpl.functions.values():
        assert spec.handler and spec.code_uri.is_absolute()
        for source in spec.kafka_sources:
            assert source.topics
