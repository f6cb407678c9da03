"""cache.ReplylessWriter against a real Redis: writes land without replies piling up, and survive a dropped
connection."""

import contextlib
import select
import time
import uuid

import pytest

from logpipe.adapters import cache

pytestmark = pytest.mark.integration


def connection_of(writer: cache.ReplylessWriter):
    """The writer's one connection (a standalone Redis has one node)."""
    (connection,) = writer._connections.values()
    return connection


def eventually(check, timeout_s: float = 2.0):
    deadline = time.monotonic() + timeout_s
    while not (result := check()) and time.monotonic() < deadline:
        time.sleep(0.01)
    return result


def test_writes_land_and_redis_answers_none_of_them() -> None:
    client, writer, prefix = (
        cache.client(),
        cache.ReplylessWriter(lambda _key: cache.client().connection_pool),
        f"it-replyless:{uuid.uuid4().hex}",
    )
    for index in range(2000):
        writer.send([("SET", f"{prefix}:{index % 10}", index, "EX", 60), ("SET", f"{prefix}:last", index, "EX", 60)])

    assert eventually(lambda: client.get(f"{prefix}:last") == b"1999")
    assert client.get(f"{prefix}:9") == b"1999" and 0 < client.ttl(f"{prefix}:9") <= 60
    readable, _, _ = select.select([connection_of(writer)._sock], [], [], 0.2)
    assert not readable, "Redis answered the writer"
    connection_of(writer).disconnect()


def test_a_dropped_connection_costs_at_most_the_write_in_flight() -> None:
    client, writer, prefix = (
        cache.client(),
        cache.ReplylessWriter(lambda _key: cache.client().connection_pool),
        f"it-replyless:{uuid.uuid4().hex}",
    )
    writer.send([("SET", f"{prefix}:before", 1, "EX", 60)])
    assert eventually(lambda: client.get(f"{prefix}:before") == b"1")
    for entry in client.client_list():
        if entry["cmd"] in ("set", "client|reply"):
            client.client_kill_filter(_id=entry["id"])

    writer.send([("SET", f"{prefix}:lost-or-not", 1, "EX", 60)])  # may go into the dead socket
    writer.send([("SET", f"{prefix}:after", 1, "EX", 60)])  # the failure shows here: reconnect, resend
    assert eventually(lambda: client.get(f"{prefix}:after") == b"1")
    connection_of(writer).disconnect()


def test_replies_of_a_redis_that_ignores_reply_off_are_drained(monkeypatch: pytest.MonkeyPatch) -> None:
    """A server that answers anyway (CLIENT REPLY refused): each send first drops the replies already received."""
    monkeypatch.setattr(cache.ReplylessWriter, "_REPLY_OFF", ("PING",))  # answered, like a refused CLIENT REPLY
    writer, prefix = cache.ReplylessWriter(lambda _key: cache.client().connection_pool), "it-replyless"
    for index in range(500):
        writer.send([("SET", f"{prefix}:{uuid.uuid4().hex}", index, "EX", 5)])
    time.sleep(0.2)  # every answer arrived
    writer.send([("SET", f"{prefix}:last", 1, "EX", 5)])  # drops them all before sending
    time.sleep(0.2)
    pending = b""
    connection_of(writer)._sock.setblocking(False)
    with contextlib.suppress(BlockingIOError):
        while chunk := connection_of(writer)._sock.recv(1 << 16):
            pending += chunk
    assert pending == b"+PONG\r\n+OK\r\n", "only the last send's replies are left unread"
    connection_of(writer).disconnect()
