#!/usr/bin/env python3
"""Bring logpipe's backing services up natively (no Docker): Kafka, PostgreSQL, Redis.

Usage::

    python local/services.py up       # start what is missing, create topics, apply migrations
    python local/services.py env      # print the export lines for the running stack
    python local/services.py status   # show each service up/down (exit 1 if any is down)
    python local/services.py down     # stop what *we* started; data stays in place
    python local/services.py down --purge   # ... and remove what lives outside the clone (/var/tmp cluster)
    python local/services.py observe  # Prometheus + the dashboard page, scraping the runner (make observe)

    eval "$(python local/services.py up)"   # progress goes to stderr, only export lines to stdout

Run it with the project's virtualenv interpreter: topic creation uses ``confluent_kafka``, template.yaml is
read with PyYAML and migrations run as ``<same python> -m logpipe.ops.migrate``. One module per service in
``local/backing_services/`` (kafka, postgres, redis), all on one lifecycle (``service.py``).

Services
  Kafka       Apache Kafka 4.1 (KRaft, one node = broker + controller) from Maven Central, resolved with
              ``mvn`` from local/kafka/pom.xml into <state>/kafka/libs (re-resolved only when the pom
              changes), run with the machine's Java 17+. Config: local/kafka/server.properties.template,
              logging: local/kafka/log4j2.properties -> <state>/kafka/logs/server.log.
              Topics: template.yaml's EventsTopic/EventsTopicPartitions (log-events, 6) and
              DeadLetterTopic/DeadLetterTopicPartitions (log-events-dlq, 1: dead letters are rare and one
              partition keeps them in arrival order for inspection/redrive), RF 1.
  PostgreSQL  the system's packages (Debian ``postgresql``); private cluster, database/user/password
              ``logpipe``; superuser ``postgres`` with a random password in <pg home>/superuser-password.
  Redis       the system's ``redis-server``; appendonly, config generated in <state>/redis/redis.conf.

All listen on 127.0.0.1 only. Missing PostgreSQL/Redis binaries are installed with apt-get when run as
root; otherwise the command stops and names the package to install. Missing java/mvn is an error.

Environment
  KAFKA_BOOTSTRAP_SERVERS   use this Kafka instead of starting one (must be reachable)
  DATABASE_URL              use this PostgreSQL instead of starting one (must be reachable)
  REDIS_URL                 use this Redis instead of starting one (must be reachable)
                            Topics are created and migrations applied against given services too.
  LOGPIPE_KAFKA_PORT            broker port (default 9092)
  LOGPIPE_KAFKA_CONTROLLER_PORT KRaft controller port (default 9093)
  LOGPIPE_PG_PORT               PostgreSQL port (default 5432)
  LOGPIPE_REDIS_PORT            Redis port (default 6379)
  LOGPIPE_KAFKA_DOCKER_PORT     add a broker listener on all interfaces, advertised as host.docker.internal,
                                for `sam local invoke` containers (off by default; local/sam-env.json uses 9094)
  LOGPIPE_TOPIC_PARTITIONS      partitions of the events topic (default: template.yaml; grown, never shrunk)
  LOGPIPE_DLQ_PARTITIONS        partitions of the dead-letter topic (default: template.yaml)
  KAFKA_TOPIC, KAFKA_DLQ_TOPIC  topic names (default: template.yaml's EventsTopic, DeadLetterTopic)
  LOGPIPE_KAFKA_HEAP            JVM heap options (default "-Xms256m -Xmx768m")
  LOGPIPE_STATE_DIR             state folder (default <repo>/local/.state)
  LOGPIPE_PG_BINDIR             directory holding initdb/pg_ctl/psql (default: pg_config --bindir,
                                else the highest /usr/lib/postgresql/*/bin, else PATH)

Reuse rules, per service: a service named by its URL variable is only checked and used; else if our
own pid file shows it running and its port answers, it is reused; else if the port already answers
with a usable service (a developer's own Redis or Kafka, a PostgreSQL accepting logpipe/logpipe), it
is reused and never stopped by ``down``; else we start it. A port held by something unusable is an
error that says which variable to set.

State (git-ignored, LOGPIPE_STATE_DIR overrides): <repo>/local/.state/
  kafka/     libs/ (jars + pom hash stamp), data/, logs/server.log, logs/kafka.out, kafka.pid,
             server.properties (rendered at start), cluster-id
  postgres/  data/ (settings in data/logpipe.conf), postgres.log, run/ (unix socket), superuser-password
  redis/     data/ (appendonly), redis.conf, redis.log, redis.pid
  .lock      concurrent `up`/`down` runs wait for each other

Root: PostgreSQL refuses to run as root. When run as root, initdb/pg_ctl run as the ``postgres``
system user (if there is none, a system user ``logpipe`` is created with useradd). If that user cannot
traverse the state folder (e.g. the repo lives under /root), the cluster lives in
/var/tmp/logpipe-<hash of the state path>/postgres instead; the chosen place is recorded in
<state>/postgres/location and shown by ``status``; that folder names its clone in its ``owner`` file.
``down --purge`` removes it, and every ``up``/``down`` removes such folders whose clone is gone.
Kafka and Redis run as the invoking user.

Every wait has a timeout; a service that fails prints the tail of its log and the command exits
non-zero. ``up`` while everything runs changes nothing and takes a few seconds.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from backing_services.cli import main

if __name__ == "__main__":
    sys.exit(main())
