"""HttpReader framing, driven with bytes only (no sockets)."""

from __future__ import annotations

import string
from collections.abc import Callable, Iterable, Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.unit.wire.chunking import bytewise, split_at, whole

from lanner.wire.errors import ProtocolError
from lanner.wire.http1 import (
    DEFAULT_MAX_HEAD,
    DEFAULT_MAX_LINE,
    MAX_CHUNK_LINE,
    MESSAGE_ENDED,
    NEED_DATA,
    PAUSED,
    BodyReceived,
    Framing,
    Headers,
    HttpReader,
    MessageEnded,
    RequestHead,
    RequestReceived,
    ResponseHead,
    ResponseReceived,
    header_value,
)

FUZZ = settings(max_examples=200, deadline=None)
CRLF = b"\r\n"

# -- a proxy-shaped driver: what the reader said, bodies merged --


class _Proxy:
    """Drains a reader as the proxy does: start_next() after each MessageEnded, up to `max_messages`.

    A response reader is told, before each response, which request it answers
    (`answers`, then GET).
    """

    def __init__(self, reader: HttpReader, answers: Sequence[bytes], max_messages: int) -> None:
        self.reader = reader
        self.answers = answers
        self.max_messages = max_messages
        self.ended = 0
        self.seen: list[object] = []
        self._expect_next()

    def _expect_next(self) -> None:
        method = self.answers[self.ended] if self.ended < len(self.answers) else b"GET"
        self.reader.expect_response_to(method)

    def drain(self) -> None:
        # Every event but MessageEnded consumes at least one byte, so this bounds a live reader.
        for _ in range(2 * self.reader.buffered + 4 * self.max_messages + 8):
            event = self.reader.next_event()
            if event is NEED_DATA or event is PAUSED:
                return
            self._record(event)
            if isinstance(event, MessageEnded):
                self.ended += 1
                if self.ended < self.max_messages:
                    self._expect_next()
                    self.reader.start_next()
        raise AssertionError("HttpReader kept returning events without consuming input")

    def _record(self, event: object) -> None:
        if isinstance(event, BodyReceived):
            data = bytes(event.data)
            assert data, "empty body event"
            if self.seen and isinstance(self.seen[-1], BodyReceived):
                data = bytes(self.seen.pop().data) + data  # type: ignore[attr-defined]
            event = BodyReceived(data)
        self.seen.append(event)


def read(
    reader: HttpReader,
    chunks: Iterable[bytes],
    *,
    eof: bool = False,
    answers: Sequence[bytes] = (),
    max_messages: int = 8,
) -> list[object]:
    """Feed `chunks` (then EOF if asked); the events, ending in ("error", reply_hint) if one was raised."""
    proxy = _Proxy(reader, answers, max_messages)
    try:
        for chunk in chunks:
            reader.receive_data(chunk)
            proxy.drain()
        if eof:
            reader.receive_eof()
            proxy.drain()
    except ProtocolError as exc:
        proxy.seen.append(("error", exc.reply_hint))
    return proxy.seen


Feed = Callable[[bytes], list[bytes]]
FEEDS = [whole, bytewise]


def requests_in(wire: bytes, feed: Feed = whole, **limits: int) -> list[object]:
    return read(HttpReader(True, **limits), feed(wire))


def responses_in(
    wire: bytes, feed: Feed = whole, *, eof: bool = True, answers: Sequence[bytes] = (), **limits: int
) -> list[object]:
    return read(HttpReader(False, **limits), feed(wire), eof=eof, answers=answers)


def heads(events: list[object]) -> list[RequestHead | ResponseHead]:
    return [e.head for e in events if isinstance(e, RequestReceived | ResponseReceived)]


def body(events: list[object]) -> bytes:
    return b"".join(bytes(e.data) for e in events if isinstance(e, BodyReceived))


def message(start_line: bytes, *headers: bytes) -> bytes:
    return start_line + CRLF + b"".join(h + CRLF for h in headers) + CRLF


# -- requests --


@pytest.mark.parametrize("feed", FEEDS)
def test_request_with_content_length_body(feed: Feed) -> None:
    head = message(b"POST /submit HTTP/1.1", b"Host: a.test", b"Content-Length: 5")
    events = requests_in(head + b"hello", feed)
    expected = RequestHead(
        method=b"POST",
        target=b"/submit",
        version="1.1",
        headers=[(b"Host", b"a.test"), (b"Content-Length", b"5")],
        keep_alive=True,
        upgrade=False,
        framing=Framing.LENGTH,
        length=5,
    )
    assert events == [RequestReceived(expected, len(head)), BodyReceived(b"hello"), MESSAGE_ENDED]


CHUNKED_BODY = (
    b'5;name=value\r\nhello\r\nA ; q="x y"\r\n0123456789\r\n0;last\r\nX-Sum: 1\r\nX-Other: 2\r\n\r\n'
)


