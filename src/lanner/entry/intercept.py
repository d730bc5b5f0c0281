"""Intercepting a CONNECT or SOCKS tunnel: read the ClientHello, then bypass or open it up.

Once the entry has answered "connected", `TunnelOpener` owns the client
connection until it has read the whole ClientHello. It passes the tunnel
through untouched (a plain `link`) when the bytes are not TLS, when the
client offers only protocols other than HTTP/1.1 through ALPN (h2-only
clients are not broken), or when the host has refused lanner's certificate
too often (pinning). Otherwise it terminates TLS with a leaf certificate for
the name the client asked for (issued off the loop on a miss), secures the
upstream it already dialed (verified against the system trust store unless
the rule says not to), and hands the plaintext to an `InterceptedSession`:
the forward proxy's HTTP session with a fixed, TLS-secured origin.
"""

from __future__ import annotations

import asyncio
import ssl

from lanner.entry.base import EntryProtocol
from lanner.entry.http_forward import request_for_origin
from lanner.entry.http_proxy import HttpProxySession, HttpUpstream, UpstreamKey
from lanner.errors import GatewayError, Outcome
from lanner.net.conn import Conn
from lanner.net.dial import dial
from lanner.net.listener import ListenerRuntime
from lanner.net.relay import WRITE_HIGH_WATER, ClientEnd, UpstreamEnd, link
from lanner.net.tasks import spawn
from lanner.net.tls import TlsServer, start_client_tls, tls_reason
from lanner.record.convert import Origin
from lanner.tls.policy import Interception, ResumingContext
from lanner.wire.errors import ProtocolError
from lanner.wire.http1 import RequestHead, header_value
from lanner.wire.tls_hello import ClientHello, HelloReader

CLIENT_ALPN = "http/1.1"


class TunnelOpener(asyncio.Protocol):
    """Between the entry's success reply and the decision: bypass or intercept."""

    def __init__(
        self, entry: EntryProtocol, upstream: UpstreamEnd, host: str, port: int, context: ResumingContext
    ) -> None:
        self.entry = entry
        self.conn = entry.conn
        self.client = entry.transport
        self.upstream = upstream
        self.upstream_context = context
        self.host, self.port = host, port
        self.reader = HelloReader()
        self.late: list[bytes] = []  # read after the decision, before the hand-over
        self.decided = False
        self.client_eof = False
        self.lost = False  # the client left while this opener still owned the connection

    @property
    def interception(self) -> Interception:
        interception = self.entry.listener.services.interception
        assert interception is not None
        return interception

    def start(self, early: bytes, client_eof: bool) -> None:
        # The ClientHello and the TLS handshake count as handshake: the listener's sweeper
        # closes a client that has not finished them `handshake_timeout` after it connected.
        self.conn.in_handshake = True
        self.client.set_protocol(self)
        self.client.resume_reading()
        if early:
            self.data_received(early)
        if client_eof:
            self.eof_received()

    def data_received(self, data: bytes) -> None:
        if self.decided:
            self.late.append(data)
            return
        try:
            self.reader.receive_data(data)
            hello = self.reader.next_event()
        except ProtocolError as exc:
            self.bypass(f"not a TLS ClientHello ({exc})")
            return
        if hello is not None:
            self.decide(hello)

    def eof_received(self) -> bool:
        self.client_eof = True
        if not self.decided:
            self.bypass("client closed before its ClientHello")
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        self.upstream.transport.close()
        when = "during interception" if self.decided else "before its ClientHello"
        self.conn.set_outcome(Outcome.RESET if exc else Outcome.OK, f"client left {when}")
        self.conn.ended()

    def decide(self, hello: ClientHello) -> None:
        name = hello.server_name or self.host
        self.conn.sni = hello.server_name
        if hello.alpn and CLIENT_ALPN not in hello.alpn:
            self.bypass(f"client offers only {', '.join(hello.alpn)}")
        elif self.interception.failures.passed_through(name):
            self.bypass(f"{name} refused lanner's certificate before")
        else:
            self.decided = True
            self.client.pause_reading()
            self.entry.run(self.intercept(hello, name), "intercept")

    def bypass(self, reason: str) -> None:
        self.decided = True
        self.conn.handshake_done()
        self.conn.note("intercept", f"bypassed: {reason}")
        link(
            self.conn,
            self.client,
            self.upstream,
            to_upstream=self.reader.take_buffered() + b"".join(self.late),
            client_eof=self.client_eof,
            client_end=ClientEnd(self.conn),  # the SNI is known: no probe of the first bytes
        )

    async def intercept(self, hello: ClientHello, name: str) -> None:
        conn = self.conn
        context = await self.interception.issuer.context(name)
        if self.lost:
            return
        server_name = hello.server_name or self.host
        listener = self.entry.listener
        session = InterceptedSession(listener, conn, self.host, self.port, server_name, self.upstream_context)
        securing = spawn(session.secure_existing(self.upstream), name=f"conn-{conn.id}-upstream-tls")
        tls = TlsServer(context, self.client, self.connection_lost)
        try:
            await tls.start(self.reader.take_buffered() + b"".join(self.late))
        except (ssl.SSLError, ConnectionError) as exc:
            securing.cancel()
            self.refused(name, exc)
            return
        conn.handshake_done()
        await securing
        conn.protocol = "https"
        conn.note("intercept", f"tls {tls.tls.version()}")
        session.transport = tls.transport
        tls.attach(session)

    def refused(self, name: str, exc: BaseException) -> None:
        """The client's handshake failed: recorded, counted towards passing the host through."""
        reason = tls_reason(exc) if isinstance(exc, ssl.SSLError) else (str(exc) or type(exc).__name__)
        if self.conn.outcome is Outcome.HANDSHAKE_TIMEOUT:
            reason = "no TLS handshake in time"
        self.interception.failures.failed(name, reason)
        self.conn.set_outcome(Outcome.TLS_FAILED, f"client TLS handshake for {name} failed: {reason}")
        self.upstream.transport.close()
        self.client.close()
        self.conn.ended()


