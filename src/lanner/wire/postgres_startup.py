"""The start of a PostgreSQL connection: untagged packets, encryption requests, authentication.

A client opens with untagged packets (protocol section 55.2.1): SSLRequest or
GSSENCRequest, each answered by one server byte, then a StartupMessage, or a lone
CancelRequest, or a TLS ClientHello straight away (direct TLS). `Startup` reads
them, then follows the server's authentication exchange up to the first
ReadyForQuery (or the ErrorResponse that ends it), and reports each as an event.

It must never keep a secret: PasswordMessage, SASL and GSS payloads are skipped as
they stream by; only the SASL mechanism name is read from SASLInitialResponse.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from lanner.wire.errors import ProtocolError
from lanner.wire.postgres_events import (
    AuthenticationCompleted,
    CancelRequested,
    EncryptionRequested,
    NoticeReceived,
    PgError,
    PgEvent,
    SessionStarted,
)
from lanner.wire.postgres_framing import Kinds
from lanner.wire.postgres_messages import (
    INT32,
    cstring,
    error_fields,
    has,
    name_and_value,
    startup_parameters,
)

SSL_REQUEST: Final = 80877103
GSSENC_REQUEST: Final = 80877104
CANCEL_REQUEST: Final = 80877102
MIN_PACKET: Final = 8
MAX_PACKET: Final = 10000  # the server's own limit for a startup packet
TLS_HANDSHAKE: Final = 0x16  # the first byte of a TLS record carrying a ClientHello
PASSWORD: Final = ord("p")
_MECHANISM_BYTES: Final = 64  # SASLInitialResponse starts with the mechanism name: nothing more is read
_ANSWERS: Final = {"ssl": "SN", "gss": "GN"}
_METHODS: Final = {2: "kerberos-v5", 3: "cleartext", 5: "md5", 6: "scm-credential", 7: "gss", 9: "sspi"}
_CONTINUATIONS: Final = frozenset({8, 11, 12})  # GSSContinue, SASLContinue, SASLFinal
SASL: Final = 10
TX_STATUS: Final = {b"I": "idle", b"T": "transaction", b"E": "failed"}

STARTUP: Final = "startup"  # reading untagged packets
ANSWER: Final = "answer"  # an SSLRequest or GSSENCRequest awaits the server's byte
TAGGED: Final = "tagged"  # after the StartupMessage
CANCELLED: Final = "cancelled"  # after a CancelRequest nothing more may come
ENCRYPTED: Final = "encrypted"


class Startup:
    """Untagged client packets, the encryption answer and the authentication exchange."""

    def __init__(self, events: list[PgEvent], client_kinds: Kinds, max_entries: int) -> None:
        self.events = events
        self.client_kinds = client_kinds
        self.max_entries = max_entries
        self.phase = STARTUP
        self.packet = bytearray()
        self.held = bytearray()  # client bytes sent before the server answered an encryption request
        self.request: tuple[str, float] | None = None
        self.major = 3
        self.started: float | None = None
        self.done = False
        self.on_done: Callable[[], None] = _nothing
        self.method: str | None = None
        self.mechanisms: tuple[str, ...] = ()
        self.mechanism: str | None = None
        self.backend: tuple[int, bytes] | None = None
        self.server_params: list[tuple[str, str]] = []
        self.negotiated: str | None = None
        client_kinds[PASSWORD] = (self.on_password, 0)

    # -- client: untagged packets --

    def client_packets(self, data: bytes, now: float) -> int:
        """Read untagged packets from `data`; how many bytes they took (the rest is tagged)."""
        pos = 0
        while pos < len(data) and self.phase == STARTUP:
            pos = self._packet_bytes(data, pos, now)
        if self.phase == ANSWER and pos < len(data):
            if len(self.held) + len(data) - pos > MAX_PACKET:
                raise ProtocolError("client data before the answer to its encryption request")
            self.held += data[pos:]
            return len(data)
        if self.phase == CANCELLED and pos < len(data):
            raise ProtocolError("data after a CancelRequest")
        return len(data) if self.phase == ENCRYPTED else pos

    def _packet_bytes(self, data: bytes, pos: int, now: float) -> int:
        packet = self.packet
        if not packet and data[pos] == TLS_HANDSHAKE:  # no packet length starts with it (max 10000)
            self.events.append(EncryptionRequested("direct-tls", None, now))
            self.phase = ENCRYPTED
            return len(data)
        if len(packet) < 4:
            take = min(4 - len(packet), len(data) - pos)
            packet += data[pos : pos + take]
            pos += take
            if len(packet) < 4:
                return pos
            if not MIN_PACKET <= _length(packet) <= MAX_PACKET:
                raise ProtocolError(f"startup packet length {_length(packet)}")
        take = min(_length(packet) - len(packet), len(data) - pos)
        packet += data[pos : pos + take]
        if len(packet) == _length(packet):
            body = bytes(packet)
            packet.clear()
            self._packet(body, now)
        return pos + take

    def _packet(self, packet: bytes, now: float) -> None:
        (code,) = INT32.unpack_from(packet, 4)
        if code in (SSL_REQUEST, GSSENC_REQUEST):
            if len(packet) != 8:
                raise ProtocolError(f"encryption request of {len(packet)} bytes")
            self.request = ("ssl" if code == SSL_REQUEST else "gss", now)
            self.phase = ANSWER
        elif code == CANCEL_REQUEST:
            if not 4 <= len(packet) - 12 <= 256:  # 4 bytes in 3.0, up to 256 in 3.2
                raise ProtocolError(f"CancelRequest of {len(packet)} bytes")
            (pid,) = INT32.unpack_from(packet, 8)
            self.events.append(CancelRequested(pid, packet[12:], now))
            self.phase = CANCELLED
        else:
            self._startup_message(code >> 16, code & 0xFFFF, packet[8:], now)

    def _startup_message(self, major: int, minor: int, body: bytes, now: float) -> None:
        if major != 3:
            raise ProtocolError(f"unsupported protocol {major}.{minor}")
        named: dict[str, str] = {}
        options = []
        for name, value in startup_parameters(body):
            if name in ("user", "database", "application_name"):
                named[name] = value
            else:
                options.append((name, value))
        user = named.get("user", "")
        database = named.get("database") or user
        self.events.append(
            SessionStarted(
                f"{major}.{minor}", user, database, named.get("application_name"), tuple(options), now
            )
        )
        self.major, self.started, self.phase = major, now, TAGGED

    def server_answer(self, answer: int, now: float) -> bytes:
        """The server's byte for an encryption request; the held client bytes when it said no."""
        if self.request is None:
            raise ProtocolError("an answer byte without an encryption request")
        kind, time = self.request
        self.request = None
        if chr(answer) not in _ANSWERS[kind]:
            raise ProtocolError(f"answer {bytes([answer])!r} to a {kind} request")
        self.events.append(EncryptionRequested(kind, chr(answer), time))
        if chr(answer) != "N":
            self.phase = ENCRYPTED
            return b""
        self.phase = STARTUP
        held = bytes(self.held)
        self.held.clear()
        return held

    # -- authentication --

    def on_auth(self, body: bytes, size: int, now: float) -> None:
        if self.done:
            raise ProtocolError("authentication request after startup")
        has(body, 0, 4, False)
        (code,) = INT32.unpack_from(body, 0)
        if code == SASL:
            self.mechanisms = _mechanisms(body, len(body) < size)
            self.method = self.method or "sasl"
            self.client_kinds[PASSWORD] = (self.on_password, _MECHANISM_BYTES)
        elif code in _METHODS:
            self.method = self.method or _METHODS[code]
        elif code != 0 and code not in _CONTINUATIONS:
            raise ProtocolError(f"unknown authentication request {code}")

    def on_password(self, body: bytes, size: int, now: float) -> None:
        """PasswordMessage, SASL and GSS responses: only a SASL mechanism name is ever read."""
        if body:
            self.client_kinds[PASSWORD] = (self.on_password, 0)
            name = cstring(body, 0, True)[0]
            if name in self.mechanisms:  # never a password sent where a mechanism belongs
                self.mechanism = name

    def on_key(self, body: bytes, size: int, now: float) -> None:
        if not 4 <= size - 4 <= 256:
            raise ProtocolError(f"BackendKeyData of {size} bytes")
        (pid,) = INT32.unpack_from(body, 0)
        self.backend = (pid, body[4:])

    def on_negotiate(self, body: bytes, size: int, now: float) -> None:
        has(body, 0, 8, False)
        (minor,) = INT32.unpack_from(body, 0)
        self.negotiated = f"{self.major}.{minor}"

    def on_status(self, body: bytes, size: int, now: float) -> None:
        if len(self.server_params) >= self.max_entries:
            raise ProtocolError("too many ParameterStatus messages during startup")
        self.server_params.append(name_and_value(body, len(body) < size))

    def on_notice(self, body: bytes, size: int, now: float) -> None:
        self.events.append(NoticeReceived(error_fields(body, len(body) < size), now))

    def on_error(self, body: bytes, size: int, now: float) -> None:
        self._complete(False, error_fields(body, len(body) < size), now)

    def on_ready(self, body: bytes, size: int, now: float) -> None:
        if body not in TX_STATUS:
            raise ProtocolError(f"ReadyForQuery status {body!r}")
        self._complete(True, None, now)

    def _complete(self, ok: bool, error: PgError | None, now: float) -> None:
        pid, key = self.backend or (None, None)
        started = now if self.started is None else self.started
        self.events.append(
            AuthenticationCompleted(
                self._method(), ok, error, pid, key, tuple(self.server_params), self.negotiated, started, now
            )
        )
        self.done = True
        self.client_kinds[PASSWORD] = (self.on_password, 0)
        self.on_done()

    def _method(self) -> str:
        if self.method != "sasl":
            return self.method or "trust"  # no request before AuthenticationOk: trust (or peer, cert...)
        mechanism = self.mechanism or (self.mechanisms[0] if len(self.mechanisms) == 1 else None)
        return mechanism.lower() if mechanism else "sasl"

    def close(self, now: float) -> None:
        if self.request is not None:
            self.events.append(EncryptionRequested(self.request[0], None, self.request[1]))
        if self.started is not None and not self.done:
            self._complete(False, None, now)


def _mechanisms(body: bytes, partial: bool) -> tuple[str, ...]:
    names = []
    pos = 4
    while pos < len(body) and body[pos]:
        name, pos = cstring(body, pos, partial)
        names.append(name)
    return tuple(names)


def _length(packet: bytearray) -> int:
    return int.from_bytes(packet[:4], "big")


def _nothing() -> None:
    """The default `on_done`."""
