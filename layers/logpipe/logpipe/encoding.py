"""Encodings shared by several parts of the layer: strict base64 (the edge's API Gateway bodies, the sink's Kafka
values) and the keyset cursors of paged answers (the events search, the API keys listing)."""

import base64
import binascii
import json
from datetime import datetime
from uuid import UUID

from logpipe.errors import InvalidQueryError


def strict_base64(encoded: str) -> bytes:
    """Strict base64: binascii checks the alphabet and padding in C, several times faster than b64decode's
    validate=True (a regular expression over the whole value). Raises ValueError (binascii.Error, or a str that
    is not ASCII)."""
    return binascii.a2b_base64(encoded, strict_mode=True)


def encode_cursor(position: tuple[datetime, UUID]) -> str:
    """The cursor of a keyset page: the (time, id) of its last row, opaque to clients (unpadded URL-safe base64 of a
    JSON pair)."""
    at, row_id = position
    raw = json.dumps([at.isoformat(), str(row_id)]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, UUID]:
    """The (time, id) an encode_cursor cursor holds; InvalidQueryError (400, field `cursor`) for any other text."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        at, row_id = json.loads(raw)
        if not (isinstance(at, str) and isinstance(row_id, str)):
            raise ValueError("a cursor holds a time and an id, both as text")
        return datetime.fromisoformat(at), UUID(row_id)
    except (binascii.Error, ValueError, TypeError) as exc:
        raise InvalidQueryError("the cursor is not one this API returned", details={"field": "cursor"}) from exc
