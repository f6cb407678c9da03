"""Static files a function serves from its own package (the gateway's log explorer page).

The folder's files are read once, at cold start, into a table by name: a request names a file of that table or
gets the one 404 error, so no path (`..`, `/`, an encoded slash) can reach anything else. Every file is answered
with its Content-Type, a strict Content-Security-Policy (the page loads nothing from another origin, runs no inline
script or style) and `Cache-Control: no-cache` with a strong ETag: a browser keeps a copy but revalidates it, and a
304 answers an unchanged file, so a new deployment is picked up on the next load.
"""

import hashlib
from dataclasses import dataclass
from pathlib import Path

from aws_lambda_powertools.event_handler import Response

from logpipe.errors import AssetNotFoundError

CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
}
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
)
_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "Cache-Control": "no-cache",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


@dataclass(frozen=True)
class Asset:
    body: str
    content_type: str
    etag: str


class AssetFolder:
    """The text files (HTML, JavaScript, CSS) directly in `folder`, by name."""

    def __init__(self, folder: Path) -> None:
        self.assets = {path.name: _load(path) for path in sorted(folder.iterdir()) if path.suffix in CONTENT_TYPES}

    def answer(self, name: str, if_none_match: str | None = None) -> Response:
        asset = self.assets.get(name)
        if asset is None:
            raise AssetNotFoundError(f"no file {name!r} here", details={"available": sorted(self.assets)})
        headers = {**_HEADERS, "ETag": asset.etag}
        if if_none_match and asset.etag in (tag.strip() for tag in if_none_match.split(",")):
            return Response(304, None, "", headers)
        return Response(200, asset.content_type, asset.body, headers)


def _load(path: Path) -> Asset:
    body = path.read_text(encoding="utf-8")
    digest = hashlib.sha256(body.encode()).hexdigest()[:32]
    return Asset(body=body, content_type=CONTENT_TYPES[path.suffix], etag=f'"{digest}"')
