"""API keys of an organization: creation, listing (in pages, with the keyset cursor of the events search) and
revocation.

A key is `lp_` + 32 random bytes (URL-safe base64). Only its SHA-256 is stored: a key this random cannot be
guessed or brute-forced from its hash, so a slow password hash (bcrypt, scrypt) would add milliseconds per
uncached check and no protection. Revocation drops the key from the caches logpipe.access.auth keeps.
"""

import secrets
from datetime import UTC, datetime
from uuid import UUID, uuid4

from logpipe.access import auth, key_store
from logpipe.access.models import KEY_PREFIX, SECRET_BYTES, ApiKey, ApiKeyList, CreatedApiKey, Scope
from logpipe.config import Settings
from logpipe.encoding import decode_cursor, encode_cursor
from logpipe.errors import ApiKeyNotFoundError
from logpipe.observability import logger


def create_key(organization_id: str, scopes: list[Scope], name: str = "") -> CreatedApiKey:
    secret = KEY_PREFIX + secrets.token_urlsafe(SECRET_BYTES)
    info = ApiKey(
        id=uuid4(),
        organization_id=organization_id,
        name=name,
        scopes=sorted(set(scopes)),
        prefix=secret[:10],
        created_at=datetime.now(UTC),
    )
    key_store.insert_key(info, auth.hash_key(secret))
    logger.info("api key created", extra={"organization_id": organization_id, "key_id": str(info.id)})
    return CreatedApiKey(**info.model_dump(), key=secret)


def list_keys(organization_id: str, limit: int, cursor: str | None) -> ApiKeyList:
    """A page of the organization's keys, oldest first: at most `limit`, after the key `cursor` names (the
    `nextCursor` of the previous page; InvalidQueryError for any other text)."""
    after = decode_cursor(cursor) if cursor else None
    found = key_store.list_keys(organization_id, limit + 1, after)  # one more than asked says whether more follow
    page = found[:limit]
    more = len(found) > limit
    return ApiKeyList(items=page, next_cursor=encode_cursor((page[-1].created_at, page[-1].id)) if more else None)


def revoke_key(organization_id: str, key_id: UUID, settings: Settings) -> None:
    """Revoke one of the organization's keys; another organization's key id is simply not found. Revoking a
    revoked key again marks it revoked in the caches again (the retry of a revocation Redis missed)."""
    key_hash = key_store.revoke_key(organization_id, key_id)
    if key_hash is None:
        raise ApiKeyNotFoundError(f"no API key {key_id}")
    auth.forget(key_hash, settings)
    logger.info("api key revoked", extra={"organization_id": organization_id, "key_id": str(key_id)})
