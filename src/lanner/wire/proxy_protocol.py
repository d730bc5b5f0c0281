"""The HAProxy PROXY protocol header, versions 1 (text) and 2 (binary).

A load balancer in front of lanner may open each connection with one header
saying whom it relays for; lanner may open an upstream connection with one.
`ProxyHeaderReader` takes a connection's first bytes and returns the header,
`encode_v1` and `encode_v2` build one. Section numbers below are those of
https://www.haproxy.org/download/2.9/doc/proxy-protocol.txt ("spec").

It never decides whether to trust a header: the spec (section 5) forbids
guessing whether one is present, so only a listener configured for trusted
peers reads one, and `starts_like_header` lets every other listener refuse it.
It never touches sockets, the event loop or the clock.
"""

from __future__ import annotations

import ipaddress
import struct
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

from lanner.wire.errors import ProtocolError

MAX_V1: Final = 107  # spec 2.1: the worst-case "UNKNOWN" line, CRLF included
DEFAULT_MAX_V2: Final = 4096  # 16-byte prefix + length; the wire format allows 65551

V1_PREFIX: Final = b"PROXY "
V2_SIGNATURE: Final = b"\r\n\r\n\x00\r\nQUIT\n"  # spec 2.2
_V2_FIXED_SIZE: Final = 16  # signature, version/command, family/transport, length

COMMAND_LOCAL: Final = 0x0
COMMAND_PROXY: Final = 0x1
FAMILY_UNSPEC: Final = 0x0
FAMILY_INET: Final = 0x1
FAMILY_INET6: Final = 0x2
FAMILY_UNIX: Final = 0x3
TRANSPORT_UNSPEC: Final = 0x0
TRANSPORT_STREAM: Final = 0x1
TRANSPORT_DGRAM: Final = 0x2

# spec 2.2: the address block each family needs (two addresses, then two ports for IP)
_ADDRESS_SIZE: Final = {FAMILY_UNSPEC: 0, FAMILY_INET: 12, FAMILY_INET6: 36, FAMILY_UNIX: 216}
_V1_PROTOCOLS: Final = (b"TCP4 ", b"TCP6 ", b"UNKNOWN ")  # "UNKNOWN" may also end at the CRLF
_V1_ADDRESS_CHARS: Final = {
    b"TCP4": frozenset(b"0123456789. "),
    b"TCP6": frozenset(b"0123456789abcdefABCDEF:. "),  # dots: an embedded IPv4 tail
}

Endpoint = tuple[str, int]
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True, slots=True)
class ProxyHeader:
    """A header as received.

    `local` is a v2 LOCAL command or a v1 "UNKNOWN" line: the connection is the
    proxy's own, so the socket's real addresses apply. `source` and
    `destination` are set only for TCP or UDP over IPv4/IPv6 relayed by PROXY.
    """

    version: int
    local: bool
    source: Endpoint | None
    destination: Endpoint | None
    tlvs: tuple[tuple[int, bytes], ...] = ()


class ProxyHeaderReader:
    """The header at the start of one connection; `rest` is what followed it."""

    def __init__(self, max_v2: int = DEFAULT_MAX_V2) -> None:
        if max_v2 < _V2_FIXED_SIZE:
            raise ValueError(f"max_v2 must be at least {_V2_FIXED_SIZE}")
        self._max_v2 = max_v2
        self._buf = bytearray()
        self._done = False
        self.rest = b""

    def receive_data(self, data: bytes) -> ProxyHeader | None:
        """Feed bytes: the header once complete, None while more are needed."""
        if self._done:
            raise RuntimeError("the PROXY header was already returned; read `rest`")
        self._buf += data
        if _agrees(self._buf, V2_SIGNATURE):
            return self._v2()
        if _agrees(self._buf, V1_PREFIX):
            return self._v1()
        raise ProtocolError("not a PROXY protocol header")

    def _v1(self) -> ProxyHeader | None:
        head = bytes(self._buf[:MAX_V1])
        stop = min((at for at in (head.find(b"\r"), head.find(b"\n")) if at >= 0), default=len(head))
        line, ending = head[:stop], head[stop : stop + 2]
        _check_v1_so_far(line)
        if ending == b"\r\n":
            return self._finish(_parse_v1(line), stop + 2)
        if ending not in (b"", b"\r"):  # spec 2.1: a lone CR or LF never ends the line
            raise ProtocolError("PROXY v1: line not ended by CRLF")
        if len(head) >= MAX_V1:
            raise ProtocolError(f"PROXY v1: no CRLF within {MAX_V1} bytes")
        return None

    def _v2(self) -> ProxyHeader | None:
        buf = self._buf
        _check_v2_fixed(bytes(buf[12:14]))
        if len(buf) < _V2_FIXED_SIZE:
            return None
        total = _V2_FIXED_SIZE + int.from_bytes(buf[14:16], "big")
        if total > self._max_v2:
            raise ProtocolError(f"PROXY v2: header of {total} bytes exceeds {self._max_v2}")
        if len(buf) < total:
            return None
        return self._finish(_parse_v2(buf[12], buf[13], bytes(buf[16:total])), total)

    def _finish(self, header: ProxyHeader, size: int) -> ProxyHeader:
        self._done = True
        self.rest = bytes(self._buf[size:])
        self._buf.clear()
        return header


