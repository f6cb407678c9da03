"""Pydantic models of API keys and their scopes."""

from datetime import datetime
from enum import StrEnum
from uuid import UUID

from pydantic import Field

from logpipe.models import NO_NUL, CamelModel

# An API key is KEY_PREFIX and SECRET_BYTES random bytes in unpadded URL-safe base64 (logpipe.access.keys).
KEY_PREFIX = "lp_"
SECRET_BYTES = 32


class Scope(StrEnum):
    INGEST = "ingest"
    READ = "read"
    ADMIN = "admin"


class NewApiKey(CamelModel):
    scopes: list[Scope] = Field(min_length=1)
    name: str = Field(default="", max_length=200, pattern=NO_NUL)


class ApiKey(CamelModel):
    """What can be shown of a key after its creation: never the key itself."""

    id: UUID
    organization_id: str
    name: str
    scopes: list[Scope]
    prefix: str
    created_at: datetime
    revoked_at: datetime | None = None


class CreatedApiKey(ApiKey):
    key: str = Field(description="The API key; shown only in this answer")


# GET /api/keys answers at most this many keys a page (a key's JSON is about 300 bytes: far below Lambda's 6 MB).
MAX_KEYS_PER_PAGE = 1000


class ApiKeyList(CamelModel):
    items: list[ApiKey]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next (newer) keys; null on the last page")
