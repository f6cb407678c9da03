"""Cost of the runner's metrics on the hot path: CPU per request of what /metrics adds to one HTTP invocation.

Per request the runner records the HTTP request (counter + histogram) and the invocation (counter + histogram), and
parses and records the producer's one EMF line from the instance's stdout (instance gauges are sampled once a second,
off the request path). This measures exactly those calls, in prometheus_client's multiprocess mode (as the runner runs),
as process CPU time per request. Prints one JSON object on its last line (`make bench` convention).

    python bench/metrics.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

EMF_LINE = (
    b'{"_aws":{"Timestamp":1764300000000,"CloudWatchMetrics":[{"Namespace":"Logpipe","Dimensions":[["service"]],'
    b'"Metrics":[{"Name":"log_events_received_total","Unit":"Count"}]}]},"service":"producer",'
    b'"log_events_received_total":[1.0]}'
)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    requests = 2_000 if parser.parse_args().quick else 50_000
    with tempfile.TemporaryDirectory() as directory:
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = directory
        from local.lambda_runner.metrics import instruments

        metrics = instruments()
        started = time.process_time()
        for _ in range(requests):
            metrics.record_emf("ProducerFunction", json.loads(EMF_LINE))
            metrics.invocation("ProducerFunction", "ok", 0.004)
            metrics.http_request("ProducerFunction", "POST /api/logs", 202, 0.005)
        cpu_us = (time.process_time() - started) / requests * 1e6
        from local.lambda_runner.metrics import exposition

        started = time.process_time()
        body, _ = exposition()
        scrape_ms = (time.process_time() - started) * 1000
    print(f"metrics: {cpu_us:.1f} us CPU per request, scrape {scrape_ms:.1f} ms", file=sys.stderr)
    print(
        json.dumps(
            {
                "requests": requests,
                "cpu_us_per_request": round(cpu_us, 1),
                "scrape_cpu_ms": round(scrape_ms, 1),
                "exposition_bytes": len(body),
            }
        )
    )


if __name__ == "__main__":
    main()
