"""The RESP readers under the analyzer: every reply type, summaries, limits, bounded memory."""

from __future__ import annotations

import pytest
from tests.unit.wire.chunking import bytewise

from lanner.wire.errors import ProtocolError
from lanner.wire.resp import CommandCompleted, RedisReply, RespAnalyzer
from lanner.wire.resp_reader import Aggregate, ReplyReader, Value
from lanner.wire.resp_request import Request, RequestReader, split_inline
from lanner.wire.resp_text import bound, quote


def cmd(*args: bytes | str) -> bytes:
    parts = [arg.encode() if isinstance(arg, str) else arg for arg in args]
    return b"*%d\r\n" % len(parts) + b"".join(b"$%d\r\n%s\r\n" % (len(part), part) for part in parts)


def replies(
    data: bytes, max_summary: int = 512, max_depth: int = 64, max_line: int = 1024
) -> list[RedisReply]:
    """`data` read whole and byte by byte, which must agree; the replies it holds."""
    whole: list[Value] = []
    ReplyReader(max_summary, max_depth, max_line).feed(data, whole)
    reader = ReplyReader(max_summary, max_depth, max_line)
    pieces: list[Value] = []
    for piece in bytewise(data):
        reader.feed(piece, pieces)
    read = [value.reply if isinstance(value, Aggregate) else value for value in whole]
    assert read == [value.reply if isinstance(value, Aggregate) else value for value in pieces]
    return read


def refused(data: bytes, **limits: int) -> str:
    reader = ReplyReader(
        limits.get("max_summary", 512), limits.get("max_depth", 64), limits.get("max_line", 1024)
    )
    with pytest.raises(ProtocolError) as caught:
        reader.feed(data, [])
    return str(caught.value)


def requests(data: bytes, max_arg: int = 256, keep_args: int = 144, max_inline: int = 1024) -> list[Request]:
    whole: list[Request] = []
    RequestReader(max_arg, keep_args, max_inline).feed(data, whole)
    reader = RequestReader(max_arg, keep_args, max_inline)
    pieces: list[Request] = []
    for piece in bytewise(data):
        reader.feed(piece, pieces)
    shape = [(r.argv, r.sizes, r.count, r.inline, r.size) for r in whole]
    assert shape == [(r.argv, r.sizes, r.count, r.inline, r.size) for r in pieces]
    return whole


# -- replies --


@pytest.mark.parametrize(
    ("wire", "kind", "summary", "count"),
    [
        (b"+OK\r\n", "simple", "OK", None),
        (b"-ERR no\r\n", "error", "(error) ERR no", None),
        (b":-42\r\n", "integer", "(integer) -42", None),
        (b"$0\r\n\r\n", "bulk", '""', None),
        (b"$4\r\na\r\nb\r\n", "bulk", '"a\\r\\nb"', None),
        (b'$5\r\n"\\\x07\x00\xe9\r\n', "bulk", '"\\"\\\\\\a\\x00\\xe9"', None),
        (b"$-1\r\n", "null", "(nil)", None),
        (b"*-1\r\n", "null", "(nil)", None),
        (b"_\r\n", "null", "(nil)", None),
        (b"*0\r\n", "array", "[0]", 0),
        (b"*3\r\n:1\r\n$-1\r\n*1\r\n+x\r\n", "array", "[3] (integer) 1, (nil), [x]", 3),
        (b"%2\r\n+a\r\n:1\r\n+b\r\n%0\r\n", "map", "{2} a => (integer) 1, b => {}", 2),
        (b"~2\r\n+a\r\n~1\r\n#t\r\n", "set", "~[2] a, ~[(true)]", 2),
        (b">2\r\n+pubsub\r\n+x\r\n", "push", ">[2] pubsub, x", 2),
        (b",-inf\r\n", "double", "(double) -inf", None),
        (b",1.23e-5\r\n", "double", "(double) 1.23e-5", None),
        (b"(-3492890328409238509324850943850943825024385\r\n", "bignum", None, None),
        (b"#f\r\n", "boolean", "(false)", None),
        (b"=15\r\ntxt:Some string\r\n", "verbatim", '"Some string"', None),
        (b"!21\r\nSYNTAX invalid syntax\r\n", "error", "(error) SYNTAX invalid syntax", None),
    ],
)
def test_every_reply_type(wire: bytes, kind: str, summary: str | None, count: int | None) -> None:
    [reply] = replies(wire)
    assert (reply.kind, reply.size, reply.count, reply.attributes) == (kind, len(wire), count, False)
    if summary is not None:
        assert reply.summary == summary
    if kind == "error":
        assert reply.error == reply.summary.removeprefix("(error) ")


