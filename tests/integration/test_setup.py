"""The deploy-time setup against the real broker and database: topics created, grown, migrations applied, the
database roles given the passwords of their secrets (moto for Secrets Manager, tests/conftest.py)."""

import os
import urllib.parse
import uuid

import psycopg
import pytest
from confluent_kafka.admin import AdminClient

from logpipe.ops import setup
from logpipe.ops.roles import grant_logins
from tests.integration.test_database_roles import LOCAL_PASSWORDS

BOOTSTRAP = os.environ["KAFKA_BOOTSTRAP_SERVERS"]
EVENTS_TOPIC = [{"Name": "log-events", "Partitions": 6}]


def partitions(name: str) -> int:
    return len(AdminClient({"bootstrap.servers": BOOTSTRAP}).list_topics(timeout=10).topics[name].partitions)


def test_setup_creates_then_grows_the_topics_and_migrates() -> None:
    events, dead = f"setup-events-{uuid.uuid4().hex[:8]}", f"setup-dlq-{uuid.uuid4().hex[:8]}"
    request = {
        "BootstrapServers": BOOTSTRAP,
        "Topics": [{"Name": events, "Partitions": "2"}, {"Name": dead, "Partitions": 1}],
    }
    assert setup.run(setup.Request.model_validate(request)) == {"BootstrapServers": BOOTSTRAP}
    assert (partitions(events), partitions(dead)) == (2, 1)
    request["Topics"][0]["Partitions"] = "3"  # an update asking for more partitions grows the topic
    setup.run(setup.Request.model_validate(request))
    assert (partitions(events), partitions(dead)) == (3, 1)
    setup.run(setup.Request.model_validate(request))  # again: nothing to do, no error


def test_setup_gives_each_database_role_the_password_of_its_secret(settings, secrets_manager) -> None:
    roles = [
        {"Role": role, "SecretArn": secrets_manager({"username": role, "password": password})}
        for role, password in LOCAL_PASSWORDS.items()
    ]
    request = {"BootstrapServers": BOOTSTRAP, "Topics": EVENTS_TOPIC, "DatabaseRoles": roles}
    setup.run(setup.Request.model_validate(request))
    parts = urllib.parse.urlsplit(settings.database_url)
    for role, password in LOCAL_PASSWORDS.items():
        url = urllib.parse.urlunsplit(parts._replace(netloc=f"{role}:{password}@{parts.hostname}:{parts.port}"))
        with psycopg.connect(url) as conn:
            assert conn.execute("SELECT current_user").fetchone() == (role,)


def test_setup_refuses_a_role_secret_naming_another_user(secrets_manager) -> None:
    roles = [{"Role": "logpipe_reader", "SecretArn": secrets_manager({"username": "logpipe", "password": "pw"})}]
    request = {"BootstrapServers": BOOTSTRAP, "Topics": EVENTS_TOPIC, "DatabaseRoles": roles}
    with pytest.raises(ValueError, match="names the user logpipe"):
        setup.run(setup.Request.model_validate(request))


def test_setup_sets_no_login_for_a_role_the_migrations_do_not_create(settings) -> None:
    with pytest.raises(ValueError, match="not a role of migration 0005: logpipe"):
        grant_logins(settings.database_url, {"logpipe": "owner-password"})