def starts_like_header(prefix: bytes) -> bool:
    """True if these first bytes could begin a v1 or v2 header.

    A True on fewer than 6 bytes (v1) or 12 (v2) is not proof: b"P" could also
    begin "PUT". Read on until this turns False or the prefix is that long.
    """
    return _agrees(prefix, V2_SIGNATURE) or _agrees(prefix, V1_PREFIX)


def _agrees(data: bytes | bytearray, expected: bytes) -> bool:
    """True if `data` and `expected` match as far as both go."""
    size = min(len(data), len(expected))
    return data[:size] == expected[:size]


# -- version 1 (spec 2.1) --


def _check_v1_so_far(line: bytes) -> None:
    """Refuse a line no further bytes could fix (spec 2.1: abort as soon as possible)."""
    word = line[len(V1_PREFIX) :]
    if not any(_agrees(word, protocol) for protocol in _V1_PROTOCOLS):
        raise ProtocolError("PROXY v1: protocol is not TCP4, TCP6 or UNKNOWN")
    allowed = _V1_ADDRESS_CHARS.get(word[:4])
    if allowed is not None and not allowed.issuperset(word[5:]):
        raise ProtocolError("PROXY v1: character not allowed in an address or port")


def _parse_v1(line: bytes) -> ProxyHeader:
    if line == b"PROXY UNKNOWN" or line.startswith(b"PROXY UNKNOWN "):
        return ProxyHeader(1, True, None, None)  # spec 2.1: ignore the rest of the line
    fields = line.split(b" ")
    if len(fields) != 6:
        raise ProtocolError("PROXY v1: expected PROXY TCP4|TCP6 <src> <dst> <sport> <dport>")
    version = 4 if fields[1] == b"TCP4" else 6  # _check_v1_so_far allowed only TCP4 or TCP6 here
    source = _v1_address(fields[2], version), _v1_port(fields[4])
    destination = _v1_address(fields[3], version), _v1_port(fields[5])
    return ProxyHeader(1, False, source, destination)


def _v1_address(raw: bytes, version: int) -> str:
    try:
        address = ipaddress.ip_address(raw.decode("ascii"))
    except ValueError as exc:  # ipaddress refuses IPv4 leading zeros, as spec 2.1 does
        raise ProtocolError(f"PROXY v1: bad address {raw!r}") from exc
    if address.version != version:
        raise ProtocolError(f"PROXY v1: {raw!r} is not an IPv{version} address")
    return str(address)


def _v1_port(raw: bytes) -> int:
    leading_zero = raw.startswith(b"0") and raw != b"0"  # spec 2.1: no heading zeroes
    if not raw.isdigit() or len(raw) > 5 or leading_zero or int(raw) > 0xFFFF:
        raise ProtocolError(f"PROXY v1: bad port {raw!r}")
    return int(raw)


# -- version 2 (spec 2.2) --


def _check_v2_fixed(fixed: bytes) -> None:
    """Check the version/command and family/transport bytes, as far as they arrived."""
    if fixed[:1] and (fixed[0] >> 4 != 2 or fixed[0] & 0xF not in (COMMAND_LOCAL, COMMAND_PROXY)):
        raise ProtocolError(f"PROXY v2: version/command byte {fixed[0]:#04x}")
    if fixed[1:2] and (fixed[1] >> 4 not in _ADDRESS_SIZE or fixed[1] & 0xF > TRANSPORT_DGRAM):
        raise ProtocolError(f"PROXY v2: family/transport byte {fixed[1]:#04x}")


