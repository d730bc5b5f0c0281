"""HTTP/1.x message framing for a proxy (RFC 9112), sans-I/O.

`HttpReader` splits one direction of a connection into messages: a head event,
body events carrying the *raw wire bytes* (chunk framing included, so a proxy
forwards them verbatim without re-encoding), then `MessageEnded`. Heads are
parsed and validated by llhttp (httptools); body framing is tracked here
because a proxy needs byte offsets, which httptools does not expose, and must
be told that a response answers HEAD, which llhttp's Python binding cannot be.

After `MessageEnded` the reader pauses until `start_next()`: a proxy serves
one request at a time even when the client pipelines.

A reader built with `payload=True` also tells its user where the payload is in
a chunked body (`payload_spans`, offsets into the last `BodyReceived`) and
collects trailer fields (`trailers`): what an analyzer needs to record the body
without its transfer coding, at no cost to a reader that only forwards.

Heads and events are slotted dataclasses but not frozen: a frozen `__init__`
costs about 2 µs more per head, paid on every proxied request. Treat them as
immutable all the same.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum, auto
from typing import Final

import httptools

from lanner.wire.errors import ProtocolError

DEFAULT_MAX_HEAD: Final = 32 * 1024
DEFAULT_MAX_LINE: Final = 8 * 1024
MAX_CHUNK_LINE: Final = 4096
_CRLF: Final = b"\r\n"
_HEAD_END: Final = b"\r\n\r\n"

Headers = list[tuple[bytes, bytes]]


class Framing(Enum):
    NONE = auto()  # no body
    LENGTH = auto()  # Content-Length
    CHUNKED = auto()
    UNTIL_CLOSE = auto()  # a response delimited by the server closing
    TUNNEL = auto()  # after 2xx to CONNECT or 101: the bytes are no longer HTTP


@dataclass(slots=True)
class RequestHead:
    method: bytes
    target: bytes
    version: str  # "1.0" or "1.1"
    headers: Headers
    keep_alive: bool
    upgrade: bool
    framing: Framing
    length: int
    # Lowercase options named by Connection headers (RFC 9110 section 7.6.1).
    connection: frozenset[bytes] = field(default=frozenset(), compare=False)


@dataclass(slots=True)
class ResponseHead:
    status: int
    reason: bytes
    version: str
    headers: Headers
    keep_alive: bool
    framing: Framing
    length: int
    connection: frozenset[bytes] = field(default=frozenset(), compare=False)


@dataclass(slots=True)
class RequestReceived:
    head: RequestHead
    raw_size: int


@dataclass(slots=True)
class ResponseReceived:
    head: ResponseHead
    raw_size: int


@dataclass(slots=True)
class BodyReceived:
    data: bytes | memoryview


@dataclass(slots=True)
class MessageEnded:
    pass


class _Sentinel:
    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


NEED_DATA: Final = _Sentinel("NEED_DATA")
PAUSED: Final = _Sentinel("PAUSED")
MESSAGE_ENDED: Final = MessageEnded()

HttpEvent = RequestReceived | ResponseReceived | BodyReceived | MessageEnded


class _Phase(Enum):
    HEAD = auto()
    BODY_LENGTH = auto()
    CHUNK_SIZE = auto()
    CHUNK_DATA = auto()
    CHUNK_CRLF = auto()
    TRAILERS = auto()
    UNTIL_CLOSE = auto()
    DONE = auto()  # paused after MessageEnded
    TUNNEL = auto()


class HttpReader:
    """One direction of an HTTP/1.x connection: requests (`is_request`) or responses."""

    def __init__(
        self,
        is_request: bool,
        max_head: int = DEFAULT_MAX_HEAD,
        max_line: int = DEFAULT_MAX_LINE,
        payload: bool = False,
    ) -> None:
        self.is_request = is_request
        self.payload = payload
        # With `payload`: (start, end) of chunk data within the last chunked BodyReceived.
        self.payload_spans: list[tuple[int, int]] = []
        self.trailers: Headers = []
        self.max_head = max_head
        self.max_line = max_line
        self._buf: bytes = b""
        self._pos = 0
        self._phase = _Phase.HEAD
        self._remaining = 0
        self._request_method = b"GET"
        self._eof = False
        # A message whose body is complete returns MessageEnded on the next call.
        self._ended_pending = False

    # -- input --

    def receive_data(self, data: bytes) -> None:
        if self._pos >= len(self._buf):
            self._buf, self._pos = data, 0
        else:
            self._buf = self._buf[self._pos :] + data
            self._pos = 0

    def receive_eof(self) -> None:
        self._eof = True

    def expect_response_to(self, method: bytes) -> None:
        """Tell a response reader which request the next response answers."""
        self._request_method = method

    def start_next(self) -> None:
        if self._phase is _Phase.DONE:
            self._phase = _Phase.HEAD

    def cancel_tunnel(self) -> None:
        """The CONNECT this reader read was refused: what follows is HTTP again."""
        if self._phase is _Phase.TUNNEL:
            self._phase = _Phase.HEAD

    def take_buffered(self) -> bytes:
        """Everything received and not yet returned (for a switch to tunnelling)."""
        data = self._buf[self._pos :]
        self._buf, self._pos = b"", 0
        return data

    @property
    def buffered(self) -> int:
        return len(self._buf) - self._pos

    # -- events --

    def next_event(self) -> HttpEvent | _Sentinel:
        if self._ended_pending:
            return self._done()
        phase = self._phase
        if phase is _Phase.HEAD:
            return self._head()
        if phase is _Phase.BODY_LENGTH:
            return self._body_length()
        if phase is _Phase.UNTIL_CLOSE:
            return self._until_close()
        if phase is _Phase.DONE or phase is _Phase.TUNNEL:
            return PAUSED
        return self._chunked()

    def _head(self) -> HttpEvent | _Sentinel:
        buf, pos = self._buf, self._pos
        while buf.startswith(_CRLF, pos):  # RFC 9112 section 2.2: ignore leading empty lines
            pos += 2
        self._pos = pos
        end = buf.find(_HEAD_END, pos, pos + self.max_head + 4)
        if end < 0:
            return self._head_incomplete(buf, pos)
        raw = buf[pos : end + 4]
        if raw.find(_CRLF) > self.max_line:  # the same bound _head_incomplete applies to a partial line
            raise ProtocolError("start line too long", 414 if self.is_request else 502)
        self._pos = end + 4
        if self.is_request:
            request = self._parse_request(raw)
            return RequestReceived(request, len(raw))
        response = self._parse_response(raw)
        return ResponseReceived(response, len(raw))

    def _head_incomplete(self, buf: bytes, pos: int) -> _Sentinel:
        pending = len(buf) - pos
        line_end = buf.find(_CRLF, pos, pos + self.max_line + 2)
        # Only fail once no completion could fit the limit _head applies to the whole head
        # (a max_line line may still be waiting for its LF), so chunking never changes the verdict.
        if line_end < 0 and pending >= self.max_line + 2:
            raise ProtocolError("start line too long", 414 if self.is_request else 502)
        if pending >= self.max_head + 4:
            raise ProtocolError("header section too large", 431 if self.is_request else 502)
        if self._eof and pending:
            raise ProtocolError("connection closed inside a message head", 400)
        return NEED_DATA

    def _parse_request(self, raw: bytes) -> RequestHead:
        collector = _HeadCollector()
        parser = httptools.HttpRequestParser(collector)
        _feed(parser, raw, 400)
        method: bytes = parser.get_method()
        version: str = parser.get_http_version()
        if version not in ("1.0", "1.1"):
            # HTTP/0.9 has no headers to route by; HTTP/2+ never arrives in an HTTP/1 request line.
            raise ProtocolError(f"unsupported HTTP version {version}", 400 if version < "1.0" else 505)
        facts = _HeadFacts(collector.headers)
        framing, length = _request_framing(method, facts)
        head = RequestHead(
            method,
            collector.url,
            version,
            collector.headers,
            facts.keep_alive(version, proxy_connection=True),
            facts.upgrade is not None and b"upgrade" in facts.connection,
            framing,
            length,
            facts.connection,
        )
        self._begin_body(framing, length)
        return head

    def _parse_response(self, raw: bytes) -> ResponseHead:
        collector = _HeadCollector()
        parser = httptools.HttpResponseParser(collector)
        _feed(parser, raw, 502)
        status: int = parser.get_status_code()
        version: str = parser.get_http_version()
        facts = _HeadFacts(collector.headers)
        framing, length = _response_framing(self._request_method, status, facts)
        line = raw[: raw.find(_CRLF)]
        second_space = line.find(b" ", 9)
        head = ResponseHead(
            status,
            line[second_space + 1 :] if second_space > 0 else b"",
            version,
            collector.headers,
            facts.keep_alive(version) and framing is not Framing.UNTIL_CLOSE,
            framing,
            length,
            facts.connection,
        )
        if 100 <= status < 200 and status != 101:
            return head  # interim: the real response follows, phase stays HEAD
        self._begin_body(framing, length)
        return head

    def _begin_body(self, framing: Framing, length: int) -> None:
        if self.trailers:
            self.trailers = []
        if framing is Framing.LENGTH:
            self._remaining = length
            self._phase = _Phase.BODY_LENGTH if length else _Phase.DONE
        elif framing is Framing.CHUNKED:
            self._phase = _Phase.CHUNK_SIZE
        elif framing is Framing.UNTIL_CLOSE:
            self._phase = _Phase.UNTIL_CLOSE
        elif framing is Framing.TUNNEL:
            self._phase = _Phase.TUNNEL
        else:
            self._phase = _Phase.DONE
        self._ended_pending = self._phase is _Phase.DONE

    def _done(self) -> MessageEnded:
        self._phase = _Phase.DONE
        self._ended_pending = False
        return MESSAGE_ENDED

    def _body_length(self) -> HttpEvent | _Sentinel:
        available = len(self._buf) - self._pos
        if not available:
            if self._eof:
                raise ProtocolError("connection closed inside a body", 400)
            return NEED_DATA
        take = min(available, self._remaining)
        data = self._slice(take)
        self._remaining -= take
        if not self._remaining:
            self._phase = _Phase.DONE
            self._ended_pending = True
        return BodyReceived(data)

    def _until_close(self) -> HttpEvent | _Sentinel:
        if len(self._buf) > self._pos:
            return BodyReceived(self._slice(len(self._buf) - self._pos))
        if self._eof:
            return self._done()
        return NEED_DATA

    def _slice(self, size: int) -> bytes | memoryview:
        buf, pos = self._buf, self._pos
        self._pos = pos + size
        if pos == 0 and size == len(buf):
            return buf
        return memoryview(buf)[pos : pos + size]

    def _chunked(self) -> HttpEvent | _Sentinel:
        start = self._pos
        scan = start
        buf = self._buf
        spans = self.payload_spans if self.payload else None
        if spans:
            spans.clear()
        while True:
            phase = self._phase
            if phase is _Phase.CHUNK_SIZE:
                end = buf.find(_CRLF, scan, scan + MAX_CHUNK_LINE)
                if end < 0:
                    if len(buf) - scan >= MAX_CHUNK_LINE:
                        raise ProtocolError("chunk size line too long", 400)
                    break
                size = _chunk_size(buf[scan:end])
                scan = end + 2
                if size:
                    self._remaining = size
                    self._phase = _Phase.CHUNK_DATA
                else:
                    self._remaining = 0
                    self._phase = _Phase.TRAILERS
            elif phase is _Phase.CHUNK_DATA:
                take = min(len(buf) - scan, self._remaining)
                if not take:
                    break
                if spans is not None:
                    spans.append((scan - start, scan - start + take))
                scan += take
                self._remaining -= take
                if not self._remaining:
                    self._phase = _Phase.CHUNK_CRLF
            elif phase is _Phase.CHUNK_CRLF:
                if len(buf) - scan < 2:
                    break
                if buf[scan : scan + 2] != _CRLF:
                    raise ProtocolError("chunk data not followed by CRLF", 400)
                scan += 2
                self._phase = _Phase.CHUNK_SIZE
            else:  # TRAILERS: header lines until an empty one
                end = buf.find(_CRLF, scan)
                if end < 0:
                    if len(buf) - scan + self._remaining > self.max_head:
                        raise ProtocolError("trailer section too large", 431)
                    break
                self._remaining += end - scan + 2
                if self._remaining > self.max_head:
                    raise ProtocolError("trailer section too large", 431)
                line_empty = end == scan
                if spans is not None and not line_empty:
                    self._trailer(buf[scan:end])
                scan = end + 2
                if line_empty:
                    self._ended_pending = True
                    self._phase = _Phase.DONE
                    break
        if scan > start:
            return BodyReceived(self._slice(scan - start))
        if self._eof:
            raise ProtocolError("connection closed inside a chunked body", 400)
        return NEED_DATA

    def _trailer(self, line: bytes) -> None:
        # Only recorded, never forwarded separately: a malformed line is kept as a nameless field
        # rather than refused, so recording never changes what the proxy accepts.
        name, colon, value = line.partition(b":")
        if colon:
            self.trailers.append((name.strip(), value.strip(b" \t")))
        else:
            self.trailers.append((b"", line))


class _HeadCollector:
    """httptools callback target: gathers the URL and header list."""

    __slots__ = ("url", "headers")

    def __init__(self) -> None:
        self.url = b""
        self.headers: Headers = []

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))


def _feed(
    parser: httptools.HttpRequestParser | httptools.HttpResponseParser, raw: bytes, status: int
) -> None:
    try:
        parser.feed_data(raw)
    except httptools.HttpParserUpgrade:
        pass  # CONNECT or Upgrade: the head is complete, which is all we parse here
    except httptools.HttpParserError as exc:
        raise ProtocolError(f"malformed HTTP head: {exc}", status) from exc


def header_value(headers: Headers, name: bytes) -> bytes | None:
    """The last value of header `name` (lowercase), or None."""
    found = None
    for key, value in headers:
        if key.lower() == name:
            found = value
    return found


_WATCHED_LENGTHS: Final = frozenset(
    len(name)
    for name in (b"content-length", b"transfer-encoding", b"connection", b"proxy-connection", b"upgrade")
)


class _HeadFacts:
    """What framing and forwarding need from a header list, gathered in one pass.

    Header names are compared by length first so that most headers cost no
    `lower()` at all.
    """

    __slots__ = ("lengths", "codings", "connection", "proxy_connection", "upgrade")

    def __init__(self, headers: Headers) -> None:
        self.lengths: list[bytes] = []
        self.codings: list[bytes] = []
        connection: list[bytes] = []
        proxy_connection: list[bytes] = []
        self.upgrade: bytes | None = None
        for name, value in headers:
            if len(name) not in _WATCHED_LENGTHS:
                continue
            lowered = name.lower()
            if lowered == b"content-length":
                self.lengths.append(value)
            elif lowered == b"transfer-encoding":
                self.codings += value.split(b",")
            elif lowered == b"connection":
                connection += value.split(b",")
            elif lowered == b"proxy-connection":
                proxy_connection += value.split(b",")
            elif lowered == b"upgrade":
                self.upgrade = value if self.upgrade is None else self.upgrade + b", " + value
        self.connection = _tokens(connection)
        self.proxy_connection = _tokens(proxy_connection)

    def keep_alive(self, version: str, proxy_connection: bool = False) -> bool:
        """RFC 9112 section 9.3 (llhttp's own answer is reset once a head-only message completes)."""
        tokens = self.connection
        if proxy_connection:  # the pre-standard header clients still send to proxies
            tokens = tokens | self.proxy_connection
        if b"close" in tokens:
            return False
        return version not in ("0.9", "1.0") or b"keep-alive" in tokens

    def content_length(self, status: int) -> int | None:
        lengths = self.lengths
        if not lengths:
            return None
        if len(lengths) == 1 and lengths[0].isdigit() and len(lengths[0]) <= 18:
            return int(lengths[0])  # the common case, settled without building sets
        # RFC 9110 section 8.6: a list of identical values may be treated as one.
        parts = {p.strip() for v in self.lengths for p in v.split(b",")}
        if len(parts) != 1:
            raise ProtocolError("conflicting Content-Length values", status)
        (text,) = parts
        if not text.isdigit() or len(text) > 18:
            raise ProtocolError("invalid Content-Length", status)
        return int(text)

    def final_coding_chunked(self) -> bool | None:
        if not self.codings:
            return None
        codings = [c.strip().lower() for c in self.codings if c.strip()]
        if not codings:
            return None
        return codings[-1] == b"chunked"


_NO_TOKENS: Final[frozenset[bytes]] = frozenset()


def _tokens(values: list[bytes]) -> frozenset[bytes]:
    if not values:
        return _NO_TOKENS
    return frozenset(t.strip().lower() for t in values if t.strip())


def _request_framing(method: bytes, facts: _HeadFacts) -> tuple[Framing, int]:
    chunked = facts.final_coding_chunked()
    length = facts.content_length(400)
    if chunked is not None:
        # RFC 9112 section 6.1: both present is a smuggling vector; refuse.
        if length is not None:
            raise ProtocolError("both Transfer-Encoding and Content-Length", 400)
        if not chunked:
            raise ProtocolError("request Transfer-Encoding does not end in chunked", 400)
        return Framing.CHUNKED, 0
    if method == b"CONNECT":
        return Framing.TUNNEL, 0
    if length:
        return Framing.LENGTH, length
    return Framing.NONE, 0


def _response_framing(method: bytes, status: int, facts: _HeadFacts) -> tuple[Framing, int]:
    # RFC 9112 section 6.3, in order.
    if method == b"HEAD" or 100 <= status < 200 and status != 101 or status in (204, 304):
        return Framing.NONE, 0
    if status == 101 or method == b"CONNECT" and 200 <= status < 300:
        return Framing.TUNNEL, 0
    chunked = facts.final_coding_chunked()
    if chunked is not None:
        return (Framing.CHUNKED, 0) if chunked else (Framing.UNTIL_CLOSE, 0)
    length = facts.content_length(502)
    if length is None:
        return Framing.UNTIL_CLOSE, 0
    if length:
        return Framing.LENGTH, length
    return Framing.NONE, 0


def _chunk_size(line: bytes) -> int:
    text = line.split(b";", 1)[0].strip(b" \t")
    if not text or len(text) > 15 or text.strip(b"0123456789abcdefABCDEF"):
        raise ProtocolError("malformed chunk size", 400)
    return int(text, 16)
