import gzip
import json
import tracemalloc
import zlib

import pytest

from logpipe.edge import body
from logpipe.edge.body import BodyLimits, decoded_request, gunzip
from logpipe.edge.decoders.native import batch_items
from logpipe.errors import InvalidEventError, MalformedRequestError, PayloadTooLargeError, UnsupportedEncodingError

MIB = 1024 * 1024


def gzip_of_zeros(mebibytes: int) -> bytes:
    """A gzip bomb built a mebibyte at a time, so the test itself never holds the inflated data."""
    deflater = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    chunk = bytes(MIB)
    return b"".join(deflater.compress(chunk) for _ in range(mebibytes)) + deflater.flush()


def test_gunzip_returns_the_data_and_reads_concatenated_members() -> None:
    assert gunzip(gzip.compress(b"hello ") + gzip.compress(b"world"), limit=64) == b"hello world"


def test_gunzip_accepts_exactly_the_limit() -> None:
    assert len(gunzip(gzip.compress(bytes(1000)), limit=1000)) == 1000
    with pytest.raises(PayloadTooLargeError):
        gunzip(gzip.compress(bytes(1001)), limit=1000)


def test_a_gzip_bomb_is_refused_while_inflating_not_after() -> None:
    bomb = gzip_of_zeros(64)  # 64 MiB inflated, about 64 KB as sent
    tracemalloc.start()
    try:
        with pytest.raises(PayloadTooLargeError):
            gunzip(bomb, limit=MIB)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 8 * MIB, f"peak {peak} bytes: the bomb was inflated beyond the limit"


@pytest.mark.parametrize("data", [b"not gzip", gzip.compress(b"abc")[:-4], gzip.compress(b"abc")[:10], b""])
def test_gunzip_refuses_what_is_not_complete_gzip(data: bytes) -> None:
    with pytest.raises(MalformedRequestError) as caught:
        gunzip(data, limit=MIB)
    assert caught.value.code == "malformed_gzip"


def test_a_plain_event_passes_through_untouched() -> None:
    event = {"body": '{"a": 1}', "headers": {}, "isBase64Encoded": False}
    assert decoded_request(event, BodyLimits(100, 100)) is event


def test_an_unknown_content_encoding_is_refused() -> None:
    with pytest.raises(UnsupportedEncodingError):
        decoded_request({"body": "{}", "headers": {"content-encoding": "zstd"}}, BodyLimits(100, 100))


def test_the_size_as_sent_is_checked_before_inflating() -> None:
    event = {"body": "x" * 101, "headers": {}, "isBase64Encoded": False}
    with pytest.raises(PayloadTooLargeError):
        decoded_request(event, BodyLimits(100, 10_000))


@pytest.mark.parametrize("line_end", ["\n", "\r\n"])
def test_ndjson_lines_with_either_line_end_and_blank_lines(line_end: str) -> None:
    text = line_end.join(['{"a": 1}', "", '{"b": 2}', ""])
    assert batch_items(text, "application/x-ndjson; charset=utf-8", 2) == [{"a": 1}, {"b": 2}]


def test_json_batches_are_an_array_or_an_events_envelope() -> None:
    assert batch_items('[{"a": 1}]', "application/json", 1) == [{"a": 1}]
    assert batch_items('{"events": [{"a": 1}]}', "application/json", 1) == [{"a": 1}]


def test_too_many_ndjson_lines_are_refused_before_any_is_parsed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(body, "loads", lambda _line: pytest.fail("a line was parsed"))
    with pytest.raises(PayloadTooLargeError):
        batch_items("{}\n" * 1001, "application/x-ndjson", 1000)


LONG = "9" * 5000  # more digits than Python converts to an integer (sys.get_int_max_str_digits(): 4300)


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ('{"attributes": {"n": ' + LONG + "}}", "attributes.n"),
        ('[{"message": "m"}, {"attributes": {"list": [1, -' + LONG + "]}}]", "[1].attributes.list[1]"),
        ('{"timestamp": ' + LONG + "}", "timestamp"),
    ],
)
def test_an_integer_of_thousands_of_digits_is_an_invalid_event_naming_its_field(text: str, field: str) -> None:
    with pytest.raises(InvalidEventError) as refused:
        body.loads(text)
    assert refused.value.details == {"field": field}


def test_an_ndjson_line_with_an_integer_of_thousands_of_digits_is_refused_alone() -> None:
    good, bad = batch_items('{"message": "m"}\n{"n": ' + LONG + "}\n", "application/x-ndjson", 10)
    assert good == {"message": "m"}
    assert isinstance(bad, InvalidEventError) and bad.details == {"field": "n"}


@pytest.mark.parametrize(
    "text",
    [
        '{"message": "\\ud800"}',  # a lone surrogate: the event's rules then refuse it, naming the field
        "[" * 500 + "]" * 500,  # deeper than the fast parser follows
        '{"n": 1e999, "m": -0.0, "big": 123456789012345678901234567890}',
    ],
)
def test_what_json_accepts_is_read_as_json_reads_it(text: str) -> None:
    assert body.loads(text) == json.loads(text)


@pytest.mark.parametrize("text", ["NaN", '{"n": Infinity}', '{"n": -Infinity}'])
def test_nan_and_infinity_are_malformed(text: str) -> None:
    with pytest.raises(MalformedRequestError):
        body.loads(text)


def test_nesting_past_what_json_follows_is_malformed() -> None:
    with pytest.raises(MalformedRequestError) as refused:
        body.loads("[" * 100_000 + "]" * 100_000)
    assert refused.value.code == "nesting_too_deep"