@pytest.mark.parametrize("feed", FEEDS)
def test_request_chunked_body_is_the_raw_wire_bytes(feed: Feed) -> None:
    head = message(b"PUT /up HTTP/1.1", b"Transfer-Encoding: chunked")
    events = requests_in(head + CHUNKED_BODY, feed)
    assert [type(e) for e in events] == [RequestReceived, BodyReceived, MessageEnded]
    assert heads(events)[0].framing is Framing.CHUNKED
    assert body(events) == CHUNKED_BODY


def test_request_chunked_with_gzip_then_chunked() -> None:
    head = message(b"POST / HTTP/1.1", b"Transfer-Encoding: gzip, chunked")
    assert body(requests_in(head + b"0\r\n\r\n")) == b"0\r\n\r\n"


@pytest.mark.parametrize("feed", FEEDS)
def test_request_without_body(feed: Feed) -> None:
    head = message(b"GET /x?y=1 HTTP/1.1", b"Host: a.test")
    events = requests_in(head, feed)
    assert events == [
        RequestReceived(
            RequestHead(b"GET", b"/x?y=1", "1.1", [(b"Host", b"a.test")], True, False, Framing.NONE, 0),
            len(head),
        ),
        MESSAGE_ENDED,
    ]


def test_request_with_content_length_zero_has_no_body() -> None:
    events = requests_in(message(b"POST / HTTP/1.1", b"Content-Length: 0"))
    assert heads(events)[0].framing is Framing.NONE
    assert events[1:] == [MESSAGE_ENDED]


def test_absolute_form_target_is_preserved() -> None:
    head = message(b"GET http://example.com:8080/a/b?c=d#e HTTP/1.1", b"Host: example.com:8080")
    assert heads(requests_in(head))[0].target == b"http://example.com:8080/a/b?c=d#e"


def test_leading_empty_lines_are_ignored() -> None:
    head = message(b"GET / HTTP/1.1")
    events = requests_in(CRLF * 3 + head)
    assert events[0] == RequestReceived(
        RequestHead(b"GET", b"/", "1.1", [], True, False, Framing.NONE, 0), len(head)
    )


def test_pipelined_requests_pause_after_each_message() -> None:
    first = message(b"POST /1 HTTP/1.1", b"Content-Length: 3") + b"abc"
    second = message(b"GET /2 HTTP/1.1")
    reader = HttpReader(True)
    reader.receive_data(first + second[:10])
    assert isinstance(reader.next_event(), RequestReceived)
    assert reader.next_event() == BodyReceived(b"abc")
    assert reader.next_event() is MESSAGE_ENDED
    assert reader.next_event() is PAUSED
    assert reader.next_event() is PAUSED
    reader.receive_data(second[10:])  # data arriving while paused waits its turn
    assert reader.next_event() is PAUSED
    assert reader.buffered == len(second)
    reader.start_next()
    event = reader.next_event()
    assert isinstance(event, RequestReceived) and event.head.target == b"/2"
    assert reader.next_event() is MESSAGE_ENDED
    assert reader.next_event() is PAUSED
    reader.start_next()
    assert reader.next_event() is NEED_DATA


def test_start_next_before_a_message_ends_does_nothing() -> None:
    reader = HttpReader(True)
    reader.receive_data(message(b"POST / HTTP/1.1", b"Content-Length: 4") + b"ab")
    reader.next_event()
    reader.start_next()
    assert reader.next_event() == BodyReceived(b"ab")
    reader.start_next()
    assert reader.next_event() is NEED_DATA


@pytest.mark.parametrize(
    ("version", "connection", "keep_alive"),
    [
        (b"1.1", None, True),
        (b"1.1", b"close", False),
        (b"1.1", b"keep-alive, Close", False),
        (b"1.0", None, False),
        (b"1.0", b"keep-alive", True),
        (b"1.0", b"close", False),
    ],
)
def test_request_keep_alive(version: bytes, connection: bytes | None, keep_alive: bool) -> None:
    extra = [] if connection is None else [b"Connection: " + connection]
    head = heads(requests_in(message(b"GET / HTTP/" + version, *extra)))[0]
    assert head.version == version.decode()
    assert head.keep_alive is keep_alive


@pytest.mark.parametrize(
    ("headers", "keep_alive"),
    [((b"Proxy-Connection: close",), False), ((b"Proxy-Connection: keep-alive",), True)],
)
def test_request_proxy_connection_counts_like_connection(
    headers: tuple[bytes, ...], keep_alive: bool
) -> None:
    for version in (b"1.0", b"1.1"):
        head = heads(requests_in(message(b"GET http://a.test/ HTTP/" + version, *headers)))[0]
        assert head.keep_alive is keep_alive


