"""HTTP/1.x analysis, sans-I/O: both directions of a connection in, exchanges out.

`HttpAnalyzer` reads a copy-free tee of what a relay forwards (the client's
bytes and the server's, as they arrive) with two `HttpReader`s and pairs
responses with requests in order, pipelined or not. It never refuses
anything: the relay has already forwarded the bytes. When the bytes stop being
HTTP (a CONNECT tunnel, a 101 upgrade) or stop parsing, the analyzer says why
in `stopped` and ignores the rest; exchanges still open are completed with an
error so that nothing is lost silently.

Bodies are captured by `BodyCapture`: the payload without its transfer coding,
bounded (first and last halves of `limit` kept past it). The caller passes the
time with every call; this module never reads a clock.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

from lanner.wire.errors import ProtocolError
from lanner.wire.http1 import (
    DEFAULT_MAX_HEAD,
    DEFAULT_MAX_LINE,
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
)

DEFAULT_MAX_BODY = 1024 * 1024


class BodyCapture:
    """A bounded copy of a body: whole up to `limit`, else its first and last halves."""

    __slots__ = ("limit", "head_limit", "tail_limit", "head", "tail", "size")

    def __init__(self, limit: int = DEFAULT_MAX_BODY) -> None:
        self.limit = limit
        self.tail_limit = limit // 2
        self.head_limit = limit - self.tail_limit
        self.head = bytearray()
        self.tail = bytearray()
        self.size = 0

    def add(self, data: bytes | memoryview) -> None:
        size = len(data)
        self.size += size
        room = self.head_limit - len(self.head)
        if room > 0:
            if size <= room:
                self.head += data
                return
            self.head += data[:room]
            data = data[room:]
            size -= room
        keep = self.tail_limit
        if size >= keep:
            self.tail[:] = data[size - keep :] if keep else b""
        else:
            self.tail += data
            if len(self.tail) > keep:
                del self.tail[: len(self.tail) - keep]

    def add_spans(self, data: bytes | memoryview, spans: list[tuple[int, int]]) -> None:
        """Add the chunk payload of raw chunked bytes (`HttpReader.payload_spans`)."""
        view = memoryview(data)
        for start, end in spans:
            self.add(view[start:end])

    @property
    def truncated(self) -> bool:
        return self.size > self.limit

    def data(self) -> bytes:
        return bytes(self.head + self.tail)


class Exchange:
    """One request and its response, as far as they got. Times are the caller's clock."""

    __slots__ = (
        "request",
        "request_body",
        "request_trailers",
        "started",
        "request_ended",
        "interim",
        "response",
        "response_body",
        "response_trailers",
        "response_started",
        "response_ended",
        "error",
        "upgraded",
    )

    def __init__(self, request: RequestHead, started: float, max_body: int = DEFAULT_MAX_BODY) -> None:
        self.request = request
        self.request_body = BodyCapture(max_body)
        self.request_trailers: Headers = []
        self.started = started
        self.request_ended: float | None = None
        self.interim: list[int] = []
        self.response: ResponseHead | None = None
        self.response_body = BodyCapture(max_body)
        self.response_trailers: Headers = []
        self.response_started: float | None = None
        self.response_ended: float | None = None
        self.error: str | None = None
        self.upgraded = False  # a 101, or a 2xx to CONNECT: the bytes after it are not HTTP

    def interim_received(self, head: ResponseHead, now: float) -> None:
        if self.response_started is None:
            self.response_started = now
        self.interim.append(head.status)

    def response_received(self, head: ResponseHead, now: float) -> None:
        if self.response_started is None:
            self.response_started = now
        self.response = head


