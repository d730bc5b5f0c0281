"""The router listener's entry: route by TLS SNI or HTTP Host without terminating anything.

The first byte tells the two apart (0x16 starts a TLS handshake record). A
TLS client's ClientHello is read whole (however it is split across segments
and records) and its SNI chooses the route; a plain HTTP client's first
request head is read and its Host header chooses. Either way the target then
receives every byte exactly as the client sent it. No route: a TLS alert
(unrecognized_name, RFC 6066 section 3) or an HTTP 421; a target that
cannot be reached: a TLS alert (internal_error) or an HTTP 502.
"""

from __future__ import annotations

from lanner.config.model import split_hostport
from lanner.entry.base import EntryProtocol
from lanner.entry.http_forward import error_response, split_authority
from lanner.errors import GatewayError, NoRoute
from lanner.net.listener import ListenerRuntime
from lanner.net.relay import link
from lanner.route.names import RouteChoice
from lanner.wire.errors import ProtocolError
from lanner.wire.http1 import NEED_DATA, HttpReader, RequestReceived, header_value
from lanner.wire.tls_hello import HelloReader

_ALERT_UNRECOGNIZED_NAME = b"\x15\x03\x03\x00\x02\x02\x70"  # fatal, unrecognized_name (112)
_ALERT_INTERNAL_ERROR = b"\x15\x03\x03\x00\x02\x02\x50"  # fatal, internal_error (80)


class RouterEntry(EntryProtocol):
    def __init__(self, listener: ListenerRuntime) -> None:
        super().__init__(listener)
        self.kind: str | None = None  # "tls" or "http" once the first byte arrived
        self.hello = HelloReader()
        limits = listener.limits
        self.request = HttpReader(True, limits.max_header_bytes, limits.max_request_line, False)
        self.received: list[bytes] = []
        self.client_eof = False

    def started(self) -> None:
        self.conn.protocol = "router"

    def handle(self, data: bytes) -> None:
        if self.kind is None:
            self.kind = "tls" if data[0] == 0x16 else "http"
            self.conn.protocol = "sni" if self.kind == "tls" else "http-host"
        elif not self.conn.in_handshake:
            self.received.append(data)  # arrived after the route was chosen, before the link
            return
        try:
            whole, name = self.read_tls(data) if self.kind == "tls" else self.read_http(data)
        except ProtocolError as exc:
            self.refuse(NoRoute(f"unreadable {self.kind} start: {exc}"), exc.reply_hint or 400)
            return
        if whole:
            self.route(name)

    def read_tls(self, data: bytes) -> tuple[bool, str | None]:
        """(whole, SNI): whole once the ClientHello is; the SNI may be None (none sent)."""
        self.hello.receive_data(data)
        hello = self.hello.next_event()
        if hello is None:
            return False, None
        self.conn.sni = hello.server_name
        self.received.append(self.hello.take_buffered())
        return True, hello.server_name

    def read_http(self, data: bytes) -> tuple[bool, str | None]:
        """(whole, Host): whole once the first request head is; the Host may be None."""
        self.received.append(data)
        self.request.receive_data(data)
        event = self.request.next_event()
        if event is NEED_DATA:
            return False, None
        if type(event) is not RequestReceived:
            raise ProtocolError("expected a request head", 400)
        host = header_value(event.head.headers, b"host")
        return True, split_authority(host, 80)[0] if host else None

    def route(self, name: str | None) -> None:
        conn = self.conn
        conn.handshake_done()
        kind = self.kind or "http"
        choice = self.listener.routes.choose(name, kind)
        if choice is None:
            conn.note("route", f"none for {name or 'no name'} ({kind})")
            self.refuse(NoRoute(f"no route for {name or 'a client that sent no name'}"), 421)
            return
        conn.note("route", choice.describe(name))
        self.transport.pause_reading()
        self.run(self.connect(choice), "dial")

    async def connect(self, choice: RouteChoice) -> None:
        host, port = split_hostport(choice.route.target)
        try:
            upstream = await self.dial_tunnel(host, port)
        except GatewayError as exc:
            self.refuse(exc, exc.http_status)
            return
        if upstream is None:
            return
        early = b"".join(self.received)
        link(self.conn, self.transport, upstream, early, client_eof=self.client_eof, client_paused=True)

    def eof_received(self) -> bool | None:
        if not self.conn.in_handshake:
            self.client_eof = True  # passed on once linked
            return True
        return super().eof_received()

    def refuse(self, exc: GatewayError, status: int) -> None:
        self.conn.set_outcome(exc.outcome, exc.detail)
        if self.client_gone:
            return
        if self.kind == "tls":
            no_route = isinstance(exc, NoRoute)
            self.transport.write(_ALERT_UNRECOGNIZED_NAME if no_route else _ALERT_INTERNAL_ERROR)
        else:
            self.transport.write(error_response(status, exc.detail if status != 400 else "bad request"))
            self.listener.metrics.answered(status)
        self.transport.close()