@pytest.mark.parametrize(
    ("request_line", "status"),
    [(b"GET /", 400), (b"GET / HTTP/0.9", 400), (b"GET http://a.test/ HTTP/2.0", 505)],
)
def test_request_versions_other_than_1x_are_refused(request_line: bytes, status: int) -> None:
    # llhttp accepts these lines; a proxy cannot route HTTP/0.9 and never sees HTTP/2 this way.
    reader = HttpReader(True)
    reader.receive_data(message(request_line))
    with pytest.raises(ProtocolError) as caught:
        reader.next_event()
    assert caught.value.reply_hint == status


@pytest.mark.parametrize("feed", FEEDS)
def test_connect_request_is_a_tunnel(feed: Feed) -> None:
    head = message(b"CONNECT example.com:443 HTTP/1.1", b"Host: example.com:443")
    reader = HttpReader(True)
    events = read(reader, feed(head + b"\x16\x03\x01"))
    assert events == [
        RequestReceived(
            RequestHead(
                b"CONNECT",
                b"example.com:443",
                "1.1",
                [(b"Host", b"example.com:443")],
                True,
                False,
                Framing.TUNNEL,
                0,
            ),
            len(head),
        )
    ]
    assert reader.next_event() is PAUSED
    reader.start_next()  # a tunnel is not an ended message: nothing resumes
    assert reader.next_event() is PAUSED
    assert reader.take_buffered() == b"\x16\x03\x01"
    assert reader.buffered == 0


def test_upgrade_request() -> None:
    wire = message(
        b"GET /chat HTTP/1.1", b"Host: a.test", b"Connection: keep-alive, Upgrade", b"Upgrade: websocket"
    )
    events = requests_in(wire)
    assert heads(events)[0].upgrade is True
    assert heads(events)[0].framing is Framing.NONE
    assert events[-1] is MESSAGE_ENDED


@pytest.mark.parametrize(
    "headers",
    [(b"Upgrade: websocket",), (b"Connection: upgrade",), (b"Connection: keep-alive", b"Upgrade: h2c")],
)
def test_upgrade_needs_both_headers(headers: tuple[bytes, ...]) -> None:
    assert heads(requests_in(message(b"GET / HTTP/1.1", *headers)))[0].upgrade is False


def test_request_body_split_across_reads() -> None:
    reader = HttpReader(True)
    reader.receive_data(message(b"POST / HTTP/1.1", b"Content-Length: 6") + b"ab")
    assert isinstance(reader.next_event(), RequestReceived)
    assert bytes(reader.next_event().data) == b"ab"  # type: ignore[union-attr]
    assert reader.next_event() is NEED_DATA
    reader.receive_data(b"cdefGET")
    assert bytes(reader.next_event().data) == b"cdef"  # type: ignore[union-attr]
    assert reader.next_event() is MESSAGE_ENDED
    assert reader.take_buffered() == b"GET"


# -- responses --


@pytest.mark.parametrize("feed", FEEDS)
def test_response_with_content_length(feed: Feed) -> None:
    head = message(b"HTTP/1.1 200 OK", b"Content-Length: 2")
    assert responses_in(head + b"hi", feed) == [
        ResponseReceived(
            ResponseHead(200, b"OK", "1.1", [(b"Content-Length", b"2")], True, Framing.LENGTH, 2), len(head)
        ),
        BodyReceived(b"hi"),
        MESSAGE_ENDED,
    ]


@pytest.mark.parametrize("feed", FEEDS)
def test_response_chunked(feed: Feed) -> None:
    head = message(b"HTTP/1.1 404 Not Found", b"Transfer-Encoding: chunked")
    events = responses_in(head + CHUNKED_BODY, feed, eof=False)
    assert heads(events)[0].reason == b"Not Found"
    assert heads(events)[0].framing is Framing.CHUNKED
    assert body(events) == CHUNKED_BODY
    assert events[-1] is MESSAGE_ENDED


@pytest.mark.parametrize("feed", FEEDS)
def test_response_delimited_by_close_ends_at_eof(feed: Feed) -> None:
    head = message(b"HTTP/1.1 200 OK", b"Content-Type: text/plain")
    reader = HttpReader(False)
    events = read(reader, feed(head + b"all of it"))
    assert heads(events)[0].framing is Framing.UNTIL_CLOSE
    assert heads(events)[0].keep_alive is False
    assert events[-1] == BodyReceived(b"all of it")
    reader.receive_eof()
    assert reader.next_event() is MESSAGE_ENDED


def test_response_transfer_coding_not_chunked_is_delimited_by_close() -> None:
    events = responses_in(message(b"HTTP/1.1 200 OK", b"Transfer-Encoding: gzip") + b"zz")
    assert heads(events)[0].framing is Framing.UNTIL_CLOSE
    assert events[1:] == [BodyReceived(b"zz"), MESSAGE_ENDED]


