"""The line layer shared by both RESP readers: a line whose end has not arrived yet.

RESP frames every header, and inline commands, with a line. A line split across reads
is kept here, but only its first `cap` + 2 bytes: a reader either refuses a longer
line or, for the status and error lines a server may make long (MONITOR output), reads
it cut. Nothing here knows RESP; it never raises.
"""

from __future__ import annotations


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
