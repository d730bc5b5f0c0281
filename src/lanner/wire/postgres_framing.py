"""Splits one direction of a PostgreSQL connection into messages, in bounded memory, sans-I/O.

After startup every message is a type byte, an int32 length that counts itself, and
a body (protocol section 55.7). `MessageReader` hands each body to the handler its
type maps to, with the body's full size and the time of the chunk that completed
it. A handler keeps at most its own number of leading bytes: the rest of a longer
message (a 50 MB DataRow, a huge Bind) is counted and skipped as it streams by and
never buffered, so a reader holds at most one header and one kept prefix.

Whole messages are sliced straight out of each chunk; only a message split across
chunks is copied into the reader's own buffer. An unknown type byte or a length
under 4 raises `ProtocolError`, the only exception raised here.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Final, NoReturn

from lanner.wire.errors import ProtocolError

Handler = Callable[[bytes, int, float], None]  # (kept body, full body size, time)
Kinds = dict[int, tuple[Handler, int]]  # type byte -> (handler, body bytes it keeps)

_LENGTH: Final = struct.Struct(">I")
_HEADER: Final = 5


class MessageReader:
    """Tagged messages from one peer; `kinds` may change between messages."""

    __slots__ = ("kinds", "peer", "header", "in_message", "handler", "size", "remaining", "room", "kept")

    def __init__(self, kinds: Kinds, peer: str) -> None:
        self.kinds = kinds
        self.peer = peer
        self.header = bytearray()  # a header split across chunks, under 5 bytes
        self.in_message = False
        self.handler: Handler = _unset
        self.size = 0
        self.remaining = 0  # body bytes still to come
        self.room = 0  # body bytes still to keep
        self.kept = bytearray()

    def feed(self, data: bytes, now: float) -> None:
        pos = self._resume(data, now) if self.header or self.in_message else 0
        last = len(data) - _HEADER  # where the last whole header can start
        kinds = self.kinds
        unpack = _LENGTH.unpack_from
        while pos <= last:
            kind = kinds.get(data[pos])
            (length,) = unpack(data, pos + 1)
            if kind is None or length < 4:
                self._refuse(data[pos], length)
            handler, keep = kind
            start = pos + _HEADER
            pos += 1 + length
            if pos > len(data):
                self._begin(handler, keep, length - 4)
                pos = self._body(data, start, now)
            elif length - 4 <= keep:
                handler(data[start:pos], length - 4, now)
            else:
                handler(data[start : start + keep], length - 4, now)
        if pos < len(data):
            self.header += data[pos:]

    def _resume(self, data: bytes, now: float) -> int:
        pos = 0
        if not self.in_message:
            header = self.header
            pos = _HEADER - len(header)
            header += data[:pos]
            if len(header) < _HEADER:
                return len(data)
            kind = self.kinds.get(header[0])
            (length,) = _LENGTH.unpack_from(header, 1)
            if kind is None or length < 4:
                self._refuse(header[0], length)
            header.clear()
            self._begin(kind[0], kind[1], length - 4)
        return self._body(data, pos, now)

    def _refuse(self, kind: int, length: int) -> NoReturn:
        if kind not in self.kinds:
            raise ProtocolError(f"unknown {self.peer} message type {bytes([kind])!r}")
        raise ProtocolError(f"{self.peer} message length {length} under 4")

    def _begin(self, handler: Handler, keep: int, size: int) -> None:
        self.in_message = True
        self.handler = handler
        self.size = self.remaining = size
        self.room = min(keep, size)

    def _body(self, data: bytes, pos: int, now: float) -> int:
        take = min(self.remaining, len(data) - pos)
        if self.room and take:
            piece = min(self.room, take)
            self.kept += data[pos : pos + piece]
            self.room -= piece
        self.remaining -= take
        pos += take
        if not self.remaining:
            self.in_message = False
            body = bytes(self.kept)
            self.kept.clear()
            self.handler(body, self.size, now)
        return pos


def _unset(body: bytes, size: int, now: float) -> None:
    """The handler before the first split message; never called."""
