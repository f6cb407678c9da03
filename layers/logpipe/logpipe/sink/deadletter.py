"""Dead letters: records that can never be stored, and the one header scheme that says why.

The same ``x-dlq-*`` headers are written whether the consumer function dead-letters a record itself or the
event source mapping's on-failure destination does (the local runner writes the same names), so replay and
operators read one format (docs/sink.md):

- ``x-dlq-reason``: ``tombstone`` | ``undecodable`` | ``unstorable`` | ``expired`` (function) or
  ``RetryAttemptsExhausted`` (event source mapping)
- ``x-dlq-error``: the error, ``Type: message`` (at most 1,000 characters)
- ``x-dlq-attempts``: invocations that saw the record
- ``x-dlq-source-topic``, ``x-dlq-source-partition``, ``x-dlq-source-offset``: where it came from
- ``x-dlq-failed-at``: ISO 8601 UTC
- ``x-dlq-writer``: who wrote it (the function's name, or the event source mapping's function ARN)
- ``x-dlq-replay-count``: how many times it was replayed before (absent on a first failure)
"""

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from logpipe.adapters import kafka
from logpipe.config import get_settings

HEADER_PREFIX = "x-dlq-"
REPLAY_COUNT_HEADER = "x-dlq-replay-count"


@dataclass(frozen=True)
class DeadLetter:
    """A record that can never be stored, with where it came from and why."""

    key: bytes | None
    value: bytes | None
    reason: str
    error: str
    attempts: int
    source_topic: str
    source_partition: int
    source_offset: int
    writer: str
    extra_headers: dict[str, str] = field(default_factory=dict)

    def headers(self) -> list[tuple[str, bytes]]:
        values = {
            "x-dlq-reason": self.reason,
            "x-dlq-error": self.error[:1000],
            "x-dlq-attempts": str(self.attempts),
            "x-dlq-source-topic": self.source_topic,
            "x-dlq-source-partition": str(self.source_partition),
            "x-dlq-source-offset": str(self.source_offset),
            "x-dlq-failed-at": datetime.now(UTC).isoformat(),
            "x-dlq-writer": self.writer,
            **self.extra_headers,
        }
        return [(name, value.encode()) for name, value in values.items()]


def publish(letters: Sequence[DeadLetter]) -> None:
    """Publish to the dead-letter topic and wait for the ack; only then may source offsets be committed."""
    topic = get_settings().kafka_dlq_topic
    kafka.publish_records([(topic, letter.key, letter.value, letter.headers()) for letter in letters])


@dataclass(frozen=True)
class ReceivedDeadLetter:
    """A dead letter read back from the dead-letter topic (what replay works on)."""

    key: bytes | None
    value: bytes | None
    headers: dict[str, str]
    partition: int
    offset: int

    @property
    def reason(self) -> str:
        return self.headers.get("x-dlq-reason", "")

    @property
    def origin(self) -> tuple[str, int, int] | None:
        """(source topic, partition, offset), or None when the headers do not say."""
        try:
            return (
                self.headers["x-dlq-source-topic"],
                int(self.headers["x-dlq-source-partition"]),
                int(self.headers["x-dlq-source-offset"]),
            )
        except (KeyError, ValueError):
            return None

    @property
    def replay_count(self) -> int:
        try:
            return int(self.headers.get(REPLAY_COUNT_HEADER, "0"))
        except ValueError:
            return 0


def decode_headers(raw: list[tuple[str, bytes | None]] | None) -> dict[str, str]:
    """The dead-letter headers of a Kafka message as text (later duplicates win)."""
    return {
        name: (value or b"").decode("utf-8", "replace") for name, value in raw or [] if name.startswith(HEADER_PREFIX)
    }
