"""Replay dead letters after a fix: `python -m logpipe.ops.replay [--dry-run]` (or `make replay`).

Reads the dead-letter topic from where the last replay stopped (consumer group ``logpipe-replay``) up to its end
as of the start, re-publishes each replayable record to its source topic with its original key and value, and
commits the dead-letter offsets only after the broker acknowledged the re-published records. So a second run
replays nothing again, and an interrupted run that replays a record twice stores it once anyway (the consumer
deduplicates per organization and id).

Not replayed (and skipped for good): tombstones (nothing to store) and records already replayed
``--max-replays`` times (they keep failing: fix them by hand). ``--dry-run`` lists what would be replayed,
publishes and commits nothing.
"""

import argparse
import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field

from confluent_kafka import Consumer, KafkaError, TopicPartition

from logpipe.adapters import kafka
from logpipe.config import Settings, get_settings
from logpipe.sink.deadletter import REPLAY_COUNT_HEADER, ReceivedDeadLetter, decode_headers

REPLAY_GROUP = "logpipe-replay"
POLL_TIMEOUT_S = 1.0
EMPTY_POLLS_BEFORE_GIVING_UP = 10


@dataclass
class ReplayReport:
    replayed: int = 0
    skipped: int = 0
    dry_run: bool = False
    records: list[dict] = field(default_factory=list)


def replay(
    settings: Settings, *, dry_run: bool = False, max_replays: int = 3, group: str = REPLAY_GROUP
) -> ReplayReport:
    report = ReplayReport(dry_run=dry_run)
    consumer = kafka.consumer(group)
    try:
        letters = list(_read_to_end(consumer, settings.kafka_dlq_topic))
        outgoing = []
        for letter in letters:
            verdict = _verdict(letter, max_replays)
            report.records.append(_describe(letter, verdict))
            if verdict != "replay":
                report.skipped += 1
                continue
            topic = letter.origin[0] if letter.origin else settings.kafka_topic
            headers = [(REPLAY_COUNT_HEADER, str(letter.replay_count + 1).encode())]
            outgoing.append((topic, letter.key, letter.value, headers))
        report.replayed = len(outgoing)
        if not dry_run:
            kafka.publish_records(outgoing)  # raises unless every record was acknowledged
            _commit_past(consumer, letters, settings.kafka_dlq_topic)
    finally:
        consumer.close()
    return report


def _verdict(letter: ReceivedDeadLetter, max_replays: int) -> str:
    if letter.value is None:
        return "skip: tombstone"
    if letter.replay_count >= max_replays:
        return f"skip: replayed {letter.replay_count} times already"
    return "replay"


def _describe(letter: ReceivedDeadLetter, verdict: str) -> dict:
    return {
        "dlq_partition": letter.partition,
        "dlq_offset": letter.offset,
        "reason": letter.reason,
        "origin": list(letter.origin) if letter.origin else None,
        "verdict": verdict,
    }


def _read_to_end(consumer: Consumer, topic: str) -> Iterator[ReceivedDeadLetter]:
    """Every message from the group's committed offsets to the end each partition had when this started."""
    metadata = consumer.list_topics(topic, timeout=10)
    partitions = [TopicPartition(topic, p) for p in metadata.topics[topic].partitions]
    ends = {tp.partition: consumer.get_watermark_offsets(tp, timeout=10)[1] for tp in partitions}
    committed = consumer.committed(partitions, timeout=10)
    starts = {tp.partition: tp.offset for tp in committed}
    pending = {p for p, end in ends.items() if end > max(starts[p], 0)}
    if not pending:
        return
    consumer.assign(partitions)
    empty_polls = 0
    while pending and empty_polls < EMPTY_POLLS_BEFORE_GIVING_UP:
        message = consumer.poll(POLL_TIMEOUT_S)
        if message is None:
            empty_polls += 1
            continue
        if message.error() is not None:
            if message.error().code() != KafkaError._PARTITION_EOF:
                raise RuntimeError(f"reading {topic}: {message.error().str()}")
            continue
        empty_polls = 0
        if message.offset() >= ends[message.partition()]:
            pending.discard(message.partition())
            continue
        yield ReceivedDeadLetter(
            key=message.key(),
            value=message.value(),
            headers=decode_headers(message.headers()),
            partition=message.partition(),
            offset=message.offset(),
        )
        if message.offset() + 1 >= ends[message.partition()]:
            pending.discard(message.partition())
    if pending:
        raise RuntimeError(f"could not read {topic} to its end (partitions {sorted(pending)})")


def _commit_past(consumer: Consumer, letters: list[ReceivedDeadLetter], topic: str) -> None:
    last: dict[int, int] = {}
    for letter in letters:
        last[letter.partition] = max(letter.offset, last.get(letter.partition, -1))
    if last:
        consumer.commit(offsets=[TopicPartition(topic, p, o + 1) for p, o in last.items()], asynchronous=False)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m logpipe.ops.replay", description=__doc__.splitlines()[0])
    parser.add_argument("--dry-run", action="store_true", help="list what would be replayed; publish nothing")
    parser.add_argument("--max-replays", type=int, default=3, help="skip records replayed this many times already")
    args = parser.parse_args(argv)
    report = replay(get_settings(), dry_run=args.dry_run, max_replays=args.max_replays)
    for record in report.records:
        print(json.dumps(record), file=sys.stderr)
    print(json.dumps({"replayed": report.replayed, "skipped": report.skipped, "dry_run": report.dry_run}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
