"""A local runner for AWS SAM templates: API Gateway HTTP API + Kafka event source mappings.

It knows the Lambda contract and ``template.yaml``, never the business logic:

- :mod:`.cfn_yaml`      reads YAML with CloudFormation's short tags;
- :mod:`.intrinsics`    resolves intrinsic functions (a table of the ones SAM templates use);
- :mod:`.sam_model`     the functions, routes, event sources and settings the runner needs, with AWS's defaults;
- :mod:`.template`      loads the template: parameters, conditions, Globals, functions and their events;
- :mod:`.environment`   a function's environment variables as Lambda would set them;
- :mod:`.events`        builds API Gateway v2 / MSK events and maps handler results back to HTTP;
- :mod:`.workers`       per-function pools of worker processes (one invocation at a time each, timeouts);
- :mod:`.worker_process` the code that runs inside a worker (stdlib only, like the Lambda runtime);
- :mod:`.http_api`      the raw ASGI app served by uvicorn (routing, limits);
- :mod:`.throttling`    the stage's throttle (rate and burst from the template), refusing the excess with 429;
- :mod:`.metrics`       the runner's Prometheus metrics and the functions' EMF lines turned into series;
- :mod:`.logs`          the functions' log lines, forwarded with the request they belong to;
- :mod:`.kafka_source`  one process per Kafka event source: its consumers and its own function instances;
- :mod:`.kafka_poller`  one consumer thread (batching, commits, retries, bisection, DLQ, lag);
- :mod:`.invoke`        one invocation from the command line, printed like ``sam local invoke``;
- :mod:`.testing`       helpers the tests use to start a runner;
- :mod:`.app`           wiring, CLI, signals and graceful shutdown.
"""