def test_streamed_strings_and_aggregates() -> None:
    # The RESP3 specification's examples.
    streamed = b"$?\r\n;4\r\nHell\r\n;5\r\no wor\r\n;1\r\nd\r\n;0\r\n"
    array = b"*?\r\n:1\r\n:2\r\n:3\r\n.\r\n"
    mapping = b"%?\r\n+a\r\n:1\r\n+b\r\n:2\r\n.\r\n"
    a_set = b"~?\r\n$?\r\n;2\r\nhi\r\n;0\r\n.\r\n"
    assert replies(streamed + array + mapping + a_set) == [
        RedisReply("bulk", '"Hello word"', len(streamed)),
        RedisReply("array", "[3] (integer) 1, (integer) 2, (integer) 3", len(array), count=3),
        RedisReply("map", "{2} a => (integer) 1, b => (integer) 2", len(mapping), count=2),
        RedisReply("set", '~[1] "hi"', len(a_set), count=1),
    ]


def test_attributes_are_read_and_noted() -> None:
    # The RESP3 specification's example: an attribute, then the reply it describes.
    attributed = b"|1\r\n+key-popularity\r\n%2\r\n$1\r\na\r\n,0.1923\r\n$1\r\nb\r\n,0.0012\r\n*2\r\n:2039123\r\n:9543892\r\n"
    nested = b"*2\r\n|1\r\n+ttl\r\n:3600\r\n+x\r\n+y\r\n"
    assert replies(attributed + nested + b"+plain\r\n") == [
        RedisReply(
            "array", "[2] (integer) 2039123, (integer) 9543892", len(attributed), count=2, attributes=True
        ),
        RedisReply("array", "[2] x, y", len(nested), count=2, attributes=True),
        RedisReply("simple", "plain", 8),
    ]


def test_summaries_are_bounded_and_marked() -> None:
    long_bulk = b"$100\r\n" + b"a" * 100 + b"\r\n"
    long_array = b"*50\r\n" + b":12345\r\n" * 50
    long_status = b"+" + b"s" * 100 + b"\r\n"
    long_error = b"-ERR " + b"e" * 100 + b"\r\n"
    for reply in replies(long_bulk + long_array + long_status + long_error, max_summary=40):
        assert len(reply.summary) == 40 and reply.summary.endswith("…"), reply
    bulk, array, status, error = replies(long_bulk + long_array + long_status + long_error, max_summary=40)
    assert bulk.summary == '"' + "a" * 38 + "…"
    assert (array.count, array.size) == (50, len(long_array))
    assert status.size == len(long_status)
    assert error.error == "ERR " + "e" * 35 + "…"
    nested = b"*1\r\n*3\r\n$30\r\n" + b"n" * 30 + b"\r\n$30\r\n" + b"m" * 30 + b"\r\n:1\r\n"
    [reply] = replies(nested, max_summary=40)
    assert reply.summary == '[1] ["' + "n" * 30 + '", …'
    assert bound("abc", 3) == "abc" and bound("abcd", 3) == "ab…" and bound("ab", 3, cut=True) == "ab…"
    assert quote(b"\x00\xff\n\"'", 100) == '"\\x00\\xff\\n\\"\'"'


@pytest.mark.parametrize(
    "wire",
    [
        b"?\r\n",  # an unknown type byte
        b"+OK\n",  # LF without CR
        b"$-2\r\n",  # negative other than -1
        b"*-2\r\n",
        b"$x\r\n",  # not a number
        b"*1a\r\n",
        b"$536870913\r\n",  # over 512 MiB
        b"*2147483648\r\n",  # over 2^31 - 1 elements
        b"%-1\r\n",
        b">?\r\n",  # only arrays, maps and sets stream
        b":12a\r\n",
        b",1.2.3\r\n",
        b"#x\r\n",
        b"_x\r\n",
        b"(12x\r\n",
        b".\r\n",  # no streamed aggregate is open
        b";4\r\n",  # no streamed string is open
        b"$?\r\n+x\r\n",  # a streamed string has only chunks
        b"%?\r\n+a\r\n.\r\n",  # a key without its value
        b"$3\r\nabcde\r\n",  # the string is longer than it said
    ],
)
def test_what_is_not_resp_is_refused(wire: bytes) -> None:
    refused(wire)


def test_nesting_and_line_limits() -> None:
    deep = b"*1\r\n" * 5 + b":1\r\n"
    assert len(replies(deep, max_depth=5)) == 1
    assert "deeper than 4" in refused(deep, max_depth=4)
    assert "longer than 8 bytes" in refused(b":123456789\r\n", max_line=8)
    assert "longer than 8 bytes" in refused(b":1234567890123", max_line=8)  # no end yet, already too long
    assert replies(b":12345678\r\n", max_line=8) == [RedisReply("integer", "(integer) 12345678", 11)]
    # Status and error lines have no such limit: MONITOR shows whole values in them.
    monitor = b'+1700000000.000000 [0 127.0.0.1:5000] "SET" "k" "' + b"v" * 5000 + b'"\r\n'
    [reply] = replies(monitor, max_line=8, max_summary=64)
    assert (reply.kind, reply.size, len(reply.summary)) == ("simple", len(monitor), 64)