@pytest.mark.parametrize("feed", FEEDS)
def test_response_to_head_has_no_body_despite_content_length(feed: Feed) -> None:
    first = message(b"HTTP/1.1 200 OK", b"Content-Length: 1234")
    second = message(b"HTTP/1.1 200 OK", b"Content-Length: 3") + b"abc"
    events = responses_in(first + second, feed, answers=[b"HEAD", b"GET"])
    assert [h.framing for h in heads(events)] == [Framing.NONE, Framing.LENGTH]
    assert events[1] is MESSAGE_ENDED
    assert body(events) == b"abc"


@pytest.mark.parametrize(
    "headers",
    [(b"Content-Length: 10",), (b"Transfer-Encoding: chunked",), ()],
    ids=["length", "chunked", "none"],
)
def test_response_to_head_keeps_the_connection(headers: tuple[bytes, ...]) -> None:
    # RFC 9112 section 6.3 rule 1: a HEAD response ends with its head, so nothing needs a close.
    events = responses_in(message(b"HTTP/1.1 200 OK", *headers), eof=False, answers=[b"HEAD"])
    assert heads(events)[0].framing is Framing.NONE
    assert heads(events)[0].keep_alive is True
    assert events[1:] == [MESSAGE_ENDED]


@pytest.mark.parametrize("status", [b"204 No Content", b"304 Not Modified"])
def test_response_204_304_have_no_body(status: bytes) -> None:
    head = message(b"HTTP/1.1 " + status, b"Content-Length: 5", b"ETag: x")
    events = responses_in(head + message(b"HTTP/1.1 200 OK", b"Content-Length: 0"), eof=False)
    assert [(h.status, h.framing) for h in heads(events)] == [
        (int(status[:3]), Framing.NONE),
        (200, Framing.NONE),
    ]
    assert [type(e) for e in events] == [ResponseReceived, MessageEnded, ResponseReceived, MessageEnded]


@pytest.mark.parametrize("feed", FEEDS)
def test_interim_responses_precede_the_final_one(feed: Feed) -> None:
    wire = (
        message(b"HTTP/1.1 100 Continue")
        + message(b"HTTP/1.1 103 Early Hints", b"Link: </s.css>; rel=preload")
        + message(b"HTTP/1.1 200 OK", b"Content-Length: 2")
        + b"ok"
    )
    events = responses_in(wire, feed)
    assert [type(e) for e in events] == [
        ResponseReceived,
        ResponseReceived,
        ResponseReceived,
        BodyReceived,
        MessageEnded,
    ]
    assert [(h.status, h.framing) for h in heads(events)] == [
        (100, Framing.NONE),
        (103, Framing.NONE),
        (200, Framing.LENGTH),
    ]


def test_switching_protocols_is_a_tunnel() -> None:
    head = message(b"HTTP/1.1 101 Switching Protocols", b"Upgrade: websocket", b"Connection: Upgrade")
    reader = HttpReader(False)
    events = read(reader, [head + b"\x81\x05hello"])
    assert heads(events)[0].framing is Framing.TUNNEL
    assert len(events) == 1
    assert reader.next_event() is PAUSED
    assert reader.take_buffered() == b"\x81\x05hello"


@pytest.mark.parametrize("status", [b"200 Connection established", b"204 OK", b"299 Whatever"])
def test_success_to_connect_is_a_tunnel(status: bytes) -> None:
    reader = HttpReader(False)
    events = read(reader, [message(b"HTTP/1.1 " + status) + b"\x16\x03"], answers=[b"CONNECT"])
    framing = heads(events)[0].framing
    # 204 to CONNECT: RFC 9112 section 6.3 puts 204 (no body) before the CONNECT rule.
    assert framing is (Framing.NONE if status.startswith(b"204") else Framing.TUNNEL)
    if framing is Framing.TUNNEL:
        assert reader.take_buffered() == b"\x16\x03"


def test_refused_connect_has_an_ordinary_body() -> None:
    head = message(b"HTTP/1.1 407 Proxy Authentication Required", b"Content-Length: 4")
    events = responses_in(head + b"deny", answers=[b"CONNECT"])
    assert heads(events)[0].framing is Framing.LENGTH
    assert body(events) == b"deny"


@pytest.mark.parametrize(
    ("status_line", "reason"),
    [
        (b"HTTP/1.1 200 OK", b"OK"),
        (b"HTTP/1.1 200 ", b""),
        (b"HTTP/1.1 500 Very Bad Thing", b"Very Bad Thing"),
    ],
)
def test_response_reason(status_line: bytes, reason: bytes) -> None:
    events = responses_in(message(status_line, b"Content-Length: 0"))
    assert heads(events)[0].reason == reason


@pytest.mark.parametrize(
    ("version", "connection", "keep_alive"),
    [(b"1.1", None, True), (b"1.1", b"close", False), (b"1.0", None, False), (b"1.0", b"keep-alive", True)],
)
def test_response_keep_alive(version: bytes, connection: bytes | None, keep_alive: bool) -> None:
    extra = [] if connection is None else [b"Connection: " + connection]
    head = heads(responses_in(message(b"HTTP/" + version + b" 200 OK", b"Content-Length: 0", *extra)))[0]
    assert head.keep_alive is keep_alive


