"""The server name in a TLS ClientHello (RFC 8446 section 4.1.2, RFC 6066 section 3), sans-I/O.

`server_name(data)` reads the first TLS record of a connection and answers
only what it can prove: the host name of the server_name extension, or None
when the bytes are not a ClientHello, carry no SNI, or end before it (a hello
split across records or segments is not reassembled here yet). It never
raises on any input.
"""

from __future__ import annotations

from typing import Final

_HANDSHAKE: Final = 0x16
_CLIENT_HELLO: Final = 0x01
_EXT_SERVER_NAME: Final = 0x0000
_HOST_NAME: Final = 0x00


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
        hello = body.vector(3)
        hello.take(2 + 32)  # legacy_version, random
        hello.vector(1)  # legacy_session_id
        hello.vector(2)  # cipher_suites
        hello.vector(1)  # legacy_compression_methods
        extensions = hello.vector(2)
        while extensions.pos < extensions.end:
            kind = extensions.number(2)
            content = extensions.vector(2)
            if kind == _EXT_SERVER_NAME:
                return _host_name(content.vector(2))
    except _Short:
        return None
    return None


def _host_name(names: _Reader) -> str | None:
    while names.pos < names.end:
        kind = names.number(1)
        name = names.vector(2)
        raw = name.take(name.end - name.pos)
        if kind == _HOST_NAME:
            try:
                text = raw.decode("ascii")
            except UnicodeDecodeError:
                return None
            return text.lower() if text and all(c.isalnum() or c in "-._" for c in text) else None
    return None
