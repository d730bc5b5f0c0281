"""The layer shared by both RESP readers: a line whose end has not arrived yet, a string's bytes.

RESP frames every header, and inline commands, with a line. A line split across reads
is kept here, but only its first `cap` + 2 bytes: a reader either refuses a longer
line or, for the status and error lines a server may make long (MONITOR output), reads
it cut. `skim` reads a length-prefixed string's bytes as they come, keeping only its start.
Nothing else here knows RESP; only `skim` raises (a string not ended by CRLF).
"""

from __future__ import annotations

from lanner.wire.errors import ProtocolError


def skim(
    data: bytes, pos: int, left: int, crlf_left: int, kept: bytearray, limit: int
) -> tuple[int, int, int]:
    """Take up to `left` content bytes from data[pos:] (the first `limit` of them into `kept`), then the
    string's CRLF; returns (position after what was taken, content bytes left, CRLF bytes left)."""
    end = len(data)
    if left:
        take = min(left, end - pos)
        room = limit - len(kept)
        if room > 0:
            kept += data[pos : pos + min(take, room)]
        pos += take
        left -= take
    while not left and crlf_left and pos < end:
        if data[pos] != b"\r\n"[2 - crlf_left]:
            raise ProtocolError("a string not ended by CRLF")
        pos += 1
        crlf_left -= 1
    return pos, left, crlf_left


class PartialLine:
    """The start of one line (its first `cap` + 2 bytes) and how long it is so far."""

    __slots__ = ("cap", "head", "size", "last")

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.head = bytearray()
        self.size = 0  # 0: no line is open
        self.last = 0  # the line's last byte so far, to see a CR just before the LF that ends it

    def add(self, data: bytes, start: int, end: int) -> None:
        """data[start:end] continues the open line (no LF in it)."""
        room = self.cap + 2 - len(self.head)
        if room > 0:
            self.head += data[start : min(end, start + room)]
        self.size += end - start
        if end > start:
            self.last = data[end - 1]

    def finish(self, data: bytes, newline: int) -> tuple[bytes, int, int]:
        """The line ends at data[newline], its LF: (its first cap + 2 bytes, length, byte before the LF)."""
        before = data[newline - 1] if newline else self.last
        self.add(data, 0, newline + 1)
        head, size = bytes(self.head), self.size
        self.head.clear()
        self.size = 0
        return head, size, before
