"""What the local stack is asked for: ports, state folder, named services, and the topics of template.yaml."""

from __future__ import annotations

import os
import shlex
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

import yaml

from .process import HOST, ServiceError

REPO = Path(__file__).resolve().parents[2]
TEMPLATE = REPO / "template.yaml"
PG_DB = PG_USER = PG_PASSWORD = "logpipe"


def state_dir() -> Path:
    return Path(os.environ.get("LOGPIPE_STATE_DIR") or REPO / "local" / ".state").resolve()


def _int_env(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ServiceError(f"{name}={raw!r} is not an integer") from None
    if value <= 0:
        raise ServiceError(f"{name}={raw!r} must be positive")
    return value


@dataclass(frozen=True)
class Topic:
    name: str
    partitions: int


def template_topics(template: Path = TEMPLATE) -> tuple[Topic, Topic]:
    """The events topic and the dead-letter topic, as template.yaml's parameters define them for AWS too."""

    class Loader(yaml.SafeLoader):
        pass

    Loader.add_multi_constructor("!", lambda loader, suffix, node: None)  # intrinsics are irrelevant here
    parameters = (yaml.load(template.read_text(), Loader=Loader) or {}).get("Parameters") or {}

    def default(name: str) -> str:
        try:
            return str(parameters[name]["Default"])
        except (KeyError, TypeError):
            raise ServiceError(f"{template}: parameter {name} with a Default is missing") from None

    return (
        Topic(default("EventsTopic"), int(default("EventsTopicPartitions"))),
        Topic(default("DeadLetterTopic"), int(default("DeadLetterTopicPartitions"))),
    )


@dataclass(frozen=True)
class Config:
    state: Path
    kafka_port: int
    kafka_controller_port: int
    kafka_docker_port: int | None  # a DOCKER listener for `sam local invoke` containers, when asked for
    pg_port: int
    redis_port: int
    topics: tuple[Topic, Topic]
    kafka_heap: list[str]
    # URLs named by the user (None = we provide the service)
    kafka_external: str | None
    database_external: str | None
    redis_external: str | None

    @classmethod
    def from_env(cls) -> Config:
        events, dead_letters = template_topics()
        return cls(
            state=state_dir(),
            kafka_port=_int_env("LOGPIPE_KAFKA_PORT", 9092),
            kafka_controller_port=_int_env("LOGPIPE_KAFKA_CONTROLLER_PORT", 9093),
            kafka_docker_port=_int_env("LOGPIPE_KAFKA_DOCKER_PORT", 0) or None,
            pg_port=_int_env("LOGPIPE_PG_PORT", 5432),
            redis_port=_int_env("LOGPIPE_REDIS_PORT", 6379),
            topics=(
                Topic(
                    os.environ.get("KAFKA_TOPIC") or events.name,
                    _int_env("LOGPIPE_TOPIC_PARTITIONS", events.partitions),
                ),
                Topic(
                    os.environ.get("KAFKA_DLQ_TOPIC") or dead_letters.name,
                    _int_env("LOGPIPE_DLQ_PARTITIONS", dead_letters.partitions),
                ),
            ),
            kafka_heap=shlex.split(os.environ.get("LOGPIPE_KAFKA_HEAP") or "-Xms256m -Xmx768m"),
            kafka_external=os.environ.get("KAFKA_BOOTSTRAP_SERVERS") or None,
            database_external=os.environ.get("DATABASE_URL") or None,
            redis_external=os.environ.get("REDIS_URL") or None,
        )

    @property
    def bootstrap_servers(self) -> str:
        return self.kafka_external or f"{HOST}:{self.kafka_port}"

    @property
    def database_url(self) -> str:
        return self.database_external or f"postgresql://{PG_USER}:{PG_PASSWORD}@{HOST}:{self.pg_port}/{PG_DB}"

    @property
    def redis_url(self) -> str:
        return self.redis_external or f"redis://{HOST}:{self.redis_port}/0"

    def env_lines(self) -> list[str]:
        db = urllib.parse.urlsplit(self.database_url)
        events, dead_letters = self.topics
        values = {
            "KAFKA_BOOTSTRAP_SERVERS": self.bootstrap_servers,
            "KAFKA_TOPIC": events.name,
            "KAFKA_DLQ_TOPIC": dead_letters.name,
            "DATABASE_URL": self.database_url,
            "REDIS_URL": self.redis_url,
            # template.yaml wires the functions for AWS (MSK IAM, the database and cache secrets); set here, these
            # win under the runner and turn that wiring off for local services.
            "KAFKA_AUTH": "none",
            "DATABASE_SECRET_ARN": "",
            "REDIS_SECRET_ARN": "",
            "PGHOST": db.hostname or HOST,
            "PGPORT": str(db.port or 5432),
            "PGUSER": urllib.parse.unquote(db.username or ""),
            "PGPASSWORD": urllib.parse.unquote(db.password or ""),
            "PGDATABASE": urllib.parse.unquote(db.path.lstrip("/")),
        }
        return [f"export {k}={shlex.quote(v)}" for k, v in values.items()]