class HttpAnalyzer:
    """Both directions of one HTTP/1.x connection, parsed for recording only."""

    def __init__(
        self,
        max_body: int = DEFAULT_MAX_BODY,
        max_head: int = DEFAULT_MAX_HEAD,
        max_line: int = DEFAULT_MAX_LINE,
    ) -> None:
        self.max_body = max_body
        self.max_head = max_head
        self.requests = HttpReader(True, max_head, max_line, payload=True)
        self.responses = HttpReader(False, max_head, max_line, payload=True)
        self.waiting: deque[Exchange] = deque()  # requests whose final response has not begun
        self.request_open: Exchange | None = None  # its body is being read
        self.response_open: Exchange | None = None
        self.holding = False  # after CONNECT or Upgrade: client bytes wait for the answer
        self.stopped: str | None = None
        self.done: list[Exchange] = []
        self.request_began = 0.0

    # -- input; each call returns the exchanges it completed --

    def client_data(self, data: bytes, now: float) -> list[Exchange]:
        if self.stopped is None:
            if self.request_open is None and not self.requests.buffered:
                self.request_began = now  # the first byte of the next request head
            self.requests.receive_data(data)
            self._guard(self._read_requests, now)
            if self.responses.buffered and self.waiting and self.stopped is None:
                self._guard(self._read_responses, now)  # a response that overtook its request in the tee
        return self._take()

    def server_data(self, data: bytes, now: float) -> list[Exchange]:
        if self.stopped is None:
            if self.response_open is None and self.waiting and self.waiting[0].response_started is None:
                self.waiting[0].response_started = now  # the first byte of its response
            self.responses.receive_data(data)
            self._guard(self._read_responses, now)
        return self._take()

    def client_eof(self, now: float) -> list[Exchange]:
        if self.stopped is None:
            self.requests.receive_eof()
            self._guard(self._read_requests, now)
        return self._take()

    def server_eof(self, now: float) -> list[Exchange]:
        if self.stopped is None:
            self.responses.receive_eof()
            self._guard(self._read_responses, now)
        if self.stopped is None:
            unanswerable = self.responses.buffered and not self.waiting and self.response_open is None
            self.stop("a response without a request" if unanswerable else "connection closed", now)
        return self._take()

    def close(self, now: float) -> list[Exchange]:
        """The connection ended: complete whatever is still open."""
        if self.stopped is None:
            return self.server_eof(now)
        return self._take()

    def leftover(self) -> tuple[bytes, bytes]:
        """After an upgrade: the bytes each side sent past it (client's, server's), taken once."""
        return bytes(self.requests.take_buffered()), bytes(self.responses.take_buffered())

    def stop(self, reason: str, now: float) -> None:
        self.stopped = reason
        open_exchanges = [self.response_open, *self.waiting]
        if self.request_open is not None and self.request_open not in open_exchanges:
            open_exchanges.append(self.request_open)
        for exchange in open_exchanges:
            if exchange is not None and not exchange.upgraded:
                exchange.error = exchange.error or f"incomplete: {reason}"
                self.done.append(exchange)
        self.waiting.clear()
        self.request_open = self.response_open = None

    def _take(self) -> list[Exchange]:
        done = self.done
        if done:
            self.done = []
        return done

    def _guard(self, read: Callable[[float], None], now: float) -> None:
        try:
            read(now)
        except ProtocolError as exc:
            self.stop(f"not HTTP/1.x: {exc}", now)

    # -- requests --

    def _read_requests(self, now: float) -> None:
        reader = self.requests
        while not self.holding:
            event = reader.next_event()
            if type(event) is BodyReceived:
                self._body(self.request_open, event.data, reader, True)
            elif type(event) is RequestReceived:
                self._request(event.head, now)
            elif type(event) is MessageEnded:
                self._request_ended(now)
            elif event is PAUSED or event is NEED_DATA:
                break
        if self.holding and reader.buffered > self.max_head:
            self.stop("client sent more than a head before its upgrade was answered", now)

    def _request(self, head: RequestHead, now: float) -> None:
        exchange = Exchange(head, self.request_began or now, self.max_body)
        self.request_began = 0.0
        self.waiting.append(exchange)
        self.request_open = exchange
        if head.framing is Framing.TUNNEL:  # CONNECT: nothing more until the answer
            exchange.request_ended = now
            self.request_open = None
            self.holding = True
        self._expect_next_response()

    def _request_ended(self, now: float) -> None:
        exchange = self.request_open
        self.request_open = None
        if exchange is not None:
            exchange.request_ended = now
            if self.requests.trailers:  # the reader starts a new list for the next message
                exchange.request_trailers = self.requests.trailers
            if exchange.request.upgrade:
                self.holding = True
            self._complete_if_done(exchange)
        self.requests.start_next()

    # -- responses --

    def _read_responses(self, now: float) -> None:
        reader = self.responses
        while self.stopped is None:
            if self.response_open is None and not self.waiting:
                # Nothing to answer yet: the bytes wait (boundedly) for the request they answer.
                if reader.buffered > self.max_head:
                    raise ProtocolError("a response without a request")
                break
            event = reader.next_event()
            if type(event) is BodyReceived:
                self._body(self.response_open, event.data, reader, False)
            elif type(event) is ResponseReceived:
                self._response(event.head, now)
            elif type(event) is MessageEnded:
                self._response_ended(now)
            elif event is PAUSED or event is NEED_DATA:
                break

    def _response(self, head: ResponseHead, now: float) -> None:
        exchange = self.waiting[0]
        if 100 <= head.status < 200 and head.status != 101:
            exchange.interim_received(head, now)
            return
        self.waiting.popleft()
        exchange.response_received(head, now)
        self.response_open = exchange
        if head.framing is Framing.TUNNEL:
            exchange.upgraded = True
            exchange.response_ended = now
            self.response_open = None
            self.done.append(exchange)
            self.stop("upgraded" if head.status == 101 else "tunnel", now)

    def _response_ended(self, now: float) -> None:
        exchange = self.response_open
        self.response_open = None
        if exchange is not None:
            exchange.response_ended = now
            if self.responses.trailers:
                exchange.response_trailers = self.responses.trailers
            self._complete_if_done(exchange)
            if exchange.request.method == b"CONNECT" or exchange.request.upgrade:
                # The tunnel or upgrade was refused: the client's bytes are HTTP again.
                self.requests.cancel_tunnel()
                self.holding = False
        self._expect_next_response()
        self.responses.start_next()
        if not self.holding and self.requests.buffered:
            self._read_requests(now)

    def _expect_next_response(self) -> None:
        if self.waiting:
            self.responses.expect_response_to(self.waiting[0].request.method)

    # -- shared --

    def _body(
        self, exchange: Exchange | None, data: bytes | memoryview, reader: HttpReader, request: bool
    ) -> None:
        if exchange is None:
            return
        capture = exchange.request_body if request else exchange.response_body
        head = exchange.request if request else exchange.response
        if head is not None and head.framing is Framing.CHUNKED:
            capture.add_spans(data, reader.payload_spans)
        else:
            capture.add(data)

    def _complete_if_done(self, exchange: Exchange) -> None:
        if exchange.request_ended is not None and exchange.response_ended is not None:
            self.done.append(exchange)