# -- limits (each crossed, fed whole and a byte at a time) --


def request_line_of(size: int) -> bytes:
    fixed = b"GET / HTTP/1.1"
    return b"GET /" + b"a" * (size - len(fixed)) + b" HTTP/1.1"


@pytest.mark.parametrize("feed", FEEDS)
def test_request_line_at_max_line_is_accepted(feed: Feed) -> None:
    wire = message(request_line_of(40))
    assert [type(e) for e in requests_in(wire, feed, max_line=40)] == [RequestReceived, MessageEnded]


@pytest.mark.parametrize("feed", FEEDS)
def test_request_line_over_max_line_is_414(feed: Feed) -> None:
    assert requests_in(message(request_line_of(41)), feed, max_line=40) == [("error", 414)]


def test_request_line_over_max_line_is_414_before_its_end_arrives() -> None:
    reader = HttpReader(True, max_line=40)
    reader.receive_data(request_line_of(60))
    with pytest.raises(ProtocolError) as caught:
        reader.next_event()
    assert caught.value.reply_hint == 414


def test_request_line_default_limit() -> None:
    assert requests_in(message(request_line_of(DEFAULT_MAX_LINE + 1))) == [("error", 414)]


@pytest.mark.parametrize("feed", FEEDS)
def test_status_line_over_max_line_is_502(feed: Feed) -> None:
    wire = message(b"HTTP/1.1 200 " + b"O" * 40, b"Content-Length: 0")
    assert responses_in(wire, feed, max_line=40) == [("error", 502)]


def head_of(size: int) -> bytes:
    """A request head of exactly `size` bytes, the closing blank line included."""
    start = message(b"GET / HTTP/1.1", b"X-Pad: ")
    return message(b"GET / HTTP/1.1", b"X-Pad: " + b"p" * (size - len(start)))


@pytest.mark.parametrize("feed", FEEDS)
def test_head_at_max_head_is_accepted(feed: Feed) -> None:
    # max_head counts the head up to, not including, the CRLFCRLF that closes it.
    events = requests_in(head_of(200 + 4), feed, max_head=200)
    assert [type(e) for e in events] == [RequestReceived, MessageEnded]


@pytest.mark.parametrize("feed", FEEDS)
def test_head_over_max_head_is_431(feed: Feed) -> None:
    assert requests_in(head_of(200 + 5), feed, max_head=200) == [("error", 431)]


def test_head_over_max_head_is_431_before_its_end_arrives() -> None:
    reader = HttpReader(True, max_head=200)
    reader.receive_data(head_of(400)[:300])
    with pytest.raises(ProtocolError) as caught:
        reader.next_event()
    assert caught.value.reply_hint == 431


def test_head_default_limit() -> None:
    assert requests_in(head_of(DEFAULT_MAX_HEAD + 5)) == [("error", 431)]


def test_response_head_over_max_head_is_502() -> None:
    wire = message(b"HTTP/1.1 200 OK", b"X-Pad: " + b"p" * 300)
    assert responses_in(wire, max_head=200) == [("error", 502)]


@pytest.mark.parametrize("feed", FEEDS)
def test_trailers_over_max_head_are_431(feed: Feed) -> None:
    head = message(b"POST / HTTP/1.1", b"Transfer-Encoding: chunked")
    trailer = b"X-T: " + b"t" * 60 + CRLF
    assert requests_in(head + b"0\r\n" + trailer * 2 + CRLF, feed, max_head=200)[-1] == MESSAGE_ENDED
    assert requests_in(head + b"0\r\n" + trailer * 4 + CRLF, feed, max_head=200)[-1] == ("error", 431)


@pytest.mark.parametrize("feed", FEEDS)
def test_chunk_size_line_over_limit_is_400(feed: Feed) -> None:
    head = message(b"POST / HTTP/1.1", b"Transfer-Encoding: chunked")
    fits = b"1;" + b"e" * (MAX_CHUNK_LINE - 4) + b"\r\nx\r\n0\r\n\r\n"
    assert requests_in(head + fits, feed)[-1] == MESSAGE_ENDED
    too_long = b"1;" + b"e" * (MAX_CHUNK_LINE - 3) + b"\r\nx\r\n0\r\n\r\n"
    assert requests_in(head + too_long, feed)[-1] == ("error", 400)


# -- malformed input --


@pytest.mark.parametrize("size_line", [b"zz", b"", b"-1", b"1 0", b"0x5", b"+5", b"1" * 16, b";ext"])
@pytest.mark.parametrize("feed", FEEDS)
def test_malformed_chunk_size_is_400(size_line: bytes, feed: Feed) -> None:
    head = message(b"POST / HTTP/1.1", b"Transfer-Encoding: chunked")
    assert requests_in(head + size_line + b"\r\nhello\r\n0\r\n\r\n", feed)[-1] == ("error", 400)


