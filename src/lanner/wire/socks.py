"""Server side of SOCKS4, SOCKS4a (no RFC; the NEC/OpenSSH texts) and SOCKS5 (RFC 1928, 1929).

`SocksServer` takes the client's bytes with `receive_data`, yields events from
`next_event`, and builds every reply the server sends. It never decides
anything: which method to pick, whether credentials are good and what reply
code to send are the caller's.
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass
from enum import Enum, auto
from typing import Final

from lanner.wire.errors import ProtocolError

SOCKS4_VERSION: Final = 0x04
SOCKS5_VERSION: Final = 0x05
AUTH_VERSION: Final = 0x01  # RFC 1929 subnegotiation version

METHOD_NO_AUTH: Final = 0x00
METHOD_USER_PASS: Final = 0x02
METHOD_NONE_ACCEPTABLE: Final = 0xFF

CMD_CONNECT: Final = 0x01
CMD_BIND: Final = 0x02
CMD_UDP_ASSOCIATE: Final = 0x03

ATYP_IPV4: Final = 0x01
ATYP_DOMAIN: Final = 0x03
ATYP_IPV6: Final = 0x04

_REPLY_ATYP_NOT_SUPPORTED: Final = 0x08
_S4_REJECTED: Final = 91

DEFAULT_MAX_FIELD: Final = 255  # SOCKS4 userid / SOCKS4a domain; SOCKS5 fields are length-prefixed


@dataclass(frozen=True, slots=True)
class Socks4Requested:
    """A SOCKS4 or SOCKS4a request (4a when `host` came as a name)."""

    command: int
    host: str
    port: int
    userid: str


@dataclass(frozen=True, slots=True)
class GreetingReceived:
    methods: frozenset[int]


@dataclass(frozen=True, slots=True)
class CredentialsReceived:
    username: str
    password: str


@dataclass(frozen=True, slots=True)
class Socks5Requested:
    command: int
    host: str
    port: int


class NeedData:
    """More bytes are needed before the next event."""


NEED_DATA: Final = NeedData()

SocksEvent = Socks4Requested | GreetingReceived | CredentialsReceived | Socks5Requested


class _State(Enum):
    START = auto()
    SOCKS4 = auto()
    GREETING = auto()
    CHOOSING = auto()  # waiting for the caller to pick a method
    AUTH = auto()
    AUTH_PENDING = auto()
    REQUEST = auto()
    DONE = auto()


class SocksServer:
    """One client's SOCKS handshake, any version, as a state machine."""

    def __init__(self, max_field: int = DEFAULT_MAX_FIELD) -> None:
        self._buf = bytearray()
        self._state = _State.START
        self._max_field = max_field
        self.version: int | None = None

    def receive_data(self, data: bytes) -> None:
        self._buf += data

    def trailing_data(self) -> bytes:
        """Bytes the client sent after its request (to be relayed)."""
        data = bytes(self._buf)
        self._buf.clear()
        return data

    def next_event(self) -> SocksEvent | NeedData:
        state = self._state
        if state is _State.START:
            return self._start()
        if state is _State.SOCKS4:
            return self._socks4()
        if state is _State.GREETING:
            return self._greeting()
        if state is _State.AUTH:
            return self._auth()
        if state is _State.REQUEST:
            return self._request()
        return NEED_DATA

    # -- replies (the caller's decisions, encoded) --

    def choose_method(self, method: int) -> bytes:
        if self._state is not _State.CHOOSING:
            raise RuntimeError("no greeting to answer")
        if method == METHOD_USER_PASS:
            self._state = _State.AUTH
        elif method == METHOD_NO_AUTH:
            self._state = _State.REQUEST
        else:
            self._state = _State.DONE
        return bytes((SOCKS5_VERSION, method))

    def auth_result(self, ok: bool) -> bytes:
        if self._state is not _State.AUTH_PENDING:
            raise RuntimeError("no credentials to answer")
        self._state = _State.REQUEST if ok else _State.DONE
        return bytes((AUTH_VERSION, 0x00 if ok else 0x01))

    # -- parsing --

    def _start(self) -> SocksEvent | NeedData:
        if not self._buf:
            return NEED_DATA
        version = self._buf[0]
        if version == SOCKS4_VERSION:
            self._state = _State.SOCKS4
        elif version == SOCKS5_VERSION:
            self._state = _State.GREETING
        else:
            raise ProtocolError(f"not SOCKS: first byte {version:#04x}")
        self.version = version
        return self.next_event()

    def _socks4(self) -> Socks4Requested | NeedData:
        buf = self._buf
        if len(buf) < 9:
            return NEED_DATA
        command, port = buf[1], int.from_bytes(buf[2:4], "big")
        userid_end = buf.find(0, 8, 8 + self._max_field + 1)
        if userid_end < 0:
            return self._socks4_bounded(len(buf) - 8)
        userid = _text(buf[8:userid_end], _S4_REJECTED)
        ip = bytes(buf[4:8])
        end = userid_end + 1
        if ip[:3] == b"\0\0\0" and ip[3] != 0:  # SOCKS4a: a name follows the userid
            name_end = buf.find(0, end, end + self._max_field + 1)
            if name_end < 0:
                return self._socks4_bounded(len(buf) - end)
            host = _text(buf[end:name_end], _S4_REJECTED)
            if not host:
                raise ProtocolError("SOCKS4a: empty host name", _S4_REJECTED)
            end = name_end + 1
        else:
            host = str(ipaddress.IPv4Address(ip))
        del buf[:end]
        self._state = _State.DONE
        return Socks4Requested(command, host, port, userid)

    def _socks4_bounded(self, pending: int) -> NeedData:
        if pending > self._max_field:
            raise ProtocolError("SOCKS4: field longer than limit", _S4_REJECTED)
        return NEED_DATA

    def _greeting(self) -> GreetingReceived | NeedData:
        buf = self._buf
        if len(buf) < 2:
            return NEED_DATA
        count = buf[1]
        if count == 0:
            raise ProtocolError("SOCKS5: greeting lists no methods")
        if len(buf) < 2 + count:
            return NEED_DATA
        methods = frozenset(buf[2 : 2 + count])
        del buf[: 2 + count]
        self._state = _State.CHOOSING
        return GreetingReceived(methods)

    def _auth(self) -> CredentialsReceived | NeedData:
        buf = self._buf
        if len(buf) < 2:
            return NEED_DATA
        if buf[0] != AUTH_VERSION:
            raise ProtocolError(f"SOCKS5 auth: version {buf[0]:#04x}")
        ulen = buf[1]
        if len(buf) < 3 + ulen:
            return NEED_DATA
        plen = buf[2 + ulen]
        end = 3 + ulen + plen
        if len(buf) < end:
            return NEED_DATA
        username = _text(buf[2 : 2 + ulen], None)
        password = _text(buf[3 + ulen : end], None)
        del buf[:end]
        self._state = _State.AUTH_PENDING
        return CredentialsReceived(username, password)

    def _request(self) -> Socks5Requested | NeedData:
        buf = self._buf
        if len(buf) < 5:
            return NEED_DATA
        if buf[0] != SOCKS5_VERSION:
            raise ProtocolError(f"SOCKS5 request: version {buf[0]:#04x}")
        parsed = parse_address(buf, 3)
        if parsed is None:
            return NEED_DATA
        host, port, end = parsed
        command = buf[1]
        del buf[:end]
        self._state = _State.DONE
        return Socks5Requested(command, host, port)


