"""Client side of the handshakes with an upstream proxy vendor: HTTP CONNECT and SOCKS5.

lanner completes the vendor's handshake before it answers its own client: the
client's SOCKS reply or CONNECT status depends on whether the vendor opened the
tunnel, and a vendor's refusal (status, reason, headers, the start of its body)
is what lanner classifies and sanitizes before it tells its client anything.

Both clients are sans-I/O: `start()` gives the first bytes to send,
`receive_data()` takes the proxy's bytes and gives the next ones to send, and
`result` turns from None into `Established` or `Refused`. They never touch a
socket, a clock or asyncio. What the proxy sends can only raise ProtocolError;
an unsendable target or credentials raise ValueError in `__init__`, and feeding
bytes once `result` is set raises RuntimeError: those bytes belong to the
tunnel (or to nobody, after a refusal), so passing them here is the caller's bug.
"""

from __future__ import annotations

import base64
import functools
import ipaddress
import re
from dataclasses import dataclass
from enum import Enum
from typing import Final

from lanner.wire.errors import ProtocolError
from lanner.wire.http1 import (
    DEFAULT_MAX_LINE,
    NEED_DATA,
    BodyReceived,
    Framing,
    HttpReader,
    ResponseHead,
    ResponseReceived,
    header_value,
)
from lanner.wire.socks import (
    AUTH_VERSION,
    CMD_CONNECT,
    METHOD_NO_AUTH,
    METHOD_NONE_ACCEPTABLE,
    METHOD_USER_PASS,
    SOCKS5_VERSION,
    encode_address,
    parse_address,
)

DEFAULT_MAX_HEAD: Final = 16 * 1024
DEFAULT_MAX_BODY: Final = 4096

_HTTP: Final = b"HTTP/"
_BARE_SUCCESS: Final = re.compile(rb"HTTP/1\.[01] 2[0-9][0-9](?: [\x09\x20-\x7e\x80-\xff]*)?\r\n\r\n")
_HEAD_END: Final = b"\r\n\r\n"
# RFC 3986 section 3.2.2 reg-name, after IDNA: nothing that could end the request line or a header.
_REG_NAME: Final = re.compile(rb"[A-Za-z0-9._~!$&'()*+,;=%-]+")


@dataclass(frozen=True, slots=True)
class Established:
    """The proxy opened the tunnel."""

    leftover: bytes  # sent after the success reply: the first bytes of the tunnel


@dataclass(frozen=True, slots=True)
class Refused:
    """The proxy refused: `stage` "auth" (credentials) or "connect" (the target)."""

    status: int  # the HTTP status; for SOCKS5 an HTTP status that fits the reply code
    reason: str
    headers: tuple[tuple[str, str], ...]  # empty for SOCKS5
    body: bytes  # at most max_body bytes, and only what came with the refusal
    socks_code: int | None  # the SOCKS5 reply code or auth status; None for HTTP
    stage: str


Result = Established | Refused


