"""The TLS ClientHello of a connection (RFC 8446 sections 4.1.2 and 5.1, RFC 6066 section 3), sans-I/O.

`HelloReader` takes a connection's first bytes with `receive_data` and returns
the `ClientHello` from `next_event` once it is whole, however it was split into
handshake records and TCP segments. It keeps every byte it was given for the
caller to forward untouched (`take_buffered`), and answers only what it can
prove: never a ClientHello from partial data, and `ProtocolError` (the only
exception it raises) only when the bytes cannot begin a TLS ClientHello.

`server_name(data)` is the one-shot probe: the host name in the first record
of `data`, or None when that record is not a whole ClientHello or carries no
SNI. It never raises on any input.

Neither ever reads a socket, the event loop or the clock.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Final

from lanner.wire.errors import ProtocolError

_HANDSHAKE: Final = 0x16
_CLIENT_HELLO: Final = 0x01
_EXT_SERVER_NAME: Final = 0x0000
_EXT_ALPN: Final = 0x0010  # RFC 7301 section 3.1
_EXT_SUPPORTED_VERSIONS: Final = 0x002B  # RFC 8446 section 4.2.1
_HOST_NAME: Final = 0x00
_RECORD_HEADER: Final = 5
_MESSAGE_HEADER: Final = 4
# Plaintext records stop at 2^14 (RFC 8446 section 5.1); 2^14 + 2048 is the largest record any TLS
# version allows (RFC 5246 section 6.2.3), so only a length no TLS peer could send is refused.
MAX_RECORD: Final = 2**14 + 2048
DEFAULT_MAX_HELLO: Final = 64 * 1024


@dataclass(frozen=True, slots=True)
class ClientHello:
    """A whole ClientHello; `size` counts the bytes of the TLS records that carried it."""

    server_name: str | None
    alpn: tuple[str, ...]
    versions: tuple[int, ...]
    size: int


class _Short(Exception):
    """The bytes end before the field being read."""


class _Reader:
    __slots__ = ("data", "pos", "end")

    def __init__(self, data: bytes, pos: int, end: int) -> None:
        self.data, self.pos, self.end = data, pos, min(end, len(data))

    def take(self, size: int) -> bytes:
        if self.pos + size > self.end:
            raise _Short
        chunk = self.data[self.pos : self.pos + size]
        self.pos += size
        return chunk

    def number(self, size: int) -> int:
        return int.from_bytes(self.take(size), "big")

    def vector(self, length_size: int) -> _Reader:
        size = self.number(length_size)
        if self.pos + size > self.end:
            raise _Short
        inner = _Reader(self.data, self.pos, self.pos + size)
        self.pos += size
        return inner

    def rest(self) -> bytes:
        return self.take(self.end - self.pos)


class HelloReader:
    """The client side of a connection up to the end of its ClientHello."""

    def __init__(self, max_bytes: int = DEFAULT_MAX_HELLO) -> None:
        self.max_bytes = max_bytes  # bound on the handshake message, header included
        self._buf = bytearray()
        self._taken = 0  # bytes of _buf already handed out by take_buffered
        self._used = 0  # bytes of _buf in whole records already read
        self._message = bytearray()  # handshake bytes reassembled from those records
        self._hello: ClientHello | None = None
        self._error: ProtocolError | None = None
        self._eof = False

    def receive_data(self, data: bytes) -> None:
        self._buf += data

    def receive_eof(self) -> None:
        self._eof = True

    @property
    def buffered(self) -> int:
        return len(self._buf) - self._taken

    def take_buffered(self) -> bytes:
        """Every byte received and not yet taken; reading the hello carries on unaffected."""
        data = bytes(self._buf[self._taken :])
        if self._hello is None:
            self._taken = len(self._buf)  # the unfinished hello still needs them
        else:
            self._buf.clear()
            self._taken = 0
        return data

    def next_event(self) -> ClientHello | None:
        """The ClientHello once it is whole, None while more bytes are needed."""
        if self._error is not None:
            raise self._error  # a verdict on bytes already received never changes
        try:
            if self._hello is None:
                self._hello = self._advance()
            if self._hello is None and self._eof:
                raise ProtocolError("connection closed before the ClientHello was complete")
        except ProtocolError as exc:
            self._error = exc
            raise
        return self._hello

    def _advance(self) -> ClientHello | None:
        while (fragment := self._next_record()) is not None:
            self._message += fragment
            self._check_message_head(self._message)
            if len(self._message) < _MESSAGE_HEADER:
                continue
            length = int.from_bytes(self._message[1:_MESSAGE_HEADER], "big")
            if len(self._message) >= _MESSAGE_HEADER + length:
                body = bytes(self._message[_MESSAGE_HEADER : _MESSAGE_HEADER + length])
                return _parse_hello(body, self._used)
        # The record in flight is cut short, so all that follows its header is its own fragment.
        start = self._used + _RECORD_HEADER
        self._check_message_head(self._message[:_MESSAGE_HEADER] + self._buf[start : start + _MESSAGE_HEADER])
        return None

    def _next_record(self) -> bytes | None:
        header = self._buf[self._used : self._used + _RECORD_HEADER]
        if header and header[0] != _HANDSHAKE:
            where = "interleaved with the ClientHello" if self._used else "where a ClientHello belongs"
            raise ProtocolError(f"TLS record of content type {header[0]} {where}")
        if len(header) >= 2 and header[1] != 0x03:
            raise ProtocolError(f"record version {header[1]}.x is not TLS")
        if len(header) < _RECORD_HEADER:
            return None
        length = int.from_bytes(header[3:5], "big")
        if length > MAX_RECORD:
            raise ProtocolError(f"TLS record of {length} bytes is over the {MAX_RECORD} limit")
        if length == 0:  # RFC 8446 section 5.1: no zero-length handshake fragments
            raise ProtocolError("empty handshake record")
        end = self._used + _RECORD_HEADER + length
        if len(self._buf) < end:
            return None
        fragment = bytes(self._buf[self._used + _RECORD_HEADER : end])
        self._used = end
        return fragment

    def _check_message_head(self, message: bytearray) -> None:
        head = message[:_MESSAGE_HEADER]
        if head and head[0] != _CLIENT_HELLO:
            raise ProtocolError(f"handshake message type {head[0]} where a ClientHello belongs")
        if len(head) == _MESSAGE_HEADER:
            size = _MESSAGE_HEADER + int.from_bytes(head[1:], "big")
            if size > self.max_bytes:
                raise ProtocolError(f"ClientHello of {size} bytes is over the {self.max_bytes} limit")


def _parse_hello(body: bytes, size: int) -> ClientHello:
    name: str | None = None
    alpn: tuple[str, ...] = ()
    versions: tuple[int, ...] = ()
    hello = _Reader(body, 0, len(body))
    seen: set[int] = set()
    try:
        for kind, content in _extensions(hello):
            if kind in seen:  # RFC 8446 section 4.2: at most one extension of each type
                raise ProtocolError(f"TLS extension {kind} sent twice")
            seen.add(kind)
            if kind == _EXT_SERVER_NAME:
                name = _host_name(content.vector(2))
            elif kind == _EXT_ALPN:
                alpn = _protocols(content.vector(2))
            elif kind == _EXT_SUPPORTED_VERSIONS:
                versions = _versions(content.vector(1))
    except _Short:
        raise ProtocolError("malformed ClientHello: a field overruns its vector") from None
    if hello.pos != hello.end:
        raise ProtocolError("malformed ClientHello: bytes after the extensions")
    return ClientHello(name, alpn, versions, size)


def _extensions(hello: _Reader) -> Iterator[tuple[int, _Reader]]:
    hello.take(2 + 32)  # legacy_version, random
    hello.vector(1)  # legacy_session_id
    hello.vector(2)  # cipher_suites
    hello.vector(1)  # legacy_compression_methods
    if hello.pos == hello.end:
        return  # a TLS 1.2 hello may carry no extensions at all (RFC 5246 section 7.4.1.2)
    extensions = hello.vector(2)
    while extensions.pos < extensions.end:
        yield extensions.number(2), extensions.vector(2)


def _protocols(names: _Reader) -> tuple[str, ...]:
    protocols = []
    while names.pos < names.end:
        # Protocol ids are opaque bytes (GREASE ones are not ASCII, RFC 8701); latin-1 keeps each byte.
        protocols.append(names.vector(1).rest().decode("latin-1"))
    return tuple(protocols)


def _versions(listed: _Reader) -> tuple[int, ...]:
    versions = []
    while listed.pos < listed.end:
        versions.append(listed.number(2))
    return tuple(versions)


def looks_like_tls(data: bytes) -> bool:
    return len(data) >= 3 and data[0] == _HANDSHAKE and data[1] == 0x03


def server_name(data: bytes) -> str | None:
    if not looks_like_tls(data):
        return None
    try:
        record = _Reader(data, 0, len(data))
        record.take(3)  # content type, legacy record version
        body = record.vector(2)
        if body.number(1) != _CLIENT_HELLO:
            return None
        for kind, content in _extensions(body.vector(3)):
            if kind == _EXT_SERVER_NAME:
                return _host_name(content.vector(2))
    except _Short:
        return None
    return None


def _host_name(names: _Reader) -> str | None:
    while names.pos < names.end:
        kind = names.number(1)
        raw = names.vector(2).rest()
        if kind == _HOST_NAME:
            try:
                text = raw.decode("ascii")
            except UnicodeDecodeError:
                return None
            return text.lower() if text and all(c.isalnum() or c in "-._" for c in text) else None
    return None