def _parse_v2(version_command: int, family_transport: int, block: bytes) -> ProxyHeader:
    # The family is checked and its address block skipped even under LOCAL: the
    # TLVs start after it (spec 2.2), and LOCAL usually sends UNSPEC, so no block.
    family, transport = family_transport >> 4, family_transport & 0xF
    size = _ADDRESS_SIZE[family]
    if len(block) < size:
        raise ProtocolError(f"PROXY v2: {len(block)} bytes cannot hold a family {family} address")
    tlvs = _parse_tlvs(block[size:])
    local = version_command & 0xF == COMMAND_LOCAL
    if local or family not in (FAMILY_INET, FAMILY_INET6) or transport == TRANSPORT_UNSPEC:
        return ProxyHeader(2, local, None, None, tlvs)
    source, destination = _ip_endpoints(block[:size])
    return ProxyHeader(2, False, source, destination, tlvs)


def _ip_endpoints(block: bytes) -> tuple[Endpoint, Endpoint]:
    width = (len(block) - 4) // 2
    source_port, destination_port = struct.unpack("!HH", block[-4:])
    source = str(ipaddress.ip_address(block[:width]))
    destination = str(ipaddress.ip_address(block[width : 2 * width]))
    return (source, source_port), (destination, destination_port)


def _parse_tlvs(data: bytes) -> tuple[tuple[int, bytes], ...]:
    tlvs: list[tuple[int, bytes]] = []
    at = 0
    while at < len(data):
        if len(data) - at < 3:
            raise ProtocolError("PROXY v2: truncated TLV header")
        end = at + 3 + int.from_bytes(data[at + 1 : at + 3], "big")
        if end > len(data):
            raise ProtocolError("PROXY v2: TLV value runs past the header")
        tlvs.append((data[at], data[at + 3 : end]))
        at = end
    return tuple(tlvs)


# -- encoding --


def encode_local(version: str) -> bytes:
    """A header for a connection of the proxy's own (health checks): v2 LOCAL or v1 UNKNOWN."""
    return encode_v2(None, None) if version == "v2" else b"PROXY UNKNOWN\r\n"


def encode_v1(source: Endpoint, destination: Endpoint) -> bytes:
    """A "PROXY TCP4|TCP6" line; both addresses must be of one family."""
    source_ip, destination_ip = _one_family(source[0], destination[0])
    ports = _checked_port(source[1]), _checked_port(destination[1])
    line = f"PROXY TCP{source_ip.version} {source_ip} {destination_ip} {ports[0]} {ports[1]}\r\n"
    return line.encode("ascii")


def encode_v2(
    source: Endpoint | None, destination: Endpoint | None, tlvs: Iterable[tuple[int, bytes]] = ()
) -> bytes:
    """A PROXY command for TCP, or a LOCAL command when both endpoints are None."""
    if source is None and destination is None:
        command, family_transport, block = COMMAND_LOCAL, 0x00, b""
    elif source is None or destination is None:
        raise ValueError("PROXY v2: give both endpoints, or neither for LOCAL")
    else:
        source_ip, destination_ip = _one_family(source[0], destination[0])
        family = FAMILY_INET if source_ip.version == 4 else FAMILY_INET6
        command, family_transport = COMMAND_PROXY, family << 4 | TRANSPORT_STREAM
        ports = struct.pack("!HH", _checked_port(source[1]), _checked_port(destination[1]))
        block = source_ip.packed + destination_ip.packed + ports
    payload = block + b"".join(_encode_tlv(kind, value) for kind, value in tlvs)
    if len(payload) > 0xFFFF:
        raise ValueError("PROXY v2: addresses and TLVs exceed 65535 bytes")
    fixed = struct.pack("!BBH", 0x20 | command, family_transport, len(payload))
    return V2_SIGNATURE + fixed + payload


def _one_family(source_host: str, destination_host: str) -> tuple[IPAddress, IPAddress]:
    if "%" in source_host or "%" in destination_host:
        raise ValueError("PROXY: an IPv6 scope cannot be sent")
    source_ip, destination_ip = ipaddress.ip_address(source_host), ipaddress.ip_address(destination_host)
    if source_ip.version != destination_ip.version:
        raise ValueError("PROXY: source and destination are of different address families")
    return source_ip, destination_ip


def _checked_port(port: int) -> int:
    if not 0 <= port <= 0xFFFF:
        raise ValueError(f"PROXY: port {port} out of range")
    return port


def _encode_tlv(kind: int, value: bytes) -> bytes:
    if not 0 <= kind <= 0xFF or len(value) > 0xFFFF:
        raise ValueError(f"PROXY v2: TLV type {kind} or its {len(value)}-byte value does not fit")
    return struct.pack("!BH", kind, len(value)) + value