class TlsUpstream(HttpUpstream):
    """An intercepted session's origin, which hands its TLS session over for resumption."""

    __slots__ = ("resumable",)

    def __init__(self, session: InterceptedSession, key: UpstreamKey) -> None:
        super().__init__(session, key)
        self.resumable: tuple[ResumingContext, str, ssl.SSLObject] | None = None

    def data_received(self, data: bytes) -> None:
        if self.resumable is not None:  # the first answer: any ticket came before it
            context, name, connection = self.resumable
            self.resumable = None
            context.remember(name, connection)
        super().data_received(data)


class InterceptedSession(HttpProxySession):
    """Origin-form HTTP inside an intercepted tunnel, to one origin over TLS."""

    spliceable = False  # both transports carry TLS that lanner terminated

    def __init__(
        self,
        listener: ListenerRuntime,
        conn: Conn,
        host: str,
        port: int,
        server_name: str,
        upstream_context: ResumingContext,
    ) -> None:
        super().__init__(listener)
        self.conn = conn
        self.admitted = True
        self.host, self.port = host, port
        self.authority = (f"[{host}]" if ":" in host else host).encode() + (
            b"" if port == 443 else b":%d" % port
        )
        self.upstream_context = upstream_context
        self.server_name = server_name  # what the client asked for: the upstream's SNI
        self.upstream_error: GatewayError | None = None  # answered to every request when set

    def authenticate(self, head: RequestHead) -> str | None:
        return self.conn.account  # the tunnel's credentials already decided

    def start_tunnel(self, head: RequestHead, user: str | None) -> None:
        raise ProtocolError("CONNECT inside an intercepted tunnel", 400)

    def route(self, head: RequestHead, user: str | None) -> tuple[UpstreamKey, bytes]:
        if not head.target.startswith(b"/") and head.target != b"*":
            raise ProtocolError("an intercepted request must use origin-form (a path)", 400)
        if self.upstream_error is not None:
            raise self.upstream_error
        authority = header_value(head.headers, b"host") or self.authority
        outgoing = request_for_origin(head, authority, head.target, self.close_after, self.via)
        return (self.host, self.port, self.conn.account), outgoing

    async def connect(self, key: UpstreamKey) -> HttpUpstream:
        """A new upstream for a later request (the first one was dialed by the tunnel's entry)."""
        end = TlsUpstream(self, key)
        _transport, plain = await dial(self.conn, self.host, self.port, lambda: UpstreamEnd(self.conn))
        await self.secure(plain.transport, end)
        return end

    async def secure_existing(self, plain: UpstreamEnd) -> None:
        """TLS over the upstream the tunnel's entry dialed; a failure is answered per request."""
        end = TlsUpstream(self, (self.host, self.port, self.conn.account))
        try:
            await self.secure(plain.transport, end)
        except GatewayError as exc:
            self.upstream_error = exc
            plain.transport.close()
            return
        self.upstream = end
        self.conn.upstream = end.transport

    async def secure(self, transport: asyncio.Transport, end: TlsUpstream) -> None:
        timeout = self.listener.limits.connect_timeout
        where = f"{self.host}:{self.port}"
        context = self.upstream_context
        end.transport = await start_client_tls(transport, end, context, self.server_name, timeout, where)
        end.transport.set_write_buffer_limits(WRITE_HIGH_WATER)
        connection = end.transport.get_extra_info("ssl_object")
        if connection is not None:
            end.resumable = (context, self.server_name, connection)

    def make_origin(self) -> Origin:
        conn = self.conn
        assert self.recorder is not None
        uid = self.recorder.uid(conn)
        return Origin(uid, self.listener.name, conn.client_text, conn.user, "https", self.host, self.port)
