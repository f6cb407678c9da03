"""The SAM model the runner works from: functions with their HttpApi routes and Kafka event sources.

Defaults are AWS's, so a template that leaves a setting out runs locally as it would once deployed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_ACCOUNT_ID = "123456789012"
DEFAULT_STACK_NAME = "local"
DEFAULT_RUNTIME = "python3.12"
# AWS: "For Amazon MSK and self-managed Apache Kafka the default batching window is 500 ms".
DEFAULT_KAFKA_BATCHING_WINDOW_S = 0.5
DEFAULT_KAFKA_BATCH_SIZE = 100
# AWS applies this cap when retries are infinite but an on-failure destination is configured.
KAFKA_RETRIES_WITH_DESTINATION = 10
# The API SAM creates for HttpApi events without ApiId (configured by Globals.HttpApi).
IMPLICIT_HTTP_API = "ServerlessHttpApi"
# API Gateway's account-level throttle, used for whichever of rate and burst a route setting leaves out.
ACCOUNT_THROTTLE_RATE_PER_S = 10_000.0
ACCOUNT_THROTTLE_BURST = 5_000


@dataclass(frozen=True)
class Throttle:
    """HTTP API stage throttling of one route (ThrottlingRateLimit / ThrottlingBurstLimit): a token bucket."""

    rate_per_s: float
    burst: int


@dataclass(frozen=True)
class HttpRoute:
    function_id: str
    event_id: str
    method: str  # upper case, "ANY" for any method
    path: str  # as in the template, e.g. /items/{id} or /files/{proxy+}; "$default" for the default route
    timeout_ms: int = 30_000  # the integration timeout of API Gateway (TimeoutInMillis)
    payload_format: str = "2.0"
    api_id: str = IMPLICIT_HTTP_API  # the logical id of the AWS::Serverless::HttpApi the route belongs to
    throttle: Throttle | None = None  # None: only the account-level limit, which a local run never reaches

    @property
    def route_key(self) -> str:
        return "$default" if self.path == "$default" else f"{self.method} {self.path}"


@dataclass(frozen=True)
class KafkaSource:
    function_id: str
    event_id: str
    kind: str  # "MSK" | "SelfManagedKafka"
    topics: tuple[str, ...]
    group_id: str
    starting_position: str = "LATEST"
    batch_size: int = DEFAULT_KAFKA_BATCH_SIZE
    batching_window_s: float = DEFAULT_KAFKA_BATCHING_WINDOW_S
    stream_arn: str | None = None  # MSK cluster ARN (eventSourceArn)
    bootstrap_servers: str | None = None  # SelfManagedKafka KafkaBootstrapServers
    max_retry_attempts: int | None = None  # None / -1: infinite
    on_failure_destination: str | None = None
    report_batch_item_failures: bool = False
    bisect_batch_on_function_error: bool = False
    minimum_pollers: int = 1  # ProvisionedPollerConfig.MinimumPollers: consumers run locally
    enabled: bool = True

    @property
    def event_source(self) -> str:
        return "aws:kafka" if self.kind == "MSK" else "SelfManagedKafka"

    @property
    def auto_offset_reset(self) -> str:
        return "latest" if self.starting_position == "LATEST" else "earliest"

    @property
    def effective_max_retries(self) -> int | None:
        retries = self.max_retry_attempts
        if retries is not None and retries < 0:
            retries = None
        if retries is None and self.on_failure_destination:
            return KAFKA_RETRIES_WITH_DESTINATION
        return retries


@dataclass
class FunctionSpec:
    logical_id: str
    function_name: str
    code_uri: Path
    handler: str
    runtime: str = DEFAULT_RUNTIME
    timeout_s: float = 3.0
    memory_mb: int = 128
    reserved_concurrency: int | None = None  # ReservedConcurrentExecutions: the most instances at once
    # ProvisionedConcurrencyConfig of the AutoPublishAlias alias (what SAM points the events at): this many instances
    # are started and initialized before any traffic
    provisioned_concurrency: int = 0
    environment: dict[str, str] = field(default_factory=dict)  # the template's resolved variables
    layer_paths: list[Path] = field(default_factory=list)  # what /opt/python would contain, in order
    http_routes: list[HttpRoute] = field(default_factory=list)
    kafka_sources: list[KafkaSource] = field(default_factory=list)

    def arn(self, region: str, account_id: str = DEFAULT_ACCOUNT_ID) -> str:
        return f"arn:aws:lambda:{region}:{account_id}:function:{self.function_name}"


@dataclass
class Template:
    path: Path
    region: str
    account_id: str
    stack_name: str
    functions: dict[str, FunctionSpec]
    http_api_ids: list[str]

    @property
    def routes(self) -> list[HttpRoute]:
        return [route for fn in self.functions.values() for route in fn.http_routes]