def parse_address(buf: bytes | bytearray, offset: int) -> tuple[str, int, int] | None:
    """Parse ATYP, address and port at `offset`: (host, port, end) or None if short."""
    atyp = buf[offset]
    start = offset + 1
    if atyp == ATYP_IPV4:
        end = start + 4
        if len(buf) < end + 2:
            return None
        host = str(ipaddress.IPv4Address(bytes(buf[start:end])))
    elif atyp == ATYP_IPV6:
        end = start + 16
        if len(buf) < end + 2:
            return None
        host = str(ipaddress.IPv6Address(bytes(buf[start:end])))
    elif atyp == ATYP_DOMAIN:
        if len(buf) < start + 1:
            return None
        end = start + 1 + buf[start]
        if len(buf) < end + 2:
            return None
        host = _text(buf[start + 1 : end], _REPLY_ATYP_NOT_SUPPORTED)
        if not host:
            raise ProtocolError("SOCKS5: empty domain name", _REPLY_ATYP_NOT_SUPPORTED)
    else:
        raise ProtocolError(f"SOCKS5: address type {atyp:#04x}", _REPLY_ATYP_NOT_SUPPORTED)
    port = int.from_bytes(buf[end : end + 2], "big")
    return host, port, end + 2


def encode_address(host: str, port: int) -> bytes:
    """ATYP + address + port for a reply or a UDP header."""
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        name = host.encode("idna")
        return bytes((ATYP_DOMAIN, len(name))) + name + struct.pack("!H", port)
    atyp = ATYP_IPV4 if ip.version == 4 else ATYP_IPV6
    return bytes((atyp,)) + ip.packed + struct.pack("!H", port)


def socks5_reply(code: int, host: str = "0.0.0.0", port: int = 0) -> bytes:
    return bytes((SOCKS5_VERSION, code, 0x00)) + encode_address(host, port)


def socks4_reply(code: int, port: int = 0, ip: str = "0.0.0.0") -> bytes:
    return bytes((0x00, code)) + struct.pack("!H", port) + ipaddress.IPv4Address(ip).packed


@dataclass(frozen=True, slots=True)
class UdpDatagram:
    """One SOCKS5 UDP request/reply datagram (RFC 1928 section 7)."""

    fragment: int
    host: str
    port: int
    payload: bytes


def parse_udp_datagram(data: bytes) -> UdpDatagram:
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise ProtocolError("SOCKS5 UDP: bad header")
    parsed = parse_address(data, 3)
    if parsed is None:
        raise ProtocolError("SOCKS5 UDP: truncated header")
    host, port, end = parsed
    return UdpDatagram(data[2], host, port, data[end:])


def build_udp_datagram(host: str, port: int, payload: bytes) -> bytes:
    return b"\0\0\0" + encode_address(host, port) + payload


def _text(raw: bytes | bytearray, reply_hint: int | None) -> str:
    try:
        return bytes(raw).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ProtocolError("SOCKS: field is not UTF-8", reply_hint) from exc
