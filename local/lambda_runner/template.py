"""Read a SAM template the way `sam local` does: Globals, functions, layers, HttpApi routes and Kafka events.

The YAML is read by :mod:`.cfn_yaml`, intrinsics are evaluated by :mod:`.intrinsics`, and the result is the
:mod:`.sam_model`. What the runner cannot run locally (image functions, non-Python runtimes, remote code or
layers, other event types) is skipped with a warning.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import os
from pathlib import Path
from typing import Any

from .cfn_yaml import load_yaml
from .intrinsics import Resolver, is_intrinsic, scalar_str
from .sam_model import (
    ACCOUNT_THROTTLE_BURST,
    ACCOUNT_THROTTLE_RATE_PER_S,
    DEFAULT_ACCOUNT_ID,
    DEFAULT_KAFKA_BATCH_SIZE,
    DEFAULT_KAFKA_BATCHING_WINDOW_S,
    DEFAULT_RUNTIME,
    DEFAULT_STACK_NAME,
    IMPLICIT_HTTP_API,
    FunctionSpec,
    HttpRoute,
    KafkaSource,
    Template,
    Throttle,
)

log = logging.getLogger("runner")

FUNCTION_TYPES = ("AWS::Serverless::Function",)
LAYER_TYPES = ("AWS::Serverless::LayerVersion", "AWS::Lambda::LayerVersion")
HTTP_API_TYPES = ("AWS::Serverless::HttpApi",)
KAFKA_EVENT_TYPES = ("MSK", "SelfManagedKafka")


def default_region(environ: dict[str, str] | None = None) -> str:
    env = os.environ if environ is None else environ
    return env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or "us-east-1"


def merge_globals(global_props: dict[str, Any], props: dict[str, Any]) -> dict[str, Any]:
    """SAM's Globals rules: maps merge (function wins), lists add up (globals first), scalars: function wins."""
    merged = copy.deepcopy(global_props)
    for key, value in props.items():
        current = merged.get(key)
        if isinstance(current, dict) and isinstance(value, dict) and not is_intrinsic(value):
            merged[key] = merge_globals(current, value)
        elif isinstance(current, list) and isinstance(value, list):
            merged[key] = current + value
        else:
            merged[key] = copy.deepcopy(value)
    return merged


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
    raw = load_yaml(path)
    region = default_region(environ)
    resolver = Resolver(
        raw, region=region, account_id=account_id, stack_name=stack_name, parameter_overrides=parameter_overrides
    )
    throttles = _http_api_throttles(raw, resolver)
    functions = _functions(raw, resolver, base=path.parent, throttles=throttles)
    return Template(
        path=path,
        region=region,
        account_id=account_id,
        stack_name=stack_name,
        functions=functions,
        http_api_ids=[logical_id for logical_id, _ in _resources(raw, HTTP_API_TYPES)],
    )


def _resources(raw: dict[str, Any], types: tuple[str, ...]) -> list[tuple[str, dict[str, Any]]]:
    """(logical id, resource) of the template's resources of these types, in template order."""
    resources: dict[str, Any] = raw.get("Resources") or {}
    return [(logical_id, r) for logical_id, r in resources.items() if (r or {}).get("Type") in types]


def _layers(raw: dict[str, Any], resolver: Resolver, base: Path) -> dict[str, Path]:
    """Each local layer's content directory, by logical id."""
    layers: dict[str, Path] = {}
    for logical_id, resource in _resources(raw, LAYER_TYPES):
        props = resolver.resolve(resource.get("Properties") or {})
        content = props.get("ContentUri") or props.get("Content")
        if isinstance(content, str):
            layers[logical_id] = (base / content).resolve()
        else:
            log.warning("layer %s: ContentUri %r is not a local path; ignored", logical_id, content)
    return layers


def _http_api_throttles(raw: dict[str, Any], resolver: Resolver) -> dict[str, StageThrottles]:
    """The stage throttles of the implicit HTTP API and of each AWS::Serverless::HttpApi, by logical id."""
    global_api = (raw.get("Globals") or {}).get("HttpApi") or {}
    throttles = {IMPLICIT_HTTP_API: _stage_throttles(resolver.resolve(global_api))}
    for logical_id, resource in _resources(raw, HTTP_API_TYPES):
        api_props = merge_globals(global_api, resource.get("Properties") or {})
        throttles[logical_id] = _stage_throttles(resolver.resolve(api_props))
    return throttles


