"""The gateway serves the log explorer's static files from its own package, without an API key."""

import json
from pathlib import Path

import pytest

from logpipe.edge.assets import CONTENT_SECURITY_POLICY

EXPLORE = Path(__file__).resolve().parents[3] / "functions" / "gateway" / "explore"


@pytest.fixture
def get(gateway_function, api_request, lambda_context):
    def fetch(path: str, headers: dict[str, str] | None = None, query: dict[str, str] | None = None) -> dict:
        return gateway_function.handler(api_request("GET", path, headers=headers, query=query), lambda_context)

    return fetch


@pytest.mark.parametrize(
    "path, file, content_type",
    [
        ("/explore", "index.html", "text/html; charset=utf-8"),
        ("/explore/index.html", "index.html", "text/html; charset=utf-8"),
        ("/explore/explorer.js", "explorer.js", "text/javascript; charset=utf-8"),
        ("/explore/explorer.css", "explorer.css", "text/css; charset=utf-8"),
    ],
)
def test_each_file_is_served_with_its_type_a_strict_policy_and_revalidation(
    get, path: str, file: str, content_type: str
) -> None:
    answer = get(path)
    assert answer["statusCode"] == 200
    assert answer["body"] == (EXPLORE / file).read_text()
    headers = answer["headers"]
    assert headers["Content-Type"] == content_type
    assert headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
    assert CONTENT_SECURITY_POLICY.startswith("default-src 'self';")
    assert (headers["Cache-Control"], headers["X-Content-Type-Options"]) == ("no-cache", "nosniff")

    again = get(path, headers={"If-None-Match": headers["ETag"]})
    assert (again["statusCode"], again["body"], again["headers"]["ETag"]) == (304, "", headers["ETag"])
    assert get(path, headers={"If-None-Match": '"stale"'})["statusCode"] == 200


def test_the_folder_with_a_slash_redirects_to_the_page_keeping_the_query(get) -> None:
    answer = get("/explore/", query={"q": "disk full", "range": "1h"})
    assert answer["statusCode"] == 308
    assert answer["headers"]["Location"] == "../explore?q=disk+full&range=1h"
    assert get("/explore/")["headers"]["Location"] == "../explore"


@pytest.mark.parametrize(
    "path",
    [
        "/explore/missing.js",
        "/explore/app.py",
        "/explore/..",
        "/explore/%2e%2e%2fapp.py",
        "/explore/..%2Fapp.py",
        "/explore/explorer.js%00",
        "/explore/../app.py",
        "/explore/explore/explorer.js",
    ],
)
def test_anything_but_the_pages_files_is_a_json_404(get, path: str) -> None:
    answer = get(path)
    assert answer["statusCode"] == 404
    body = json.loads(answer["body"])
    assert (body["status"], body["error"]["code"]) == ("error", "not_found")
    assert "import" not in answer["body"]
