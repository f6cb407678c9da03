"""Logins for the database roles of migration 0005: each role gets the password of its Secrets Manager secret.

The deploy-time setup runs this after the migrations, as the owner, so that a function connecting with a role's
secret finds the role with that password (a stack update sets them again). Only the roles the migration creates
are accepted. libpq hashes each password (SCRAM-SHA-256) before it is sent, so the password itself appears in no
statement text or server log.
"""

from collections.abc import Mapping

import psycopg
from psycopg import sql

ROLES = frozenset({"logpipe_reader", "logpipe_writer"})


def grant_logins(database_url: str, passwords: Mapping[str, str]) -> list[str]:
    """Let each role of `passwords` log in with its password; returns the roles set."""
    unknown = sorted(set(passwords) - ROLES)
    if unknown:
        raise ValueError(f"not a role of migration 0005: {', '.join(unknown)}")
    with psycopg.connect(database_url, autocommit=True) as conn:
        for role, password in passwords.items():
            verifier = conn.pgconn.encrypt_password(password.encode(), role.encode(), b"scram-sha-256").decode()
            conn.execute(sql.SQL("ALTER ROLE {} LOGIN PASSWORD {}").format(sql.Identifier(role), sql.Literal(verifier)))
    return sorted(passwords)
