"""Commands read from a copy of what a Redis client sends, sans-I/O.

`RequestReader` turns the client's bytes into `Request`s the way redis-server 7 reads
them (networking.c, processMultibulkBuffer and processInlineBuffer): RESP arrays of
bulk strings, and inline commands split with sdssplitargs' quoting. It keeps the first
bytes of each argument and counts the rest, so a 500 MB argument streams through in
bounded memory. It raises `ProtocolError` where redis-server would reply
"Protocol error" and close; it never reads a socket or a clock.
"""

from __future__ import annotations

from typing import Final

from lanner.wire.errors import ProtocolError
from lanner.wire.resp_commands import parse_count
from lanner.wire.resp_lines import PartialLine, skim

MAX_BULK: Final = 512 * 1024 * 1024  # redis' proto-max-bulk-len default
MAX_ELEMENTS: Final = (1 << 31) - 1  # INT_MAX, redis' multibulk length limit
NAME_KEEP: Final = 64  # bytes kept of a command or subcommand name, whatever max_arg says
_SPLIT_MAX: Final = 512  # a chunk this small holding one command is read with one split()
_FAST_LINE: Final = 24

_SPACE: Final = frozenset(b" \t\n\r\x0b\x0c")  # C isspace()
_ENDS_TOKEN: Final = frozenset(b" \n\r\t")
_HEX: Final = frozenset(b"0123456789abcdefABCDEF")
_ESCAPES: Final = {ord("n"): 10, ord("r"): 13, ord("t"): 9, ord("b"): 8, ord("a"): 7}


class Request:
    """One command: its first arguments (the name first), each cut, with their real sizes."""

    __slots__ = ("argv", "sizes", "count", "inline", "size")

    def __init__(self, argv: list[bytes], sizes: list[int], count: int, inline: bool, size: int) -> None:
        self.argv = argv  # at most keep_args of them
        self.sizes = sizes  # as long as argv
        self.count = count  # how many the command had, name included; 0 for an empty command
        self.inline = inline
        self.size = size  # bytes on the wire