class HttpConnectClient:
    """One CONNECT request and the proxy's answer to it (RFC 9110 section 9.3.6)."""

    def __init__(
        self,
        host: str,
        port: int,
        username: str | None,
        password: str | None,
        max_head: int = DEFAULT_MAX_HEAD,
        max_body: int = DEFAULT_MAX_BODY,
    ) -> None:
        self._request = _connect_request(host, port, username, password)
        self._max_head = max_head
        self._max_body = max_body
        self._buf = bytearray()  # until the final head: the reader only ever sees whole heads
        self._parser: HttpReader | None = None  # made on the first head that is not a bare success
        self._refusal: ResponseHead | None = None  # a refusal whose body may still be arriving
        self._reason = ""
        self._body = bytearray()
        self.result: Result | None = None

    def start(self) -> bytes:
        return self._request

    def receive_data(self, data: bytes) -> bytes:
        _check_open(self.result)
        if self._refusal is None:
            self._buf += data
            self._read_heads()
        else:
            self._reader.receive_data(data)
        if self._refusal is not None:
            self._gather_body()
        return b""

    def receive_eof(self) -> None:
        if self.result is not None:
            return
        if self._refusal is None:
            raise ProtocolError("proxy closed during the handshake", 502)
        self._settle()  # the body was cut short; the refusal stands

    @property
    def _reader(self) -> HttpReader:
        if self._parser is None:
            max_head = self._max_head
            self._parser = HttpReader(False, max_head, min(max_head, DEFAULT_MAX_LINE), payload=True)
            # A 2xx to CONNECT has no body (RFC 9110 section 9.3.6). Told GET, the reader frames one
            # that declares a body anyway, and that body is read like a refusal's.
            self._parser.expect_response_to(b"GET")
        return self._parser

    def _read_heads(self) -> None:
        while self.result is None and self._refusal is None:
            raw = self._next_head()
            if raw is None:
                return
            if _BARE_SUCCESS.fullmatch(raw):  # the usual answer, a status line alone: no parser needed
                self.result = Established(bytes(self._buf))
                self._buf.clear()
                return
            self._reader.receive_data(raw)
            event = self._reader.next_event()
            assert isinstance(event, ResponseReceived)  # raw is one whole head, within the reader's bounds
            self._answer(event.head)

    def _next_head(self) -> bytes | None:
        buf = self._buf
        if buf[: len(_HTTP)] != _HTTP[: len(buf)]:  # refused at once, not after max_head bytes
            raise ProtocolError("proxy did not answer in HTTP", 502)
        end = buf.find(_HEAD_END, 0, self._max_head + len(_HEAD_END))
        if end < 0:
            if len(buf) >= self._max_head + len(_HEAD_END):
                raise ProtocolError("proxy's response head is larger than max_head", 502)
            return None
        raw = bytes(buf[: end + len(_HEAD_END)])
        del buf[: end + len(_HEAD_END)]
        return raw

    def _answer(self, head: ResponseHead) -> None:
        if 100 <= head.status < 200 and head.status != 101:
            return  # interim (RFC 9110 section 15.2): the final answer follows
        self._reader.receive_data(bytes(self._buf))
        self._buf.clear()
        reason = head.reason.decode("latin-1")
        if 200 <= head.status < 300:
            if head.version not in ("1.0", "1.1"):
                reason = "success answer not in HTTP/1.x"
            elif _declares_body(head):
                reason = "success answer with a body"
            else:
                self.result = Established(self._reader.take_buffered())
                return
        self._refusal = head
        self._reason = reason

    def _gather_body(self) -> None:
        """Take the refusal's body up to max_body: wait only for what Content-Length promised."""
        assert self._refusal is not None
        framing = self._refusal.framing
        wanted = min(self._refusal.length, self._max_body) if framing is Framing.LENGTH else self._max_body
        while len(self._body) < wanted:
            try:
                event = self._reader.next_event()
            except ProtocolError:
                break  # a malformed chunk ends the evidence, not the refusal
            if isinstance(event, BodyReceived):
                data = _payload(self._reader, event) if framing is Framing.CHUNKED else event.data
                self._body += data[: wanted - len(self._body)]
            elif event is NEED_DATA and framing is Framing.LENGTH:
                return
            else:
                break
        self._settle()

    def _settle(self) -> None:
        assert self._refusal is not None
        head = self._refusal
        headers = tuple((name.decode("latin-1"), value.decode("latin-1")) for name, value in head.headers)
        stage = "auth" if head.status == 407 else "connect"
        self.result = Refused(head.status, self._reason, headers, bytes(self._body), None, stage)


class _Step(Enum):
    METHOD = "method reply"
    AUTH = "auth reply"
    REPLY = "reply"


# RFC 1928 section 6: each reply code, the HTTP status lanner's own answer would carry, and its name.
_REPLIES: Final = {
    0x01: (502, "general SOCKS server failure"),
    0x02: (403, "connection not allowed by ruleset"),
    0x03: (502, "network unreachable"),
    0x04: (502, "host unreachable"),
    0x05: (502, "connection refused"),
    0x06: (504, "TTL expired"),
    0x07: (502, "command not supported"),
    0x08: (502, "address type not supported"),
}


