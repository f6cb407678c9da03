#!/usr/bin/env python3
"""The native stand-in for Grafana: serves the dashboard page and proxies Prometheus' query API to it.

    python local/dashboard/serve.py --port 3000 --prometheus http://127.0.0.1:9090

GET /                    index.html: draws every panel of local/grafana/dashboards/logpipe.json
GET /logpipe.json        that dashboard (the file Grafana is provisioned with under docker-compose)
GET /vendor/...          uPlot, vendored from npm (no CDN: it works offline)
GET /api/v1/query_range  (and other /api/v1/ reads) forwarded to Prometheus
GET /healthz             200 once serving

Standard library only; listens on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import http.server
import urllib.error
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
DASHBOARD_JSON = HERE.parent / "grafana" / "dashboards" / "logpipe.json"
FILES = {
    "/": (HERE / "index.html", "text/html; charset=utf-8"),
    "/logpipe.json": (DASHBOARD_JSON, "application/json"),
    "/vendor/uPlot.iife.min.js": (HERE / "vendor" / "uPlot.iife.min.js", "text/javascript"),
    "/vendor/uPlot.min.css": (HERE / "vendor" / "uPlot.min.css", "text/css"),
}


def handler_for(prometheus: str) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/healthz":
                self._send(200, b"ok\n", "text/plain")
            elif path in FILES:
                file, content_type = FILES[path]
                self._send(200, file.read_bytes(), content_type)
            elif path.startswith("/api/v1/"):
                self._proxy()
            else:
                self._send(404, b"not found\n", "text/plain")

        def _proxy(self) -> None:
            try:
                with urllib.request.urlopen(prometheus.rstrip("/") + self.path, timeout=10) as response:
                    self._send(response.status, response.read(), response.headers.get("content-type", ""))
            except urllib.error.HTTPError as exc:
                self._send(exc.code, exc.read(), exc.headers.get("content-type", "application/json"))
            except OSError as exc:
                body = f'{{"status":"error","error":"prometheus unreachable: {type(exc).__name__}"}}'.encode()
                self._send(502, body, "application/json")

        def _send(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("content-type", content_type)
            self.send_header("content-length", str(len(body)))
            self.send_header("cache-control", "no-store")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    return Handler


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=3000)
    parser.add_argument("--prometheus", default="http://127.0.0.1:9090")
    args = parser.parse_args()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", args.port), handler_for(args.prometheus))
    print(f"dashboard on http://127.0.0.1:{server.server_port}/ (Prometheus {args.prometheus})", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
