"""Run the functions of template.yaml locally, the way API Gateway and Lambda's Kafka event sources would.

    python local/runner.py [--template template.yaml] [--host 127.0.0.1] [--port 8080] [--workers N]

See ``python local/runner.py --help`` and the package ``local/lambda_runner``.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from lambda_runner.app import main

if __name__ == "__main__":
    sys.exit(main())