@pytest.mark.parametrize("feed", FEEDS)
def test_chunk_data_without_crlf_is_400(feed: Feed) -> None:
    head = message(b"POST / HTTP/1.1", b"Transfer-Encoding: chunked")
    assert requests_in(head + b"5\r\nhelloXY0\r\n\r\n", feed)[-1] == ("error", 400)


@pytest.mark.parametrize(
    "headers",
    [
        (b"Transfer-Encoding: chunked", b"Content-Length: 5"),
        (b"Content-Length: 5", b"Transfer-Encoding: chunked"),
        (b"Content-Length: 5", b"Content-Length: 6"),
        (b"Content-Length: 5", b"Content-Length: 5"),
        (b"Content-Length: 5, 6",),
        (b"Content-Length: -5",),
        (b"Content-Length: 5x",),
        (b"Content-Length: 99999999999999999999999",),
        (b"Transfer-Encoding: chunked, gzip",),
        (b"Transfer-Encoding: gzip",),
    ],
)
def test_ambiguous_request_framing_is_400(headers: tuple[bytes, ...]) -> None:
    assert requests_in(message(b"POST / HTTP/1.1", *headers) + b"hello") == [("error", 400)]


@pytest.mark.parametrize(
    "headers",
    [(b"Content-Length: 5", b"Content-Length: 6"), (b"Content-Length: nope",)],
)
def test_ambiguous_response_framing_is_502(headers: tuple[bytes, ...]) -> None:
    assert responses_in(message(b"HTTP/1.1 200 OK", *headers) + b"hello") == [("error", 502)]


@pytest.mark.parametrize(
    "wire",
    [
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n",
        b"GET / HTTP/1.1\r\nBad Header\r\n\r\n",
        b"GET / HTTP/1.1\r\n: empty-name\r\n\r\n",
        b"GET / HTTP/1.1\r\nX: a\r\n folded\r\n\r\n",
        b"GET / HTTP/1.1\nHost: x\n\n\r\n\r\n",
        b"GET /a b HTTP/1.1\r\n\r\n",
        b"G\x00T / HTTP/1.1\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\x00b\r\n\r\n",
        b"\r\n\r\nHTTP/1.1 200 OK\r\n\r\n",
    ],
)
def test_garbage_request_head_is_400(wire: bytes) -> None:
    assert requests_in(wire) == [("error", 400)]


@pytest.mark.parametrize("wire", [b"GET / HTTP/1.1\r\n\r\n", b"HTTP/1.1 abc OK\r\n\r\n", b"\x00\x01\r\n\r\n"])
def test_garbage_response_head_is_502(wire: bytes) -> None:
    assert responses_in(wire) == [("error", 502)]


def test_eof_inside_a_head_is_400() -> None:
    assert read(HttpReader(True), [b"GET / HTT"], eof=True) == [("error", 400)]


def test_eof_between_messages_is_quiet() -> None:
    assert read(HttpReader(True), [message(b"GET / HTTP/1.1")], eof=True)[-1] is MESSAGE_ENDED


def test_eof_inside_a_length_body_is_400() -> None:
    wire = message(b"POST / HTTP/1.1", b"Content-Length: 10") + b"abc"
    assert read(HttpReader(True), [wire], eof=True)[-2:] == [BodyReceived(b"abc"), ("error", 400)]


def test_eof_inside_a_chunked_body_is_400() -> None:
    wire = message(b"POST / HTTP/1.1", b"Transfer-Encoding: chunked") + b"5\r\nab"
    assert read(HttpReader(True), [wire], eof=True)[-2:] == [BodyReceived(b"5\r\nab"), ("error", 400)]


# -- header helpers --


def test_header_value_is_the_last_one_case_insensitively() -> None:
    headers: Headers = [(b"Via", b"a"), (b"Host", b"h"), (b"VIA", b"b")]
    assert header_value(headers, b"via") == b"b"
    assert header_value(headers, b"missing") is None


def test_connection_tokens_are_gathered_on_the_head() -> None:
    wire = b"GET http://a.test/ HTTP/1.1\r\nConnection: Keep-Alive, X-Foo\r\nconnection:  ,upgrade,\r\n\r\n"
    head = heads(requests_in(wire))[0]
    assert head.connection == {b"keep-alive", b"x-foo", b"upgrade"}


# -- hypothesis: valid messages, every chunking --


def _ascii(alphabet: str, min_size: int, max_size: int) -> st.SearchStrategy[bytes]:
    return st.text(alphabet, min_size=min_size, max_size=max_size).map(str.encode)


