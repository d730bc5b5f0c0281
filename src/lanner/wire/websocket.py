"""WebSocket messages (RFC 6455, RFC 7692) read from copies of an upgraded connection, sans-I/O.

The proxy relays an upgraded connection's bytes untouched and hands a copy of each
chunk, with the time it arrived, to a `WsAnalyzer`, which returns the messages that
chunk completed: unmasked, reassembled from fragments and inflated when
permessage-deflate compressed them. It only observes: it never produces, alters or
answers frames, and never reads a clock or a socket. It never raises on any input:
when a direction stops being WebSocket it sets `stopped` and ignores all later data.
Memory per direction stays within `max_message` plus one frame header, whatever the
peers send (a deflate bomb included).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from enum import IntEnum
from typing import Final

from lanner.wire.errors import ProtocolError

DEFAULT_MAX_MESSAGE: Final = 1 << 20
_DEFLATE_TAIL: Final = b"\x00\x00\xff\xff"  # RFC 7692 section 7.2.2
_INFLATE_STEP: Final = 1 << 16
_WINDOW_PARAMS: Final = ("server_max_window_bits", "client_max_window_bits")
_FLAG_PARAMS: Final = ("server_no_context_takeover", "client_no_context_takeover")


class Opcode(IntEnum):
    CONTINUATION = 0
    TEXT = 1
    BINARY = 2
    CLOSE = 8
    PING = 9
    PONG = 10


_OPCODES: Final = frozenset(Opcode)


@dataclass(frozen=True, slots=True)
class WsMessage:
    """A whole message as the application sees it; `size` is its payload length on the wire."""

    from_client: bool
    opcode: Opcode
    data: bytes
    size: int
    compressed: bool
    truncated: bool
    time: float
    close_code: int | None = None
    close_reason: str = ""


@dataclass(frozen=True, slots=True)
class DeflateParams:
    """The permessage-deflate parameters a server accepted (RFC 7692 section 7.1)."""

    server_no_context_takeover: bool = False
    client_no_context_takeover: bool = False
    server_max_window_bits: int = 15
    client_max_window_bits: int = 15


def negotiated_deflate(response_extensions_header: str | bytes | None) -> DeflateParams | None:
    """The server's `Sec-WebSocket-Extensions` value read for permessage-deflate, or None."""
    if response_extensions_header is None:
        return None
    text = response_extensions_header
    if isinstance(text, bytes):
        text = text.decode("latin-1")
    for extension in text.split(","):
        name, *params = (part.strip() for part in extension.split(";"))
        if name.lower() == "permessage-deflate":
            return _deflate_params([param for param in params if param])
    return None


def _deflate_params(params: list[str]) -> DeflateParams | None:
    # A client fails the connection on an unknown, repeated or invalid parameter
    # (RFC 7692 section 7.1), so then nothing compressed can follow.
    flags: set[str] = set()
    bits: dict[str, int] = {}
    for param in params:
        key, _, value = (part.strip() for part in param.partition("="))
        key = key.lower()
        if key in flags or key in bits:
            return None
        if key in _FLAG_PARAMS:
            flags.add(key)
        elif key in _WINDOW_PARAMS:
            value = value.strip('"') or "15"
            if not (value.isascii() and value.isdigit() and 8 <= int(value) <= 15):
                return None
            bits[key] = int(value)
        else:
            return None
    return DeflateParams(
        server_no_context_takeover="server_no_context_takeover" in flags,
        client_no_context_takeover="client_no_context_takeover" in flags,
        server_max_window_bits=bits.get("server_max_window_bits", 15),
        client_max_window_bits=bits.get("client_max_window_bits", 15),
    )


class WsAnalyzer:
    """Both directions of one upgraded connection; `stopped` says why analysis ended."""

    def __init__(self, deflate: DeflateParams | None = None, max_message: int = DEFAULT_MAX_MESSAGE) -> None:
        if max_message < 0:
            raise ValueError("max_message must not be negative")
        self.stopped: str | None = None
        self._client = _Direction(True, deflate, max_message)
        self._server = _Direction(False, deflate, max_message)

    def client_data(self, data: bytes, now: float) -> list[WsMessage]:
        return self._feed(self._client, data, now)

    def server_data(self, data: bytes, now: float) -> list[WsMessage]:
        return self._feed(self._server, data, now)

    def _feed(self, direction: _Direction, data: bytes, now: float) -> list[WsMessage]:
        completed: list[WsMessage] = []
        if self.stopped is None:
            try:
                direction.feed(memoryview(data), now, completed)
            except ProtocolError as exc:
                self.stopped = f"{'client' if direction.from_client else 'server'}: {exc}"
        return completed