def test_a_huge_reply_streams_through_in_bounded_memory() -> None:
    analyzer = RespAnalyzer()
    analyzer.client_data(cmd("GET", "big"), 1.0)
    payload = b"$%d\r\n" % (10 << 20) + b"x" * (10 << 20) + b"\r\n"
    events = []
    for start in range(0, len(payload), 64 * 1024):
        events += analyzer.server_data(payload[start : start + 64 * 1024], 2.0)
        assert analyzer.buffered <= 1024
    [event] = events
    assert isinstance(event, CommandCompleted) and event.reply is not None
    assert (event.reply.size, len(event.reply.summary)) == (len(payload), 512)


def test_a_huge_argument_streams_through_in_bounded_memory() -> None:
    analyzer = RespAnalyzer(max_arg=16)
    request = cmd("SET", "big", b"y" * (10 << 20))
    for start in range(0, len(request), 64 * 1024):
        assert analyzer.client_data(request[start : start + 64 * 1024], 1.0) == []
        assert analyzer.buffered <= 1024
    [event] = analyzer.server_data(b"+OK\r\n", 2.0)
    assert isinstance(event, CommandCompleted)
    assert (event.args, event.arg_sizes, event.size) == ((b"big", b"y" * 16), (3, 10 << 20), len(request))


def test_a_huge_aggregate_keeps_only_its_summary() -> None:
    analyzer = RespAnalyzer(max_summary=64)
    analyzer.client_data(cmd("LRANGE", "l", "0", "-1"), 1.0)
    header = b"*100000\r\n"
    assert analyzer.server_data(header, 2.0) == []
    for _ in range(99):
        assert analyzer.server_data(b"$5\r\nhello\r\n" * 1000, 2.0) == []
        assert analyzer.buffered <= 200
    [event] = analyzer.server_data(b"$5\r\nhello\r\n" * 1000, 3.0)
    assert isinstance(event, CommandCompleted) and event.reply is not None
    assert (event.reply.count, event.reply.size) == (100_000, len(header) + 11 * 100_000)


# -- requests --


def test_requests_whole_and_byte_by_byte() -> None:
    data = cmd("SET", "k", b"a\r\nb") + b"GET k\r\n" + cmd("DEL", "a", "b", "c") + b"\n" + b"*0\r\n"
    shapes = [(r.argv, r.sizes, r.count, r.inline, r.size) for r in requests(data)]
    assert shapes == [
        ([b"SET", b"k", b"a\r\nb"], [3, 1, 4], 3, False, 30),
        ([b"GET", b"k"], [3, 1], 2, True, 7),
        ([b"DEL", b"a", b"b", b"c"], [3, 1, 1, 1], 4, False, 34),
        ([], [], 0, True, 1),
        ([], [], 0, False, 4),
    ]


def test_arguments_are_cut_and_counted() -> None:
    many = cmd("MSET", *[f"key{i}" for i in range(10)])
    [request] = requests(many + b"", max_arg=2, keep_args=4)
    assert (request.argv, request.sizes, request.count) == (
        [b"MSET", b"key0", b"ke", b"ke"],
        [4, 4, 4, 4],
        11,
    )
    [inline] = requests(b"MSET key0 key1 key2 key3 key4\r\n", max_arg=2, keep_args=4)
    assert (inline.argv, inline.sizes, inline.count) == ([b"MSET", b"key0", b"ke", b"ke"], [4, 4, 4, 4], 6)


@pytest.mark.parametrize(
    ("line", "args"),
    [
        (b"SET k v", [b"SET", b"k", b"v"]),
        (b"  a\t b \x0bc\x0c ", [b"a", b"b", b"c\x0c"]),  # \v and \f end no token (sds.c)
        (b"a\x0bb", [b"a\x0bb"]),
        (b'"a\\"b" \'c d\'', [b'a"b', b"c d"]),
        (b'"\\x41\\x4g\\q\\n\\r\\t\\b\\a"', [b"Ax4gq\n\r\t\b\x07"]),
        (b"'a\\'b\\n'", [b"a'b\\n"]),
        (b'""', [b""]),
        (b'x"y z"', [b"xy z"]),
    ],
)
def test_inline_splitting(line: bytes, args: list[bytes]) -> None:
    assert split_inline(line) == args


@pytest.mark.parametrize("line", [b'"abc', b"'abc", b'"a"b', b"'a'b", b'a"b c"d', b'"\\'])
def test_unbalanced_inline_quotes(line: bytes) -> None:
    with pytest.raises(ProtocolError, match="unbalanced quotes"):
        split_inline(line)


def test_request_limits() -> None:
    reader = RequestReader(256, 144, 16)
    with pytest.raises(ProtocolError, match="longer than 16"):
        reader.feed(b"GET " + b"k" * 20, [])
    for bad in (
        b"*1\r\n$536870913\r\n",
        b"*2147483648\r\n",
        b"*1\r\n$3\r\nGETxx",
        b"*1\r\n:3\r\n",
        b"*1\n",
        b"A\x00\n",
    ):
        with pytest.raises(ProtocolError):
            RequestReader(256, 144, 1024).feed(bad, [])
