"""A local runner for AWS SAM templates: API Gateway HTTP API + Kafka event source mappings.

It knows the Lambda contract and ``template.yaml``, never the business logic:

- :mod:`.template`      loads the template (CloudFormation short tags), resolves intrinsics, merges Globals;
- :mod:`.events`        builds API Gateway v2 / MSK events and maps handler results back to HTTP;
- :mod:`.workers`       per-function pools of worker processes (one invocation at a time each, timeouts);
- :mod:`.worker_process` the code that runs inside a worker (stdlib only, like the Lambda runtime);
- :mod:`.http_api`      the raw ASGI app served by uvicorn (routing, limits);
- :mod:`.kafka_source`  one process per Kafka event source: its consumers and its own function instances;
- :mod:`.kafka_poller`  one consumer thread (batching, commits, retries, bisection, DLQ, lag);
- :mod:`.app`           wiring, CLI, signals and graceful shutdown.
"""
