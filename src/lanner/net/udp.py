"""SOCKS5 UDP ASSOCIATE (RFC 1928 section 7): a datagram relay for one client.

The association binds a UDP socket on the address the client's TCP
connection arrived on and lives exactly as long as that TCP connection.
Datagrams are accepted only from the client's IP (and port, if it named
one), sent on with the SOCKS header stripped, and replies are relayed back
only from destinations the client has sent to. Fragmented datagrams
(FRAG != 0) are not supported and, like every other dropped datagram, are
counted and reported on the connection's log line.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket

from lanner.errors import GatewayError
from lanner.net.conn import Conn
from lanner.net.dial import client_address
from lanner.net.resolver import ip_literal
from lanner.net.tasks import spawn
from lanner.route.rules import Verdict
from lanner.wire.errors import ProtocolError
from lanner.wire.socks import build_udp_datagram, parse_udp_datagram

log = logging.getLogger("lanner")


class UdpAssociation:
    def __init__(self, conn: Conn, client_ip: str, client_port: int | None) -> None:
        self.conn = conn
        self.client_ip = ip_literal(client_ip) or client_ip
        self.client_port = client_port
        self.client_addr: tuple[str, int] | None = None
        self.to_client: asyncio.DatagramTransport | None = None
        self.outbound: dict[int, asyncio.DatagramTransport] = {}
        self.contacted: set[tuple[str, int]] = set()
        self.dropped = 0
        self.closed = False

    @classmethod
    async def open(cls, conn: Conn, client_ip: str, client_port: int | None, local_ip: str) -> UdpAssociation:
        association = cls(conn, client_ip, client_port)
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(
            lambda: _ClientSide(association), local_addr=(local_ip, 0)
        )
        association.to_client = transport
        return association

    @property
    def address(self) -> tuple[str, int]:
        assert self.to_client is not None
        host, port = self.to_client.get_extra_info("sockname")[:2]
        return host, port

    def take_control(self, transport: asyncio.Transport) -> None:
        """Bind the association's life to the client's TCP connection."""
        transport.set_protocol(_Control(self))

    # client -> destination

    def from_client(self, data: bytes, addr: tuple[str, int]) -> None:
        if addr[0] != self.client_ip or (self.client_port and addr[1] != self.client_port):
            self._drop("datagram from a stranger")
            return
        self.client_addr = addr[:2]
        try:
            datagram = parse_udp_datagram(data)
        except ProtocolError:
            self._drop("malformed SOCKS UDP header")
            return
        if datagram.fragment:
            self._drop("fragmented datagram")
            return
        address = ip_literal(datagram.host)
        if address is not None and self._allowed(datagram.host, address, datagram.port):
            self._send(address, datagram.port, datagram.payload)
        elif address is None:
            spawn(self._resolve_and_send(datagram.host, datagram.port, datagram.payload), "udp-send")
        else:
            self._drop("destination denied")

    async def _resolve_and_send(self, host: str, port: int, payload: bytes) -> None:
        try:
            addresses = await self.conn.listener.services.resolver.resolve(host)
        except GatewayError:
            self._drop("unresolvable destination")
            return
        for address in addresses:
            if self._allowed(host, address, port):
                self._send(address, port, payload)
                return
        self._drop("destination denied")

    def _allowed(self, host: str, address: str, port: int) -> bool:
        router = self.conn.listener.services.router
        ip = ipaddress.ip_address(address)
        if router.is_own_address(ip, port):
            return False
        conn = self.conn
        verdict = router.check(conn.listener.name, conn.account, host, port, ip, client_address(conn))
        return verdict is Verdict.ALLOW

    def _send(self, address: str, port: int, payload: bytes) -> None:
        if self.closed:
            return
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        outbound = self.outbound.get(family)
        if outbound is None:
            spawn(self._open_outbound(family, address, port, payload), "udp-outbound")
            return
        self.contacted.add((address, port))
        outbound.sendto(payload, (address, port))
        self.conn.up += len(payload)

    async def _open_outbound(self, family: int, address: str, port: int, payload: bytes) -> None:
        if family not in self.outbound:
            loop = asyncio.get_running_loop()
            any_address = "::" if family == socket.AF_INET6 else "0.0.0.0"
            transport, _ = await loop.create_datagram_endpoint(
                lambda: _RemoteSide(self), family=family, local_addr=(any_address, 0)
            )
            if self.closed:
                transport.close()
                return
            self.outbound[family] = transport
        self._send(address, port, payload)

    # destination -> client

    def from_remote(self, data: bytes, addr: tuple[str, int]) -> None:
        source = (ip_literal(addr[0]) or addr[0], addr[1])
        if source not in self.contacted or self.client_addr is None or self.to_client is None:
            self._drop("datagram from an address the client never contacted")
            return
        self.to_client.sendto(build_udp_datagram(source[0], source[1], data), self.client_addr)
        self.conn.down += len(data)

    def _drop(self, reason: str) -> None:
        self.dropped += 1
        log.debug("udp datagram dropped", extra={"fields": {"id": self.conn.id, "reason": reason}})

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self.to_client is not None:
            self.to_client.close()
        for transport in self.outbound.values():
            transport.close()
        if self.dropped:
            self.conn.note("udp_dropped", self.dropped)


class _ClientSide(asyncio.DatagramProtocol):
    def __init__(self, association: UdpAssociation) -> None:
        self.association = association

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.association.from_client(data, addr)


class _RemoteSide(asyncio.DatagramProtocol):
    def __init__(self, association: UdpAssociation) -> None:
        self.association = association

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.association.from_remote(data, addr)


class _Control(asyncio.Protocol):
    """The client's TCP connection after UDP ASSOCIATE: its end ends the association."""

    def __init__(self, association: UdpAssociation) -> None:
        self.association = association

    def data_received(self, data: bytes) -> None:
        self.association.conn.note("tcp_bytes_ignored", len(data))

    def eof_received(self) -> bool:
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.association.close()
        self.association.conn.ended()