class _Direction:
    """Frames from one peer; at most one frame header and `max_message` bytes held."""

    def __init__(self, from_client: bool, deflate: DeflateParams | None, max_message: int) -> None:
        self.from_client = from_client
        self.max_message = max_message
        self.deflate = deflate is not None
        params = deflate or DeflateParams()
        if from_client:
            self.window_bits, no_takeover = params.client_max_window_bits, params.client_no_context_takeover
        else:
            self.window_bits, no_takeover = params.server_max_window_bits, params.server_no_context_takeover
        self.keeps_context = not no_takeover
        self.inflater = zlib.decompressobj(-self.window_bits)
        self.header = bytearray()
        self.in_frame = False
        self.fin = False
        self.opcode = Opcode.CONTINUATION
        self.mask: bytes | None = None
        self.remaining = 0
        self.offset = 0  # payload bytes of the current frame already read, for the mask phase
        self.control = bytearray()  # never over 125 bytes (RFC 6455 section 5.5)
        self.message = Opcode.CONTINUATION  # the open data message's opcode, if any
        self.compressed = False
        self.data = bytearray()
        self.size = 0
        self.truncated = False
        self.skipping = False  # inflating the rest of this message would only be thrown away

    def feed(self, data: memoryview, now: float, completed: list[WsMessage]) -> None:
        pos = 0
        while True:
            if not self.in_frame:
                pos = self._read_header(data, pos)
                if not self.in_frame:
                    return
            take = min(self.remaining, len(data) - pos)
            if take:
                self._payload(data[pos : pos + take])
                pos += take
                self.remaining -= take
                self.offset += take
            if self.remaining:
                return
            self._end_frame(now, completed)

    def _read_header(self, data: memoryview, pos: int) -> int:
        header = self.header
        need = _header_size(header)
        while len(header) < need and pos < len(data):
            take = min(need - len(header), len(data) - pos)
            header += data[pos : pos + take]
            pos += take
            need = _header_size(header)
        if len(header) == need:
            self._start_frame(header)
            header.clear()
        return pos

    def _start_frame(self, header: bytearray) -> None:
        first, second = header[0], header[1]
        if first & 0x30:
            raise ProtocolError("RSV2 or RSV3 set, no extension negotiated them")  # RFC 6455 section 5.2
        if first & 0x0F not in _OPCODES:
            raise ProtocolError(f"reserved opcode {first & 0x0F}")
        opcode, fin, rsv1 = Opcode(first & 0x0F), bool(first & 0x80), bool(first & 0x40)
        masked = bool(second & 0x80)
        if masked != self.from_client:  # RFC 6455 section 5.1
            raise ProtocolError("client frame not masked" if self.from_client else "server frame masked")
        length = second & 0x7F
        if length >= 126:
            length = int.from_bytes(header[2 : 4 if length == 126 else 10], "big")
            if length >> 63:
                raise ProtocolError("64-bit payload length with the high bit set")  # RFC 6455 section 5.2
        if opcode >= Opcode.CLOSE:
            self._check_control(fin, rsv1, length)
        else:
            self._start_data(opcode, rsv1)
        self.in_frame, self.fin, self.opcode = True, fin, opcode
        self.mask = bytes(header[-4:]) if masked else None
        self.remaining, self.offset = length, 0

    def _check_control(self, fin: bool, rsv1: bool, length: int) -> None:
        if not fin or length > 125:  # RFC 6455 section 5.5
            raise ProtocolError("fragmented control frame" if not fin else f"control frame of {length} bytes")
        if rsv1:
            raise ProtocolError("RSV1 set on a control frame")  # RFC 7692 section 6.1

    def _start_data(self, opcode: Opcode, rsv1: bool) -> None:
        if opcode == Opcode.CONTINUATION:
            if self.message == Opcode.CONTINUATION:
                raise ProtocolError("continuation frame without a message to continue")
            if rsv1:
                raise ProtocolError("RSV1 set on a continuation frame")  # RFC 7692 section 6.1
            return
        if self.message != Opcode.CONTINUATION:
            raise ProtocolError("new data frame inside a fragmented message")  # RFC 6455 section 5.4
        if rsv1 and not self.deflate:
            raise ProtocolError("RSV1 set, permessage-deflate not negotiated")
        self.message, self.compressed = opcode, rsv1
        self.data, self.size, self.truncated, self.skipping = bytearray(), 0, False, False

    def _payload(self, chunk: memoryview) -> None:
        if self.opcode >= Opcode.CLOSE:
            self.control += self._unmask(chunk)
            return
        self.size += len(chunk)
        if self.compressed:
            if not self.skipping:
                self._inflate(self._unmask(chunk))
            return
        room = self.max_message - len(self.data)
        if len(chunk) > room:
            self.truncated = True
        self.data += self._unmask(chunk[:room])  # only the kept bytes are worth unmasking

    def _unmask(self, chunk: memoryview) -> bytes:
        size = len(chunk)
        if self.mask is None or not size:
            return bytes(chunk)
        phase = self.offset % 4
        key = (self.mask[phase:] + self.mask[:phase]) * (size // 4 + 1)
        value = int.from_bytes(chunk, "big") ^ int.from_bytes(key[:size], "big")
        return value.to_bytes(size, "big")

    def _inflate(self, chunk: bytes) -> None:
        # Input goes in bounded pieces so that neither unconsumed_tail copies nor
        # unused_data after a final block grow with the size of a chunk.
        view = memoryview(chunk)
        for start in range(0, len(view), _INFLATE_STEP):
            if self.skipping:
                return
            self._inflate_piece(view[start : start + _INFLATE_STEP])

    def _inflate_piece(self, piece: memoryview | bytes) -> None:
        # max_length bounds every output buffer. Past max_message the output is
        # still made (then dropped) while later messages need this window
        # (RFC 7692 section 7.2.3.2), and not made at all otherwise.
        while True:
            room = self.max_message - len(self.data)
            limit = room or _INFLATE_STEP
            try:
                output = self.inflater.decompress(piece, limit)
            except zlib.error as exc:
                raise ProtocolError(f"inflate failed: {exc}") from exc
            piece = self.inflater.unconsumed_tail
            self.data += output[:room]
            if len(output) > room:
                self.truncated = True
                self.skipping = not self.keeps_context
            if self.inflater.eof:
                self.skipping = True  # a final block ends the stream; the rest of the message is not read
            if self.skipping or (not piece and len(output) < limit):
                return

    def _end_frame(self, now: float, completed: list[WsMessage]) -> None:
        self.in_frame = False
        if self.opcode >= Opcode.CLOSE:
            completed.append(self._control_message(now))
            self.control.clear()
        elif self.fin:
            completed.append(self._data_message(now))

    def _data_message(self, now: float) -> WsMessage:
        if self.compressed:
            if not self.skipping:
                self._inflate(_DEFLATE_TAIL)
            # zlib cannot continue a stream past a BFINAL block (RFC 7692 section 7.2.3.4).
            if not self.keeps_context or self.inflater.eof:
                self.inflater = zlib.decompressobj(-self.window_bits)
        message = WsMessage(
            from_client=self.from_client,
            opcode=self.message,
            data=bytes(self.data),
            size=self.size,
            compressed=self.compressed,
            truncated=self.truncated,
            time=now,
        )
        self.message, self.data = Opcode.CONTINUATION, bytearray()
        return message

    def _control_message(self, now: float) -> WsMessage:
        payload = bytes(self.control)
        code, reason = None, ""
        if self.opcode == Opcode.CLOSE:
            if len(payload) == 1:
                raise ProtocolError("close frame body of 1 byte")  # RFC 6455 section 5.5.1
            if payload:
                code = int.from_bytes(payload[:2], "big")
                reason = payload[2:].decode("utf-8", "replace")
        return WsMessage(
            from_client=self.from_client,
            opcode=self.opcode,
            data=payload[: self.max_message],
            size=len(payload),
            compressed=False,
            truncated=len(payload) > self.max_message,
            time=now,
            close_code=code,
            close_reason=reason,
        )


def _header_size(header: bytearray) -> int:
    if len(header) < 2:
        return 2
    length = header[1] & 0x7F
    extended = 2 if length == 126 else 8 if length == 127 else 0
    return 2 + extended + (4 if header[1] & 0x80 else 0)