_TCHAR = string.ascii_letters + string.digits + "!#$%&'*+.^_`|~-"
_VCHAR = "".join(map(chr, range(0x21, 0x7F)))
header_names = _ascii(_TCHAR, 1, 12).map(b"X-".__add__)  # X-: never a framing or hop-by-hop header
header_values = st.lists(_ascii(_VCHAR, 1, 10), min_size=1, max_size=3).map(b" ".join)
header_lists = st.lists(st.tuples(header_names, header_values), max_size=4)
_paths = st.tuples(
    _ascii(string.ascii_letters + "0123456789._~/-", 0, 20),
    _ascii(string.ascii_lowercase + string.digits + "=&", 0, 10),
)
targets = st.one_of(
    _paths.map(lambda parts: b"/" + parts[0] + (b"?" + parts[1] if parts[1] else b"")),
    st.tuples(_ascii(string.ascii_lowercase, 1, 10), st.integers(1, 65535), _ascii("abc123", 0, 10)).map(
        lambda parts: b"http://%s.test:%d/%s" % parts
    ),
)
chunk_extensions = st.sampled_from([b"", b";x", b";name=value", b' ; q="a b"', b";a=1;b=2"])


@st.composite
def chunked_bodies(draw: st.DrawFn) -> bytes:
    wire = b""
    for chunk in draw(st.lists(st.binary(min_size=1, max_size=40), max_size=4)):
        size = draw(st.sampled_from([b"%x", b"%X", b"00%x"])) % len(chunk)
        wire += size + draw(chunk_extensions) + CRLF + chunk + CRLF
    trailers = b"".join(name + b": " + value + CRLF for name, value in draw(header_lists))
    return wire + b"0" + draw(chunk_extensions) + CRLF + trailers + CRLF


def _with_body(draw: st.DrawFn, headers: Headers, kinds: list[str]) -> tuple[bytes, Framing, int]:
    kind = draw(st.sampled_from(kinds))
    if kind == "length":
        payload = draw(st.binary(max_size=64))
        headers.append((b"Content-Length", b"%d" % len(payload)))
        return payload, (Framing.LENGTH if payload else Framing.NONE), len(payload)
    if kind == "chunked":
        headers.append((b"Transfer-Encoding", b"chunked"))
        return draw(chunked_bodies()), Framing.CHUNKED, 0
    if kind == "close":
        return draw(st.binary(max_size=64)), Framing.UNTIL_CLOSE, 0
    return b"", Framing.NONE, 0


def _head_bytes(start_line: bytes, headers: Headers) -> bytes:
    return message(start_line, *(name + b": " + value for name, value in headers))


def _message_events(head: object, raw_head: bytes, wire_body: bytes) -> list[object]:
    received = RequestReceived if isinstance(head, RequestHead) else ResponseReceived
    events: list[object] = [received(head, len(raw_head))]  # type: ignore[arg-type]
    if wire_body:
        events.append(BodyReceived(wire_body))
    return events + [MESSAGE_ENDED]


@st.composite
def request_messages(draw: st.DrawFn) -> tuple[bytes, list[object]]:
    method = draw(st.sampled_from([b"GET", b"POST", b"PUT", b"DELETE", b"OPTIONS", b"PATCH"]))
    target = draw(targets)
    version = draw(st.sampled_from(["1.0", "1.1"]))
    headers = draw(header_lists)
    wire_body, framing, length = _with_body(draw, headers, ["none", "length", "chunked"])
    raw_head = _head_bytes(b"%s %s HTTP/%s" % (method, target, version.encode()), headers)
    head = RequestHead(method, target, version, headers, version == "1.1", False, framing, length)
    leading = draw(st.sampled_from([b"", CRLF, CRLF * 2]))
    return leading + raw_head + wire_body, _message_events(head, raw_head, wire_body)


@st.composite
def request_streams(draw: st.DrawFn) -> tuple[bytes, list[object]]:
    messages = draw(st.lists(request_messages(), min_size=1, max_size=3))
    return b"".join(w for w, _ in messages), [e for _, events in messages for e in events]


@st.composite
def response_messages(draw: st.DrawFn, last: bool) -> tuple[bytes, list[object], bytes]:
    answers = draw(st.sampled_from([b"GET", b"POST", b"HEAD"]))
    wire, events = b"", []
    if draw(st.booleans()):
        interim = message(b"HTTP/1.1 100 Continue")
        wire += interim
        events.append(
            ResponseReceived(ResponseHead(100, b"Continue", "1.1", [], True, Framing.NONE, 0), len(interim))
        )
    status, reason = draw(
        st.sampled_from([(200, b"OK"), (201, b"Created"), (404, b"Not Found"), (204, b""), (304, b"")])
    )
    version = draw(st.sampled_from(["1.0", "1.1"]))
    headers = draw(header_lists)
    if status in (204, 304):
        wire_body, framing, length = b"", Framing.NONE, 0
    else:
        wire_body, framing, length = _with_body(
            draw, headers, ["length", "chunked"] + (["close"] if last else [])
        )
    if answers == b"HEAD":
        wire_body, framing, length = b"", Framing.NONE, 0
    raw_head = _head_bytes(b"HTTP/%s %d %s" % (version.encode(), status, reason), headers)
    keep_alive = version == "1.1" and framing is not Framing.UNTIL_CLOSE
    head = ResponseHead(status, reason, version, headers, keep_alive, framing, length)
    return wire + raw_head + wire_body, events + _message_events(head, raw_head, wire_body), answers