class RequestReader:
    """The client's byte stream; holds at most one line and one argument's kept bytes."""

    def __init__(self, max_arg: int, keep_args: int, max_inline: int) -> None:
        self.max_arg = max_arg
        self.name_keep = max(max_arg, NAME_KEEP)
        self.keep_args = max(keep_args, 2)
        self.max_inline = max_inline
        self.fast = max_inline >= _FAST_LINE  # the shortcuts read lines of up to that many bytes
        self.line = PartialLine(max_inline)
        self.args_left = 0  # arguments of the open array still to come
        self.bulk_left = -1  # content bytes of the argument being read still to come; -1: none open
        self.crlf_left = 0  # then the bytes of its CRLF
        self.bulk_size = 0
        self.limit = 0  # bytes of it to keep
        self.kept = bytearray()
        self.argv: list[bytes] = []
        self.sizes: list[int] = []
        self.count = 0
        self.size = 0

    @property
    def buffered(self) -> int:
        return len(self.line.head) + len(self.kept)

    def feed(self, data: bytes, done: list[Request]) -> None:
        """Append the commands `data` completes to `done` (those before a ProtocolError too)."""
        pos, end = 0, len(data)
        while pos < end:
            if self.bulk_left >= 0:
                pos = self._content(data, pos, done)
            elif self.line.size:
                pos = self._finish_line(data, pos, done)
            elif not self.args_left and data[pos] == 42 and self.fast:  # '*'
                whole = self._whole_array(data, pos, done)
                pos = whole if whole >= 0 else self._line(data, pos, done)
            else:
                pos = self._line(data, pos, done)

    def _whole_array(self, data: bytes, pos: int, done: list[Request]) -> int:
        """The common case, one complete array of small bulk strings, in one go; -1 if not that."""
        if not pos and len(data) <= _SPLIT_MAX:
            request = self._split_array(data)
            if request is not None:
                done.append(request)
                return len(data)
        newline = data.find(b"\r\n", pos, pos + 24)
        text = data[pos + 1 : newline]
        if newline < 0 or not text.isdigit() or text[0] == 48:
            return -1
        count = int(text)
        if count > self.keep_args:
            return -1
        argv: list[bytes] = []
        sizes: list[int] = []
        at, end = newline + 2, len(data)
        for index in range(count):
            if at >= end or data[at] != 36:  # '$'
                return -1
            newline = data.find(b"\r\n", at, at + 24)
            text = data[at + 1 : newline]
            if newline < 0 or not text.isdigit() or (text[0] == 48 and len(text) > 1):
                return -1
            size = int(text)
            start = newline + 2
            at = start + size + 2
            if at > end or size > MAX_BULK or data[at - 2 : at] != b"\r\n":
                return -1
            limit = self.name_keep if index < 2 else self.max_arg
            argv.append(data[start : start + size] if size <= limit else data[start : start + limit])
            sizes.append(size)
        done.append(Request(argv, sizes, count, False, at - pos))
        return at

    def _split_array(self, data: bytes) -> Request | None:
        """`data` is exactly one array of bulk strings without CRLF inside: read with one split.

        Splitting at every CRLF gives '*N', then '$len' and payload pairs, then b''. If each
        payload is as long as its header says, no payload held a CRLF and this is what reading
        the array element by element gives.
        """
        parts = data.split(b"\r\n")
        count = (len(parts) - 2) >> 1
        if parts[-1] or not 0 < count <= self.keep_args or parts[0] != b"*%d" % count:
            return None
        argv = parts[2::2]
        sizes = [len(arg) for arg in argv]
        if parts[1:-1:2] != [b"$%d" % size for size in sizes]:
            return None
        if self.max_arg < _SPLIT_MAX and max(sizes) > self.max_arg:
            return None  # arguments to cut: the general way does it
        return Request(argv, sizes, count, False, len(data))

    # -- lines --

    def _line(self, data: bytes, pos: int, done: list[Request]) -> int:
        newline = data.find(b"\n", pos, pos + self.max_inline + 2)
        if newline < 0:
            if len(data) - pos > self.max_inline + 1:
                raise ProtocolError(f"a line longer than {self.max_inline} bytes")
            self.line.add(data, pos, len(data))
            return len(data)
        self._on_line(data[pos : newline + 1], done)
        return newline + 1

    def _finish_line(self, data: bytes, pos: int, done: list[Request]) -> int:
        newline = data.find(b"\n", pos)
        if newline < 0:
            self.line.add(data, pos, len(data))
            if self.line.size > self.max_inline + 1:
                raise ProtocolError(f"a line longer than {self.max_inline} bytes")
            return len(data)
        line, size, _ = self.line.finish(data, newline)
        if size > self.max_inline + 2:
            raise ProtocolError(f"a line longer than {self.max_inline} bytes")
        self._on_line(line, done)
        return newline + 1

    def _on_line(self, line: bytes, done: list[Request]) -> None:
        if self.args_left:
            self._bulk_header(line)
        elif line[0] == 42:
            self._array_header(line, done)
        else:
            self._inline(line, done)

    def _array_header(self, line: bytes, done: list[Request]) -> None:
        text = _resp_line(line)
        if text[:1] == b"-" and parse_count(text[1:]) is not None:
            count: int | None = 0  # redis-server ignores an array of length <= 0
        else:
            count = parse_count(text)
        if count is None or count > MAX_ELEMENTS:
            raise ProtocolError("invalid multibulk length")
        if not count:
            done.append(Request([], [], 0, False, len(line)))
            return
        self.args_left, self.count, self.size = count, count, len(line)
        self.argv, self.sizes = [], []

    def _bulk_header(self, line: bytes) -> None:
        if line[0] != 36:
            raise ProtocolError(f"expected '$', got {chr(line[0])!r}")
        size = parse_count(_resp_line(line))
        if size is None or size > MAX_BULK:
            raise ProtocolError("invalid bulk length")
        kept = len(self.argv)
        self.limit = 0 if kept >= self.keep_args else self.name_keep if kept < 2 else self.max_arg
        self.size += len(line)
        self.bulk_left = self.bulk_size = size
        self.crlf_left = 2

    def _inline(self, line: bytes, done: list[Request]) -> None:
        body = line[:-2] if line.endswith(b"\r\n") else line[:-1]
        if b"\0" in body:  # redis-server looks for the LF with strchr(), so it never finds this one's
            raise ProtocolError("a NUL byte in an inline command")
        args = split_inline(body)
        argv = [arg[: self.name_keep if index < 2 else self.max_arg] for index, arg in enumerate(args)]
        del argv[self.keep_args :]
        done.append(Request(argv, [len(arg) for arg in args[: self.keep_args]], len(args), True, len(line)))

    # -- bulk string content --

    def _content(self, data: bytes, pos: int, done: list[Request]) -> int:
        end = len(data)
        left = self.bulk_left
        if left == self.bulk_size and self.crlf_left == 2 and end - pos >= left + 2:
            if data[pos + left : pos + left + 2] != b"\r\n":
                raise ProtocolError("a string not ended by CRLF")
            self._argument(data[pos : pos + min(left, self.limit)], done)
            return pos + left + 2
        pos, left, self.crlf_left = skim(data, pos, left, self.crlf_left, self.kept, self.limit)
        self.bulk_left = left
        if not left and not self.crlf_left:
            self._argument(bytes(self.kept), done)
            self.kept.clear()
        return pos

    def _argument(self, kept: bytes, done: list[Request]) -> None:
        self.bulk_left = -1
        self.size += self.bulk_size + 2
        if len(self.argv) < self.keep_args:
            self.argv.append(kept)
            self.sizes.append(self.bulk_size)
        self.args_left -= 1
        if not self.args_left:
            done.append(Request(self.argv, self.sizes, self.count, False, self.size))
            self.argv, self.sizes = [], []