class Socks5Client:
    """A SOCKS5 CONNECT (RFC 1928), with username/password (RFC 1929) when a username is given."""

    def __init__(self, host: str, port: int, username: str | None, password: str | None) -> None:
        target = wire_host(host, port)
        self._request = bytes((SOCKS5_VERSION, CMD_CONNECT, 0x00)) + encode_address(target, port)
        self._auth = _user_pass_request(username, password)
        self._method = METHOD_NO_AUTH if self._auth is None else METHOD_USER_PASS
        self._step = _Step.METHOD
        self._buf = bytearray()
        self.result: Result | None = None

    def start(self) -> bytes:
        return bytes((SOCKS5_VERSION, 1, self._method))

    def receive_data(self, data: bytes) -> bytes:
        _check_open(self.result)
        self._buf += data
        to_proxy = bytearray()
        while self.result is None:
            reply = self._advance()
            if reply is None:
                break
            to_proxy += reply
        return bytes(to_proxy)

    def receive_eof(self) -> None:
        if self.result is None:
            raise ProtocolError("proxy closed during the handshake")

    def _advance(self) -> bytes | None:
        """Take the answer to the current step: the bytes it calls for, or None if more are needed."""
        buf = self._buf
        if not buf:
            return None
        expected = AUTH_VERSION if self._step is _Step.AUTH else SOCKS5_VERSION
        if buf[0] != expected:
            raise ProtocolError(f"SOCKS5 {self._step.value}: version {buf[0]:#04x}")
        if len(buf) < 2:
            return None
        if self._step is _Step.METHOD:
            return self._method_chosen(buf[1])
        if self._step is _Step.AUTH:
            return self._auth_answered(buf[1])
        return self._connect_answered(buf[1])

    def _method_chosen(self, method: int) -> bytes:
        del self._buf[:2]
        if method != self._method:
            reason = (
                "no acceptable authentication method"
                if method == METHOD_NONE_ACCEPTABLE
                else f"proxy chose method {method:#04x}, which was not offered"
            )
            self.result = Refused(407, reason, (), b"", METHOD_NONE_ACCEPTABLE, "auth")
            return b""
        if self._auth is None:
            self._step = _Step.REPLY
            return self._request
        self._step = _Step.AUTH
        return self._auth

    def _auth_answered(self, status: int) -> bytes:
        del self._buf[:2]
        if status:
            self.result = Refused(407, "username/password refused", (), b"", status, "auth")
            return b""
        self._step = _Step.REPLY
        return self._request

    def _connect_answered(self, code: int) -> bytes | None:
        if code:
            # Settled on the code alone: servers often send no usable address with a failure.
            status, reason = _REPLIES.get(code, (502, f"unassigned reply code {code:#04x}"))
            self.result = Refused(status, reason, (), b"", code, "connect")
            return b""
        if len(self._buf) < 4:
            return None
        parsed = parse_address(self._buf, 3)
        if parsed is None:
            return None
        self.result = Established(bytes(self._buf[parsed[2] :]))
        self._buf.clear()
        return b""


@functools.lru_cache(maxsize=4096)  # a sticky session sends the same request for its whole period
def _connect_request(host: str, port: int, username: str | None, password: str | None) -> bytes:
    authority = _authority(wire_host(host, port), port)
    lines = [f"CONNECT {authority} HTTP/1.1", f"Host: {authority}"]
    credentials = _basic_credentials(username, password)
    if credentials is not None:
        lines.append(f"Proxy-Authorization: Basic {credentials}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("ascii")


def _check_open(result: Result | None) -> None:
    if result is not None:
        raise RuntimeError("the handshake is over: later bytes belong to the tunnel, not to this client")


@functools.lru_cache(maxsize=4096)  # checked on every tunnel; destinations repeat
def wire_host(host: str, port: int) -> str:
    """`host` as sent (IP literal normalised, name IDNA-encoded); ValueError if it cannot be sent."""
    if not 0 <= port <= 0xFFFF:
        raise ValueError(f"port out of range: {port}")
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        name = host.encode("idna")  # UnicodeError, a ValueError, for an empty or overlong label
        if len(name) > 255 or not _REG_NAME.fullmatch(name):
            raise ValueError(f"not a host name: {host!r}") from None
        return name.decode("ascii")
    if isinstance(ip, ipaddress.IPv6Address) and ip.scope_id:
        raise ValueError(f"a scoped IPv6 address means nothing to a proxy: {host!r}")
    return str(ip)


def _authority(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _basic_credentials(username: str | None, password: str | None) -> str | None:
    if username is None:
        if password is not None:
            raise ValueError("a password without a username")
        return None
    if ":" in username:
        raise ValueError("a Basic user-id cannot contain a colon (RFC 7617 section 2)")
    return base64.b64encode(f"{username}:{password or ''}".encode()).decode("ascii")


def _user_pass_request(username: str | None, password: str | None) -> bytes | None:
    if username is None and password is None:
        return None
    if username is None or password is None:
        raise ValueError("SOCKS5 username/password needs both")
    fields = (username.encode(), password.encode())
    if not all(0 < len(field) <= 255 for field in fields):
        raise ValueError("SOCKS5 username and password are 1 to 255 bytes each (RFC 1929)")
    return bytes((AUTH_VERSION,)) + b"".join(bytes((len(field),)) + field for field in fields)


def _declares_body(head: ResponseHead) -> bool:
    if head.framing is Framing.LENGTH or head.framing is Framing.CHUNKED:
        return True
    return header_value(head.headers, b"transfer-encoding") is not None


def _payload(reader: HttpReader, event: BodyReceived) -> bytes:
    """The chunk data in a chunked body's wire bytes, without the chunk framing."""
    data = event.data
    return b"".join(data[start:end] for start, end in reader.payload_spans)