@st.composite
def response_streams(draw: st.DrawFn) -> tuple[bytes, list[object], list[bytes]]:
    count = draw(st.integers(1, 3))
    messages = [draw(response_messages(last=i == count - 1)) for i in range(count)]
    return (
        b"".join(w for w, _, _ in messages),
        [e for _, events, _ in messages for e in events],
        [a for _, _, a in messages],
    )


def cuts_for(data: st.DataObject, wire: bytes) -> list[int]:
    return data.draw(st.lists(st.integers(0, len(wire)), max_size=10), label="cuts")


@FUZZ
@given(stream=request_streams(), data=st.data())
def test_request_events_never_depend_on_chunking(
    stream: tuple[bytes, list[object]], data: st.DataObject
) -> None:
    wire, expected = stream
    for chunks in (whole(wire), bytewise(wire), split_at(wire, cuts_for(data, wire))):
        assert read(HttpReader(True), chunks) == expected


@FUZZ
@given(stream=response_streams(), data=st.data())
def test_response_events_never_depend_on_chunking(
    stream: tuple[bytes, list[object], list[bytes]], data: st.DataObject
) -> None:
    wire, expected, answers = stream
    for chunks in (whole(wire), bytewise(wire), split_at(wire, cuts_for(data, wire))):
        assert read(HttpReader(False), chunks, eof=True, answers=answers) == expected


# -- hypothesis: hostile input --


@st.composite
def mutated(draw: st.DrawFn, wire: bytes) -> bytes:
    edit = bytearray(wire)
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(edit)))
        action = draw(st.sampled_from(["flip", "insert", "delete", "duplicate", "truncate"]))
        if action == "flip" and at < len(edit):
            edit[at] = draw(st.sampled_from(b"\x00\t\n\r ,:;\x7f\xff") | st.integers(0, 255))
        elif action == "insert":
            edit[at:at] = draw(st.sampled_from([CRLF, b"\r", b"\n", b" ", b";", b"0\r\n", b"\r\n\r\n"]))
        elif action == "delete":
            del edit[at : at + draw(st.integers(1, 4))]
        elif action == "duplicate":
            edit[at:at] = edit[at : at + draw(st.integers(1, 40))]
        else:
            del edit[at:]
    return bytes(edit)


hostile_requests = st.one_of(
    st.binary(max_size=400),
    request_streams().flatmap(lambda stream: mutated(stream[0])),
)
hostile_responses = st.one_of(
    st.binary(max_size=400),
    response_streams().flatmap(lambda stream: mutated(stream[0])),
)
limits = st.sampled_from([{}, {"max_head": 120, "max_line": 30}, {"max_head": 60, "max_line": 60}])


def without_bodies(events: list[object]) -> list[object]:
    """Body bytes before an error legitimately depend on how far the reader got."""
    return [e for e in events if not isinstance(e, BodyReceived)]


def _assert_only_protocol_errors_the_same_way(
    is_request: bool, wire: bytes, cuts: list[int], answers: list[bytes], eof: bool, limits: dict[str, int]
) -> None:
    """Whatever the input, only ProtocolError escapes, and chunking changes nothing but body splits."""

    def run(chunks: list[bytes]) -> list[object]:
        return read(HttpReader(is_request, **limits), chunks, eof=eof, answers=answers, max_messages=4)

    expected = run(whole(wire))  # anything but ProtocolError escapes and fails here
    failed = bool(expected) and isinstance(expected[-1], tuple)
    for chunks in (bytewise(wire), split_at(wire, cuts)):
        events = run(chunks)
        if failed:
            assert without_bodies(events) == without_bodies(expected)
        else:
            assert events == expected


answer_lists = st.lists(st.sampled_from([b"GET", b"HEAD", b"CONNECT"]), max_size=4)


@FUZZ
@given(wire=hostile_requests, eof=st.booleans(), limits=limits, data=st.data())
def test_hostile_requests_raise_only_protocol_error(
    wire: bytes, eof: bool, limits: dict[str, int], data: st.DataObject
) -> None:
    _assert_only_protocol_errors_the_same_way(True, wire, cuts_for(data, wire), [], eof, limits)


@FUZZ
@given(wire=hostile_responses, answers=answer_lists, eof=st.booleans(), limits=limits, data=st.data())
def test_hostile_responses_raise_only_protocol_error(
    wire: bytes, answers: list[bytes], eof: bool, limits: dict[str, int], data: st.DataObject
) -> None:
    _assert_only_protocol_errors_the_same_way(False, wire, cuts_for(data, wire), answers, eof, limits)