def _resp_line(line: bytes) -> bytes:
    """What a RESP line says between its type byte and its CRLF."""
    if not line.endswith(b"\r\n"):
        raise ProtocolError("a line not ended by CRLF")
    return line[1:-2]


def split_inline(line: bytes) -> list[bytes]:
    """An inline command's arguments, as sdssplitargs() splits them (sds.c)."""
    if not any(quote in line for quote in (b'"', b"'", b"\x0b", b"\x0c")):
        return line.split()  # without quotes, \v or \f the rules are str.split()'s
    args: list[bytes] = []
    pos, end = 0, len(line)
    while True:
        while pos < end and line[pos] in _SPACE:
            pos += 1
        if pos == end:
            return args
        arg = bytearray()
        pos = _token(line, pos, arg)
        args.append(bytes(arg))


def _token(line: bytes, pos: int, arg: bytearray) -> int:
    """Read one token from line[pos] into arg; the position after it."""
    end = len(line)
    quote = 0
    while True:
        char = line[pos] if pos < end else 0
        if not quote:
            if pos == end or char in _ENDS_TOKEN:
                return pos + 1 if pos < end else pos
            if char in (34, 39):
                quote = char
            else:
                arg.append(char)
            pos += 1
        elif pos == end:
            raise ProtocolError("unbalanced quotes in request")
        elif char == quote:
            if pos + 1 < end and line[pos + 1] not in _SPACE:
                raise ProtocolError("unbalanced quotes in request")  # sds.c: a closing quote ends a token
            return pos + 1
        elif char == 92 and quote == 34 and _hex_escape(line, pos):
            arg.append(int(line[pos + 2 : pos + 4], 16))
            pos += 4
        elif char == 92 and quote == 34 and pos + 1 < end:
            arg.append(_ESCAPES.get(line[pos + 1], line[pos + 1]))
            pos += 2
        elif char == 92 and pos + 1 < end and line[pos + 1] == 39:  # \' in single quotes
            arg.append(39)
            pos += 2
        else:
            arg.append(char)
            pos += 1


def _hex_escape(line: bytes, pos: int) -> bool:
    """line[pos] starts a \\xHH escape."""
    digits = line[pos + 2 : pos + 4]
    return line[pos + 1 : pos + 2] == b"x" and len(digits) == 2 and all(d in _HEX for d in digits)