def _functions(
    raw: dict[str, Any], resolver: Resolver, *, base: Path, throttles: dict[str, StageThrottles]
) -> dict[str, FunctionSpec]:
    """The functions the runner can run (their Condition true), with Globals.Function merged in."""
    layers = _layers(raw, resolver, base)
    global_fn = (raw.get("Globals") or {}).get("Function") or {}
    functions: dict[str, FunctionSpec] = {}
    for logical_id, resource in _resources(raw, FUNCTION_TYPES):
        if "Condition" in resource and not resolver.condition(resource["Condition"]):
            continue
        props = resolver.resolve(merge_globals(global_fn, resource.get("Properties") or {}))
        spec = _function_spec(logical_id, props, base, layers)
        if spec is not None:
            spec.http_routes = [_throttled(route, throttles) for route in spec.http_routes]
            functions[logical_id] = spec
    return functions


def _function_spec(logical_id: str, props: dict[str, Any], base: Path, layers: dict[str, Path]) -> FunctionSpec | None:
    if not _runs_locally(logical_id, props):
        return None
    variables = ((props.get("Environment") or {}).get("Variables")) or {}
    reserved = props.get("ReservedConcurrentExecutions")
    runtime = str(props.get("Runtime", DEFAULT_RUNTIME))
    spec = FunctionSpec(
        logical_id=logical_id,
        function_name=str(props.get("FunctionName") or logical_id),
        code_uri=(base / props["CodeUri"]).resolve(),
        handler=props["Handler"],
        runtime=runtime,
        timeout_s=float(props.get("Timeout", 3)),
        memory_mb=int(props.get("MemorySize", 128)),
        reserved_concurrency=None if reserved is None else int(reserved),
        provisioned_concurrency=_provisioned_concurrency(logical_id, props),
        environment={str(k): scalar_str(v) for k, v in variables.items()},
        layer_paths=_layer_paths(logical_id, props.get("Layers") or [], layers, runtime),
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


def _provisioned_concurrency(logical_id: str, props: dict[str, Any]) -> int:
    """ProvisionedConcurrentExecutions of the function's alias; 0 without ProvisionedConcurrencyConfig. SAM sets it on
    the alias AutoPublishAlias publishes, and refuses it without one."""
    config = props.get("ProvisionedConcurrencyConfig")
    if not config:
        return 0
    if not props.get("AutoPublishAlias"):
        raise ValueError(f"function {logical_id}: ProvisionedConcurrencyConfig needs AutoPublishAlias (SAM refuses it)")
    return int(config["ProvisionedConcurrentExecutions"])


def _runs_locally(logical_id: str, props: dict[str, Any]) -> bool:
    """Whether the runner can run the function: Zip package, local CodeUri, module.function handler, Python."""
    if props.get("PackageType") == "Image":
        log.warning("function %s: PackageType Image is not supported by the local runner; skipped", logical_id)
        return False
    code_uri = props.get("CodeUri")
    if not isinstance(code_uri, str):
        log.warning("function %s: CodeUri %r is not a local path; skipped", logical_id, code_uri)
        return False
    handler = props.get("Handler")
    if not isinstance(handler, str) or "." not in handler:
        log.warning("function %s: Handler %r is not module.function; skipped", logical_id, handler)
        return False
    runtime = str(props.get("Runtime", DEFAULT_RUNTIME))
    if not runtime.startswith("python"):
        log.warning("function %s: runtime %s is not a Python runtime; skipped", logical_id, runtime)
        return False
    return True


def _layer_paths(logical_id: str, refs: list[Any], layers: dict[str, Path], runtime: str) -> list[Path]:
    """The function's layers on sys.path. Lambda extracts layers into /opt in order, later layers overwriting
    earlier files: later layers win, so they come first."""
    paths: list[Path] = []
    for layer in reversed(refs):
        if isinstance(layer, str) and layer in layers:
            paths.extend(layer_import_paths(layers[layer], runtime))
        else:
            log.warning("function %s: layer %r is not a layer of this template; ignored", logical_id, layer)
    return paths


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
