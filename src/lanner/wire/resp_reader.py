"""Replies read from a copy of what a Redis server sends, sans-I/O: every RESP2 and RESP3 type.

`ReplyReader` turns the server's bytes into one `RedisReply` per top-level value (an
`Aggregate` when it has elements, keeping the first few for the analyzer to recognise
pub/sub messages and confirmations). Values are not kept, only summarised: a string
keeps its first `max_summary` bytes, an aggregate its first `max_summary` characters
of text, so a 500 MB string or a million-element array streams through in bounded
memory. Attributes (`|`) are read and only noted. It raises `ProtocolError` on bytes
that are not RESP; it never reads a socket or a clock.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from lanner.wire.errors import ProtocolError
from lanner.wire.resp_commands import parse_count
from lanner.wire.resp_lines import PartialLine, skim
from lanner.wire.resp_request import MAX_BULK, MAX_ELEMENTS
from lanner.wire.resp_text import bound, quote

HEAD: Final = 4  # elements of a top-level aggregate kept for the analyzer
_CACHED_SIZE: Final = 40  # replies this short are made once per reader and reused
_CACHED_REPLIES: Final = 512
_FAST_LINE: Final = 24
Scalar = bytes | int | None

_AGGREGATES: Final = {42: "array", 37: "map", 126: "set", 62: "push", 124: "attribute"}  # * % ~ > |
_BLOBS: Final = {36: "bulk", 33: "error", 61: "verbatim"}  # $ ! =
_OPEN: Final = {"array": "[", "set": "~[", "push": ">[", "map": "{"}
_CLOSE: Final = {"array": "]", "set": "]", "push": "]", "map": "}"}


@dataclass(frozen=True, slots=True)
class RedisReply:
    """One reply, summarised.

    `kind` is "simple", "error", "integer", "bulk", "null", "array", "map", "set", "double",
    "boolean", "verbatim", "bignum" or "push" (a streamed string is a "bulk", a streamed
    aggregate its aggregate kind). `summary` is at most max_summary characters of text in
    redis-cli's manner ('OK', '"value"', '(integer) 5', '[3] "a", "b", "c"'), cut values
    marked with '…'; `size` the reply's bytes on the wire, attributes before it included.
    `error` is the text of an error reply, `count` the element count of an aggregate (pairs
    for a map), `attributes` says RESP3 attributes came with it.
    """

    kind: str
    summary: str
    size: int
    error: str | None = None
    count: int | None = None
    attributes: bool = False


class Aggregate:
    """A top-level aggregate reply and its first elements: their values (strings cut) and summaries."""

    __slots__ = ("reply", "values", "summaries")

    def __init__(self, reply: RedisReply, values: list[Scalar], summaries: list[str]) -> None:
        self.reply = reply
        self.values = values
        self.summaries = summaries


Value = RedisReply | Aggregate


class _Frame:
    """An open aggregate: elements still expected (-1: streamed, until '.') and its text so far."""

    __slots__ = ("kind", "left", "count", "parts", "length", "cut", "values", "summaries")

    def __init__(self, kind: str, left: int, top: bool) -> None:
        self.kind = kind
        self.left = left
        self.count = 0
        self.parts: list[str] = []
        self.length = 0
        self.cut = False
        self.values: list[Scalar] | None = [] if top else None
        self.summaries: list[str] = []


class _Blob:
    """An open length-prefixed string ($ ! =), or a streamed one ($?) read chunk by chunk."""

    __slots__ = ("kind", "left", "crlf_left", "size", "limit", "kept", "streamed")

    def __init__(self, kind: str, size: int, limit: int, streamed: bool) -> None:
        self.kind = kind
        self.left = size  # content bytes still to come; -1: a streamed string waiting for a chunk
        self.crlf_left = 2
        self.size = 0 if streamed else size
        self.limit = limit
        self.kept = bytearray()
        self.streamed = streamed


class ReplyReader:
    """The server's byte stream; holds one line's start, one string's kept bytes, <= max_depth frames."""

    def __init__(self, max_summary: int, max_depth: int, max_line: int) -> None:
        self.max_summary = max_summary
        self.max_depth = max_depth
        self.max_line = max_line
        self.fast = max_line >= _FAST_LINE  # the shortcuts read lines of up to that many bytes
        self.line = PartialLine(max(max_summary, max_line) + 1)
        self.stack: list[_Frame] = []
        self.blob: _Blob | None = None
        self.attributes = False  # an attribute was read for the value being read
        self.carried = 0  # bytes of the open top-level value in earlier chunks
        self.start = 0  # where it began in this chunk
        self.out: list[Value] = []
        self.cache: dict[bytes, RedisReply] = {}

    @property
    def buffered(self) -> int:
        blob = len(self.blob.kept) if self.blob is not None else 0
        return len(self.line.head) + blob + sum(frame.length for frame in self.stack)

    def feed(self, data: bytes, out: list[Value]) -> None:
        """Append the replies `data` completes to `out` (those before a ProtocolError too)."""
        self.out = out
        self.start = pos = 0
        end = len(data)
        while pos < end:
            blob = self.blob
            if blob is not None and blob.left >= 0:
                pos = self._content(blob, data, pos)
            elif self.line.size:
                pos = self._finish_line(data, pos)
            elif not self.stack and blob is None and not self.attributes:
                self.start = pos
                fast = self._whole_simple_value(data, pos) if self.fast else -1
                pos = fast if fast >= 0 else self._line(data, pos)
            else:
                pos = self._line(data, pos)
        if self.stack or self.blob is not None or self.attributes or self.line.size:
            self.carried += end - self.start

    def _whole_simple_value(self, data: bytes, pos: int) -> int:
        """The common replies (+OK, :1, $5 hello) complete in `data`, in one go; -1 if not that.

        Replies are immutable, so the short ones are made once and reused (+OK, :0, $-1...).
        """
        kind = data[pos]
        if kind == 36:  # '$'
            newline = data.find(b"\r\n", pos, pos + 16)
            text = data[pos + 1 : newline]
            if newline < 0 or not text.isdigit() or (text[0] == 48 and len(text) > 1):
                return -1
            size = int(text)
            at = newline + size + 4
            if at > len(data) or size > MAX_BULK or data[at - 2 : at] != b"\r\n":
                return -1
        elif kind == 43 or kind == 58:  # '+' ':'
            newline = data.find(b"\n", pos, pos + (self.max_summary if kind == 43 else 20) + 3)
            if newline < 0 or data[newline - 1] != 13 or newline - pos < 2:
                return -1
            at = newline + 1
        else:
            return -1
        short = at - pos <= _CACHED_SIZE
        reply = self.cache.get(data[pos:at]) if short else None
        if reply is None:
            reply = self._simple_value(kind, data, pos, newline, at)
            if reply is None:
                return -1
            if short and len(self.cache) < _CACHED_REPLIES:
                self.cache[data[pos:at]] = reply
        self.out.append(reply)
        self.start = at
        return at

    def _simple_value(self, kind: int, data: bytes, pos: int, newline: int, at: int) -> RedisReply | None:
        if kind == 36:
            start, limit = newline + 2, self.max_summary
            size = at - 2 - start
            value = data[start : at - 2] if size <= limit else data[start : start + limit]
            return RedisReply("bulk", quote(value, limit, size > limit), at - pos)
        text = data[pos + 1 : newline - 1]
        if kind == 43:
            return RedisReply("simple", text.decode("utf-8", "replace"), at - pos)
        if text.isdigit() or (text[:1] == b"-" and text[1:].isdigit()):
            return RedisReply("integer", f"(integer) {text.decode()}", at - pos)
        return None

    # -- lines --

    def _line(self, data: bytes, pos: int) -> int:
        streams = data[pos] in (43, 45)  # status and error lines may be long; they are read cut
        limit = len(data) if streams else pos + self.max_line + 3
        newline = data.find(b"\n", pos, limit)
        if newline < 0:
            if not streams and len(data) - pos > self.max_line + 2:
                raise ProtocolError(f"a line longer than {self.max_line} bytes")
            self.line.add(data, pos, len(data))
            return len(data)
        size = newline + 1 - pos
        if size < 3 or data[newline - 1] != 13:
            raise ProtocolError("a line not ended by CRLF")
        keep = min(size - 3, self.max_summary if streams else self.max_line)
        self._on_line(data[pos], data[pos + 1 : pos + 1 + keep], size - 3 > keep, newline + 1)
        return newline + 1

    def _finish_line(self, data: bytes, pos: int) -> int:
        kind = self.line.head[0]
        streams = kind in (43, 45)
        newline = data.find(b"\n", pos)
        if newline < 0:
            self.line.add(data, pos, len(data))
            if not streams and self.line.size > self.max_line + 2:
                raise ProtocolError(f"a line longer than {self.max_line} bytes")
            return len(data)
        head, size, before = self.line.finish(data, newline)
        if size < 3 or before != 13:
            raise ProtocolError("a line not ended by CRLF")
        if not streams and size > self.max_line + 3:
            raise ProtocolError(f"a line longer than {self.max_line} bytes")
        keep = min(size - 3, self.max_summary if streams else self.max_line)
        self._on_line(kind, head[1 : 1 + keep], size - 3 > keep, newline + 1)
        return newline + 1

    def _on_line(self, kind: int, body: bytes, cut: bool, at: int) -> None:
        if self.blob is not None:
            self._chunk(self.blob, kind, body, at)
        elif kind == 43:  # '+'
            text = bound(body.decode("utf-8", "replace"), self.max_summary, cut)
            self._scalar("simple", text, body, None, at)
        elif kind == 45:  # '-'
            error = bound(body.decode("utf-8", "replace"), self.max_summary, cut)
            self._scalar("error", bound("(error) " + error, self.max_summary), None, error, at)
        elif kind == 58:  # ':'
            text = bound(f"(integer) {_integer(body)}", self.max_summary)
            self._scalar("integer", text, int(body) if len(body) <= 20 else None, None, at)
        elif kind in _AGGREGATES:
            self._aggregate(_AGGREGATES[kind], body, at)
        elif kind in _BLOBS:
            self._blob(_BLOBS[kind], body, at)
        else:
            self._resp3_line(kind, body, at)

    def _resp3_line(self, kind: int, body: bytes, at: int) -> None:
        if kind == 95 and not body:  # '_'
            self._scalar("null", "(nil)", None, None, at)
        elif kind == 35 and body in (b"t", b"f"):  # '#'
            self._scalar("boolean", "(true)" if body == b"t" else "(false)", None, None, at)
        elif kind == 44:  # ','
            self._scalar("double", bound(f"(double) {_double(body)}", self.max_summary), None, None, at)
        elif kind == 40:  # '('
            text = bound(f"(big number) {_integer(body)}", self.max_summary)
            self._scalar("bignum", text, None, None, at)
        elif kind == 46 and not body and self.stack and self.stack[-1].left < 0:  # '.'
            frame = self.stack[-1]
            if frame.kind in ("map", "attribute") and frame.count % 2:
                raise ProtocolError("a streamed map ended after a key")
            self._close(at)
        else:
            raise ProtocolError(f"unexpected RESP line {bytes([kind]) + body[:16]!r}")

    # -- aggregates --

    def _aggregate(self, kind: str, body: bytes, at: int) -> None:
        if body == b"-1" and kind == "array":
            self._scalar("null", "(nil)", None, None, at)
            return
        count = -1 if body == b"?" and kind in ("array", "map", "set") else parse_count(body)
        if count is None or count > MAX_ELEMENTS:
            raise ProtocolError(f"invalid {kind} length {body[:16]!r}")
        if len(self.stack) >= self.max_depth:
            raise ProtocolError(f"aggregates nested deeper than {self.max_depth}")
        paired = kind in ("map", "attribute")
        self.stack.append(_Frame(kind, count * 2 if paired and count > 0 else count, not self.stack))
        if not count:
            self._close(at)

    def _element(self, frame: _Frame, summary: str, value: Scalar, at: int) -> None:
        index = frame.count
        frame.count = index + 1
        if frame.values is not None and index < HEAD:
            frame.values.append(value)
            frame.summaries.append(summary)
        if frame.length < self.max_summary:
            if index:
                summary = (" => " if frame.kind == "map" and index % 2 else ", ") + summary
            frame.parts.append(summary)
            frame.length += len(summary)
        else:
            frame.cut = True
        if frame.left > 0:
            frame.left -= 1
            if not frame.left:
                self._close(at)

    def _close(self, at: int) -> None:
        frame = self.stack.pop()
        if frame.kind == "attribute":
            self.attributes = True  # RESP3: attributes describe the reply, they are not part of it
            return
        text = "".join(frame.parts)
        if self.stack:
            summary = bound(_OPEN[frame.kind] + text + _CLOSE[frame.kind], self.max_summary, frame.cut)
            self._element(self.stack[-1], summary, None, at)
            return
        count = frame.count // 2 if frame.kind == "map" else frame.count
        head = f"{{{count}}}" if frame.kind == "map" else f"{_OPEN[frame.kind]}{count}]"
        summary = bound(f"{head} {text}" if count else head, self.max_summary, frame.cut)
        reply = RedisReply(frame.kind, summary, self._size(at), None, count, self._take_attributes())
        self.out.append(Aggregate(reply, frame.values or [], frame.summaries))

    # -- strings --

    def _blob(self, kind: str, body: bytes, at: int) -> None:
        limit = self.max_summary + 4 if kind == "verbatim" else self.max_summary  # 'txt:' first
        if kind == "bulk" and body == b"?":
            self.blob = _Blob(kind, -1, limit, True)
            return
        if kind == "bulk" and body == b"-1":
            self._scalar("null", "(nil)", None, None, at)
            return
        size = parse_count(body)
        if size is None or size > MAX_BULK:
            raise ProtocolError(f"invalid {kind} string length {body[:16]!r}")
        self.blob = _Blob(kind, size, limit, False)

    def _chunk(self, blob: _Blob, kind: int, body: bytes, at: int) -> None:
        size = parse_count(body) if kind == 59 else None  # ';'
        if size is None or size > MAX_BULK:
            raise ProtocolError(f"expected a streamed string chunk, got {bytes([kind]) + body[:16]!r}")
        if size:
            blob.left, blob.crlf_left = size, 2
            blob.size += size
        else:
            self.blob = None
            self._string(blob, at)

    def _content(self, blob: _Blob, data: bytes, pos: int) -> int:
        pos, left, blob.crlf_left = skim(data, pos, blob.left, blob.crlf_left, blob.kept, blob.limit)
        blob.left = left
        if not left and not blob.crlf_left:
            blob.left = -1
            if not blob.streamed:
                self.blob = None
                self._string(blob, pos)
        return pos

    def _string(self, blob: _Blob, at: int) -> None:
        kept, limit = bytes(blob.kept), self.max_summary
        cut = blob.size > blob.limit
        if blob.kind == "error":
            error = bound(kept.decode("utf-8", "replace"), limit, cut)
            self._scalar("error", bound("(error) " + error, limit), None, error, at)
        elif blob.kind == "verbatim":
            self._scalar("verbatim", quote(kept[4:], limit, cut), kept[4:], None, at)
        else:
            self._scalar("bulk", quote(kept, limit, cut), kept, None, at)

    # -- values --

    def _scalar(self, kind: str, summary: str, value: Scalar, error: str | None, at: int) -> None:
        if self.stack:
            self._element(self.stack[-1], summary, value, at)
        else:
            self.out.append(RedisReply(kind, summary, self._size(at), error, None, self._take_attributes()))

    def _size(self, at: int) -> int:
        size = self.carried + at - self.start
        self.carried, self.start = 0, at
        return size

    def _take_attributes(self) -> bool:
        attributes, self.attributes = self.attributes, False
        return attributes


def _integer(body: bytes) -> str:
    if body.isdigit() or (body[:1] == b"-" and body[1:].isdigit()):
        return body.decode()
    raise ProtocolError(f"invalid integer {body[:24]!r}")


def _double(body: bytes) -> str:
    try:
        float(body)
    except ValueError:
        raise ProtocolError(f"invalid double {body[:24]!r}") from None
    return body.decode("ascii", "replace")
