"""Read a SAM template the way `sam local` does: short tags, intrinsics, Globals, functions and their events.

Only what a local runner needs is resolved. Anything that only exists once deployed (``!GetAtt`` of a real
resource, ``!ImportValue``) resolves to a harmless placeholder string instead of failing.
"""

from __future__ import annotations

import base64
import copy
import dataclasses
import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

log = logging.getLogger("runner")

DEFAULT_ACCOUNT_ID = "123456789012"
DEFAULT_STACK_NAME = "local"
FUNCTION_TYPES = ("AWS::Serverless::Function",)
LAYER_TYPES = ("AWS::Serverless::LayerVersion", "AWS::Lambda::LayerVersion")
KAFKA_EVENT_TYPES = ("MSK", "SelfManagedKafka")
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


# --------------------------------------------------------------------------------------------------- loading
class CfnLoader(yaml.SafeLoader):
    """SafeLoader that understands CloudFormation short tags (``!Ref X`` -> ``{"Ref": "X"}``)."""


def _construct_short_tag(loader: CfnLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    if suffix == "Ref":
        return {"Ref": value}
    if suffix == "Condition":
        return {"Condition": value}
    if suffix == "GetAtt" and isinstance(value, str):
        value = value.split(".", 1)
    return {f"Fn::{suffix}": value}


CfnLoader.add_multi_constructor("!", _construct_short_tag)


def load_yaml(path: str | os.PathLike[str]) -> dict[str, Any]:
    with open(path, encoding="utf-8") as fh:
        doc = yaml.load(fh, Loader=CfnLoader)
    if not isinstance(doc, dict):
        raise ValueError(f"{path}: not a YAML mapping")
    return doc


# ------------------------------------------------------------------------------------------------ resolving
_NO_VALUE = object()  # AWS::NoValue: removes the enclosing key / list item
_SUB_RE = re.compile(r"\$\{([^}]*)\}")


def default_region(environ: dict[str, str] | None = None) -> str:
    env = os.environ if environ is None else environ
    return env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or "us-east-1"


class Resolver:
    """Evaluates the intrinsic functions a local run can evaluate."""

    def __init__(
        self,
        template: dict[str, Any],
        *,
        region: str,
        account_id: str = DEFAULT_ACCOUNT_ID,
        stack_name: str = DEFAULT_STACK_NAME,
        parameter_overrides: dict[str, str] | None = None,
    ) -> None:
        self.template = template
        self.region = region
        self.account_id = account_id
        self.stack_name = stack_name
        self.resources: dict[str, Any] = template.get("Resources") or {}
        self.mappings: dict[str, Any] = template.get("Mappings") or {}
        self.conditions: dict[str, Any] = template.get("Conditions") or {}
        self._condition_cache: dict[str, bool] = {}
        self.parameters: dict[str, Any] = {}
        overrides = parameter_overrides or {}
        for name, spec in (template.get("Parameters") or {}).items():
            spec = spec or {}
            if name in overrides:
                value: Any = overrides[name]
            elif "Default" in spec:
                value = spec["Default"]
            else:
                value = ""  # no default and no override: harmless empty string
            if str(spec.get("Type", "")).startswith(("CommaDelimitedList", "List<")) and isinstance(value, str):
                value = [v.strip() for v in value.split(",")] if value else []
            elif not isinstance(value, list):
                value = _scalar_str(value)
            self.parameters[name] = value
        self.pseudo = {
            "AWS::Region": region,
            "AWS::AccountId": account_id,
            "AWS::StackName": stack_name,
            "AWS::StackId": f"arn:aws:cloudformation:{region}:{account_id}:stack/{stack_name}/"
            "00000000-0000-0000-0000-000000000000",
            "AWS::Partition": "aws",
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::NotificationARNs": [],
        }

    # public -------------------------------------------------------------------------------------------
    def resolve(self, node: Any) -> Any:
        value = self._resolve(node)
        return None if value is _NO_VALUE else value

    def condition(self, name: str) -> bool:
        if name not in self._condition_cache:
            self._condition_cache[name] = False  # guards against cycles
            self._condition_cache[name] = bool(self._truthy(self.conditions.get(name, False)))
        return self._condition_cache[name]

    # internals ----------------------------------------------------------------------------------------
    def _resolve(self, node: Any) -> Any:
        if isinstance(node, list):
            out = [self._resolve(item) for item in node]
            return [item for item in out if item is not _NO_VALUE]
        if not isinstance(node, dict):
            return node
        if len(node) == 1:
            ((key, arg),) = node.items()
            if key == "Ref":
                return self._ref(self._resolve(arg))
            if key == "Condition" and isinstance(arg, str):
                return self.condition(arg)
            if key.startswith("Fn::"):
                return self._fn(key[4:], arg)
        out = {}
        for key, value in node.items():
            resolved = self._resolve(value)
            if resolved is not _NO_VALUE:
                out[key] = resolved
        return out

    def _ref(self, name: Any) -> Any:
        if not isinstance(name, str):
            return str(name)
        if name == "AWS::NoValue":
            return _NO_VALUE
        if name in self.pseudo:
            return self.pseudo[name]
        if name in self.parameters:
            return self.parameters[name]
        # A resource: locally its logical id is the most useful (and harmless) stand-in.
        return name

    def _get_att(self, logical_id: str, attribute: str) -> str:
        if attribute == "Arn" or attribute.endswith("Arn"):
            rtype = str((self.resources.get(logical_id) or {}).get("Type", "")).split("::")
            service = rtype[1].lower() if len(rtype) > 1 else "local"
            return f"arn:aws:{service}:{self.region}:{self.account_id}:{logical_id}"
        return f"{logical_id}.{attribute}"

    def _sub(self, template: str, variables: dict[str, Any]) -> str:
        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            if name.startswith("!"):
                return "${" + name[1:] + "}"
            name = name.strip()
            if name in variables:
                return _scalar_str(variables[name])
            if "." in name and name not in self.parameters:
                logical_id, attribute = name.split(".", 1)
                return self._get_att(logical_id, attribute)
            value = self._ref(name)
            return "" if value is _NO_VALUE else _scalar_str(value)

        return _SUB_RE.sub(replace, template)

    def _fn(self, name: str, arg: Any) -> Any:
        if name == "If":
            cond, when_true, when_false = arg
            return self._resolve(when_true if self.condition(cond) else when_false)
        if name in ("Equals", "Not", "And", "Or"):
            return self._truthy({f"Fn::{name}": arg})
        if name == "Sub":
            if isinstance(arg, list):
                text, variables = arg[0], self._resolve(arg[1] if len(arg) > 1 else {})
            else:
                text, variables = arg, {}
            return self._sub(str(self._resolve(text)), variables or {})
        value = self._resolve(arg)
        if name == "GetAtt":
            parts = value if isinstance(value, list) else str(value).split(".", 1)
            return self._get_att(str(parts[0]), str(parts[1]) if len(parts) > 1 else "")
        if name == "Join":
            delimiter, items = value
            return str(delimiter).join(_scalar_str(i) for i in (items or []))
        if name == "Select":
            index, items = value
            items = items if isinstance(items, list) else [items]
            return items[int(index)] if 0 <= int(index) < len(items) else ""
        if name == "Split":
            delimiter, text = value
            return str(text).split(str(delimiter))
        if name == "FindInMap":
            map_name, top, second = value[:3]
            try:
                return self._resolve(self.mappings[map_name][top][second])
            except (KeyError, TypeError):
                return value[3]["DefaultValue"] if len(value) > 3 and isinstance(value[3], dict) else ""
        if name == "Base64":
            return base64.b64encode(_scalar_str(value).encode()).decode()
        if name == "GetAZs":
            region = value or self.region
            return [f"{region}{suffix}" for suffix in "abc"]
        if name == "ImportValue":
            return f"imported-{_scalar_str(value)}"
        if name == "Length":
            return len(value) if isinstance(value, list) else 0
        if name == "ToJsonString":
            import json

            return json.dumps(value, separators=(",", ":"))
        # Fn::Cidr, Fn::Transform, ... : nothing sensible locally.
        return f"Fn::{name}"

    def _truthy(self, node: Any) -> bool:
        if isinstance(node, bool):
            return node
        if isinstance(node, str):
            return node.lower() == "true"
        if isinstance(node, dict) and len(node) == 1:
            ((key, arg),) = node.items()
            if key == "Condition":
                return self.condition(arg)
            if key == "Fn::Equals":
                left, right = (self.resolve(v) for v in arg)
                return _scalar_str(left) == _scalar_str(right)
            if key == "Fn::Not":
                return not self._truthy(arg[0] if isinstance(arg, list) else arg)
            if key == "Fn::And":
                return all(self._truthy(a) for a in arg)
            if key == "Fn::Or":
                return any(self._truthy(a) for a in arg)
        return bool(self.resolve(node))


def _scalar_str(value: Any) -> str:
    """CloudFormation's string form of a scalar (booleans are lower-case)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return ""
    if isinstance(value, list):
        return ",".join(_scalar_str(v) for v in value)
    if isinstance(value, dict):
        import json

        return json.dumps(value, separators=(",", ":"))
    return str(value)


# ---------------------------------------------------------------------------------------------- the model
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
    runtime: str = "python3.12"
    timeout_s: float = 3.0
    memory_mb: int = 128
    reserved_concurrency: int | None = None  # ReservedConcurrentExecutions: the most instances at once
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


# ------------------------------------------------------------------------------------------------ building
def merge_globals(global_props: dict[str, Any], props: dict[str, Any]) -> dict[str, Any]:
    """SAM's Globals rules: maps merge (function wins), lists add up (globals first), scalars: function wins."""
    merged = copy.deepcopy(global_props)
    for key, value in props.items():
        current = merged.get(key)
        if isinstance(current, dict) and isinstance(value, dict) and not _is_intrinsic(value):
            merged[key] = merge_globals(current, value)
        elif isinstance(current, list) and isinstance(value, list):
            merged[key] = current + value
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def _is_intrinsic(value: dict[str, Any]) -> bool:
    return (len(value) == 1 and next(iter(value)) in ("Ref", "Condition")) or any(k.startswith("Fn::") for k in value)


def layer_import_paths(content_dir: Path, runtime: str) -> list[Path]:
    """What a layer adds to sys.path: /opt/python (+ /opt/python/lib/<runtime>/site-packages) after `sam build`."""
    python_dir = content_dir / "python"
    if python_dir.is_dir():
        paths = [python_dir]
        site = python_dir / "lib" / runtime / "site-packages"
        if site.is_dir():
            paths.append(site)
        return paths
    return [content_dir]


def load_template(
    path: str | os.PathLike[str],
    *,
    environ: dict[str, str] | None = None,
    parameter_overrides: dict[str, str] | None = None,
    stack_name: str = DEFAULT_STACK_NAME,
    account_id: str = DEFAULT_ACCOUNT_ID,
) -> Template:
    path = Path(path).resolve()
    base = path.parent
    raw = load_yaml(path)
    region = default_region(environ)
    resolver = Resolver(
        raw, region=region, account_id=account_id, stack_name=stack_name, parameter_overrides=parameter_overrides
    )
    resources: dict[str, Any] = raw.get("Resources") or {}
    global_fn = (raw.get("Globals") or {}).get("Function") or {}

    layers: dict[str, Path] = {}
    http_api_ids: list[str] = []
    throttles = {IMPLICIT_HTTP_API: _stage_throttles(resolver.resolve((raw.get("Globals") or {}).get("HttpApi") or {}))}
    for logical_id, resource in resources.items():
        rtype = (resource or {}).get("Type")
        if rtype in LAYER_TYPES:
            props = resolver.resolve(resource.get("Properties") or {})
            content = props.get("ContentUri") or props.get("Content")
            if isinstance(content, str):
                layers[logical_id] = (base / content).resolve()
            else:
                log.warning("layer %s: ContentUri %r is not a local path; ignored", logical_id, content)
        elif rtype == "AWS::Serverless::HttpApi":
            http_api_ids.append(logical_id)
            api_props = merge_globals((raw.get("Globals") or {}).get("HttpApi") or {}, resource.get("Properties") or {})
            throttles[logical_id] = _stage_throttles(resolver.resolve(api_props))

    functions: dict[str, FunctionSpec] = {}
    for logical_id, resource in resources.items():
        resource = resource or {}
        if resource.get("Type") not in FUNCTION_TYPES:
            continue
        if "Condition" in resource and not resolver.condition(resource["Condition"]):
            continue
        props = resolver.resolve(merge_globals(global_fn, resource.get("Properties") or {}))
        spec = _function_spec(logical_id, props, base, layers)
        if spec is not None:
            spec.http_routes = [_throttled(route, throttles) for route in spec.http_routes]
            functions[logical_id] = spec
    return Template(
        path=path,
        region=region,
        account_id=account_id,
        stack_name=stack_name,
        functions=functions,
        http_api_ids=http_api_ids,
    )


def _function_spec(logical_id: str, props: dict[str, Any], base: Path, layers: dict[str, Path]) -> FunctionSpec | None:
    if props.get("PackageType") == "Image":
        log.warning("function %s: PackageType Image is not supported by the local runner; skipped", logical_id)
        return None
    code_uri = props.get("CodeUri")
    if not isinstance(code_uri, str):
        log.warning("function %s: CodeUri %r is not a local path; skipped", logical_id, code_uri)
        return None
    handler = props.get("Handler")
    if not isinstance(handler, str) or "." not in handler:
        log.warning("function %s: Handler %r is not module.function; skipped", logical_id, handler)
        return None
    runtime = str(props.get("Runtime", "python3.12"))
    if not runtime.startswith("python"):
        log.warning("function %s: runtime %s is not a Python runtime; skipped", logical_id, runtime)
        return None

    variables = ((props.get("Environment") or {}).get("Variables")) or {}
    environment = {str(k): _scalar_str(v) for k, v in variables.items()}

    reserved = props.get("ReservedConcurrentExecutions")
    layer_paths: list[Path] = []
    # Lambda extracts layers into /opt in order, later layers overwriting earlier files: later layers win.
    for layer in reversed(props.get("Layers") or []):
        if isinstance(layer, str) and layer in layers:
            layer_paths.extend(layer_import_paths(layers[layer], runtime))
        else:
            log.warning("function %s: layer %r is not a layer of this template; ignored", logical_id, layer)

    spec = FunctionSpec(
        logical_id=logical_id,
        function_name=str(props.get("FunctionName") or logical_id),
        code_uri=(base / code_uri).resolve(),
        handler=handler,
        runtime=runtime,
        timeout_s=float(props.get("Timeout", 3)),
        memory_mb=int(props.get("MemorySize", 128)),
        reserved_concurrency=None if reserved is None else int(reserved),
        environment=environment,
        layer_paths=layer_paths,
    )
    for event_id, event in (props.get("Events") or {}).items():
        etype = (event or {}).get("Type")
        eprops = (event or {}).get("Properties") or {}
        if etype == "HttpApi":
            spec.http_routes.append(_http_route(logical_id, event_id, eprops))
        elif etype in KAFKA_EVENT_TYPES:
            spec.kafka_sources.append(_kafka_source(logical_id, event_id, etype, eprops))
        else:
            log.warning("function %s: event %s of type %s is not run locally", logical_id, event_id, etype)
    return spec


def _http_route(function_id: str, event_id: str, props: dict[str, Any]) -> HttpRoute:
    path = props.get("Path")
    method = props.get("Method")
    if path is None and method is None:
        path, method = "$default", "ANY"
    method = str(method or "ANY").upper()
    if method == "X-AMAZON-APIGATEWAY-ANY-METHOD":
        method = "ANY"
    fmt = str(props.get("PayloadFormatVersion", "2.0"))
    if fmt != "2.0":
        log.warning("function %s: event %s uses payload format %s; the runner sends 2.0", function_id, event_id, fmt)
    return HttpRoute(
        function_id=function_id,
        event_id=event_id,
        method=method,
        path=str(path),
        timeout_ms=int(props.get("TimeoutInMillis", 30_000)),
        payload_format=fmt,
        api_id=str(props.get("ApiId") or IMPLICIT_HTTP_API),
    )


StageThrottles = tuple[dict[str, Any], dict[str, dict[str, Any]]]


def _stage_throttles(api_props: dict[str, Any]) -> StageThrottles:
    """An HttpApi's DefaultRouteSettings and RouteSettings (by route key), as resolved from the template."""
    return api_props.get("DefaultRouteSettings") or {}, api_props.get("RouteSettings") or {}


def _throttled(route: HttpRoute, throttles: dict[str, StageThrottles]) -> HttpRoute:
    """The route with its stage throttle: its RouteSettings over the API's DefaultRouteSettings, per route as on AWS."""
    default, per_route = throttles.get(route.api_id, ({}, {}))
    settings = {**default, **(per_route.get(route.route_key) or {})}
    rate, burst = settings.get("ThrottlingRateLimit"), settings.get("ThrottlingBurstLimit")
    if rate is None and burst is None:
        return route
    throttle = Throttle(
        rate_per_s=ACCOUNT_THROTTLE_RATE_PER_S if rate is None else float(rate),
        burst=ACCOUNT_THROTTLE_BURST if burst is None else int(burst),
    )
    return dataclasses.replace(route, throttle=throttle)


def _kafka_source(function_id: str, event_id: str, kind: str, props: dict[str, Any]) -> KafkaSource:
    group_id = props.get("ConsumerGroupId")
    for config_key in ("AmazonManagedKafkaEventSourceConfig", "SelfManagedKafkaEventSourceConfig"):
        group_id = group_id or (props.get(config_key) or {}).get("ConsumerGroupId")
    topics = props.get("Topics") or []
    if isinstance(topics, str):
        topics = [topics]
    destination = (((props.get("DestinationConfig") or {}).get("OnFailure")) or {}).get("Destination")
    retries = props.get("MaximumRetryAttempts")
    servers = props.get("KafkaBootstrapServers")
    if isinstance(servers, list):
        servers = ",".join(str(s) for s in servers)
    starting = str(props.get("StartingPosition", "LATEST" if kind == "MSK" else "TRIM_HORIZON")).upper()
    if starting == "AT_TIMESTAMP":
        log.warning("%s/%s: StartingPosition AT_TIMESTAMP is run locally as TRIM_HORIZON", function_id, event_id)
    for unsupported in ("FilterCriteria", "MaximumRecordAgeInSeconds"):
        if unsupported in props:
            log.warning("%s/%s: %s is not applied by the local runner", function_id, event_id, unsupported)
    window = props.get("MaximumBatchingWindowInSeconds")
    return KafkaSource(
        function_id=function_id,
        event_id=event_id,
        kind=kind,
        topics=tuple(str(t) for t in topics),
        group_id=str(group_id or function_id),
        starting_position=starting,
        batch_size=int(props.get("BatchSize", DEFAULT_KAFKA_BATCH_SIZE)),
        batching_window_s=DEFAULT_KAFKA_BATCHING_WINDOW_S if window is None else float(window),
        stream_arn=str(props["Stream"]) if props.get("Stream") else None,
        bootstrap_servers=str(servers) if servers else None,
        max_retry_attempts=int(retries) if retries is not None else None,
        on_failure_destination=str(destination) if destination else None,
        report_batch_item_failures="ReportBatchItemFailures" in (props.get("FunctionResponseTypes") or []),
        bisect_batch_on_function_error=str(props.get("BisectBatchOnFunctionError", False)).lower() == "true",
        minimum_pollers=max(1, int((props.get("ProvisionedPollerConfig") or {}).get("MinimumPollers", 1))),
        enabled=str(props.get("Enabled", True)).lower() != "false",
    )


# ---------------------------------------------------------------------------------------------- environment
def function_environment(
    spec: FunctionSpec,
    *,
    base_env: dict[str, str],
    region: str,
    account_id: str = DEFAULT_ACCOUNT_ID,
) -> dict[str, str]:
    """The process environment of a worker of ``spec``.

    The runner's own environment is the base (PATH, HOME ...). Template variables are added, but a variable that
    is already set in the runner's environment wins (like ``sam local invoke --env-vars``), so a local run can
    point at locally started services. Then the variables the Lambda runtime itself sets.
    """
    env = dict(base_env)
    for key, value in spec.environment.items():
        if key not in base_env:
            env[key] = value
    env.update(
        {
            "AWS_LAMBDA_FUNCTION_NAME": spec.function_name,
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(spec.memory_mb),
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{spec.function_name}",
            "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
            "AWS_REGION": region,
            "AWS_DEFAULT_REGION": base_env.get("AWS_DEFAULT_REGION", region),
            "AWS_EXECUTION_ENV": f"AWS_Lambda_{spec.runtime}",
            "LAMBDA_TASK_ROOT": str(spec.code_uri),
            "_HANDLER": spec.handler,
        }
    )
    # Like `sam local`: lets Powertools know it is not on AWS (e.g. the Tracer then stays silent).
    env.setdefault("AWS_SAM_LOCAL", "true")
    return env
