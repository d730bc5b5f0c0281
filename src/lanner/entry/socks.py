"""SOCKS4, SOCKS4a and SOCKS5 entry: drives `wire.socks.SocksServer` over a connection.

The parser decides nothing; this entry picks the authentication method,
checks credentials, asks the dialer for the destination and turns every
`GatewayError` into the reply code its class names (RFC 1928 section 6).
"""

from __future__ import annotations

import ipaddress

from lanner.entry.base import EntryProtocol
from lanner.errors import (
    S4_GRANTED,
    S4_REJECTED,
    S5_CMD_NOT_SUPPORTED,
    S5_SUCCEEDED,
    AuthFailed,
    GatewayError,
    Outcome,
)
from lanner.net.listener import ListenerRuntime
from lanner.net.udp import UdpAssociation
from lanner.wire import socks
from lanner.wire.errors import ProtocolError


class SocksEntry(EntryProtocol):
    def __init__(self, listener: ListenerRuntime) -> None:
        super().__init__(listener)
        self.parser = socks.SocksServer(max_field=listener.limits.max_socks_field)
        self.requested = False
        self.early: list[bytes] = []  # client bytes sent before our reply
        self.client_eof = False

    def handle(self, data: bytes) -> None:
        if self.requested:
            self.early.append(data)
            self.transport.pause_reading()
            return
        self.parser.receive_data(data)
        try:
            while not self.requested and not self.client_gone:
                event = self.parser.next_event()
                if event is socks.NEED_DATA:
                    return
                self._dispatch(event)  # type: ignore[arg-type]
        except ProtocolError as exc:
            self._refuse_malformed(exc)

    def _dispatch(self, event: socks.SocksEvent) -> None:
        if isinstance(event, socks.GreetingReceived):
            self.conn.protocol = "socks5"
            self._choose_method(event.methods)
        elif isinstance(event, socks.CredentialsReceived):
            self._check_credentials(event)
        elif isinstance(event, socks.Socks5Requested):
            self._requested_v5(event)
        else:
            self._requested_v4(event)

    def _choose_method(self, offered: frozenset[int]) -> None:
        # Where a username can carry routing parameters, ask for it even when nothing is required.
        wants_username = self.listener.auth_required or self.listener.services.auth.params is not None
        if socks.METHOD_USER_PASS in offered and (wants_username or socks.METHOD_NO_AUTH not in offered):
            method = socks.METHOD_USER_PASS
        elif socks.METHOD_NO_AUTH in offered and not self.listener.auth_required:
            method = socks.METHOD_NO_AUTH
        else:
            method = socks.METHOD_NONE_ACCEPTABLE
        self.transport.write(self.parser.choose_method(method))
        if method == socks.METHOD_NONE_ACCEPTABLE:
            self._fail(Outcome.AUTH_FAILED, "no acceptable authentication method")

    def _check_credentials(self, event: socks.CredentialsReceived) -> None:
        self.conn.user = event.username
        try:
            identity = self.listener.services.auth.identify(
                event.username, event.password, self.listener.auth_required
            )
        except AuthFailed as exc:
            self.transport.write(self.parser.auth_result(False))
            self._fail(exc.outcome, exc.detail)
            return
        self.conn.account = identity.account
        self.conn.params = identity.params
        self.transport.write(self.parser.auth_result(True))

    def _requested_v5(self, event: socks.Socks5Requested) -> None:
        self._request_received()
        if event.command == socks.CMD_CONNECT:
            self.run(self._connect(event.host, event.port), "dial")
        elif event.command == socks.CMD_UDP_ASSOCIATE and self._through_vendor():
            # Vendors carry TCP tunnels only; relaying datagrams directly would show lanner's own address.
            self.transport.write(socks.socks5_reply(S5_CMD_NOT_SUPPORTED))
            self._fail(Outcome.UNSUPPORTED, "UDP ASSOCIATE on a connection routed through a vendor pool")
        elif event.command == socks.CMD_UDP_ASSOCIATE:
            self.run(self._associate(event.host, event.port), "udp")
        else:
            self.transport.write(socks.socks5_reply(S5_CMD_NOT_SUPPORTED))
            self._fail(Outcome.UNSUPPORTED, f"SOCKS5 command {event.command:#04x}")

    def _through_vendor(self) -> bool:
        return (self.conn.params.pool or self.listener.config.upstream_pool) is not None

    def _requested_v4(self, event: socks.Socks4Requested) -> None:
        is_name = _is_name(event.host)
        self.conn.protocol = "socks4a" if is_name else "socks4"
        self.conn.user = event.userid or None
        self._request_received()
        try:
            identity = self.listener.services.auth.identify_socks4(event.userid, self.listener.auth_required)
        except AuthFailed as exc:
            self.transport.write(socks.socks4_reply(S4_REJECTED))
            self._fail(exc.outcome, exc.detail)
            return
        self.conn.account = identity.account
        self.conn.params = identity.params
        if event.command != socks.CMD_CONNECT:
            self.transport.write(socks.socks4_reply(S4_REJECTED))
            self._fail(Outcome.UNSUPPORTED, f"SOCKS4 command {event.command}")
            return
        self.run(self._connect(event.host, event.port), "dial")

    def _request_received(self) -> None:
        self.requested = True
        self.conn.handshake_done()

    async def _connect(self, host: str, port: int) -> None:
        try:
            upstream = await self.dial_tunnel(host, port)
        except GatewayError as exc:
            self._reply_failure(exc)
            return
        if upstream is None:
            return
        bound_host, bound_port = upstream.transport.get_extra_info("sockname")[:2]
        if self.parser.version == socks.SOCKS4_VERSION:
            self.transport.write(socks.socks4_reply(S4_GRANTED))
        else:
            self.transport.write(socks.socks5_reply(S5_SUCCEEDED, bound_host, bound_port))
        early = b"".join(self.early) + self.parser.trailing_data()
        self.tunnel(upstream, host, port, early, client_eof=self.client_eof, client_paused=bool(self.early))

    async def _associate(self, host: str, port: int) -> None:
        client_ip = self.transport.get_extra_info("peername")[0]
        local_ip = self.transport.get_extra_info("sockname")[0]
        association = await UdpAssociation.open(self.conn, client_ip, port or None, local_ip)
        if self.client_gone:
            association.close()
            return
        relay_host, relay_port = association.address
        self.conn.protocol = "socks5-udp"
        self.transport.write(socks.socks5_reply(S5_SUCCEEDED, relay_host, relay_port))
        association.take_control(self.transport)

    def _reply_failure(self, exc: GatewayError) -> None:
        self.conn.set_outcome(exc.outcome, exc.detail)
        if self.client_gone:
            return
        if self.parser.version == socks.SOCKS4_VERSION:
            self.transport.write(socks.socks4_reply(S4_REJECTED))
        else:
            self.transport.write(socks.socks5_reply(exc.socks5_reply))
        self.transport.close()

    def _refuse_malformed(self, exc: ProtocolError) -> None:
        if exc.reply_hint is not None:
            if self.parser.version == socks.SOCKS4_VERSION:
                self.transport.write(socks.socks4_reply(S4_REJECTED))
            else:
                self.transport.write(socks.socks5_reply(exc.reply_hint))
        outcome = Outcome.UNSUPPORTED if exc.reply_hint == 0x08 else Outcome.BAD_REQUEST
        self._fail(outcome, str(exc))

    def _fail(self, outcome: Outcome, detail: str) -> None:
        self.conn.set_outcome(outcome, detail)
        self.transport.close()

    def eof_received(self) -> bool | None:
        if self.requested:  # client half-closed while we dial: pass it on once linked
            self.client_eof = True
            return True
        return super().eof_received()


def _is_name(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return True
    return False
