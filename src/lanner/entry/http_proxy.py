"""HTTP forward proxy entry: absolute-form requests and CONNECT on a persistent connection.

One request is in flight at a time (pipelined requests wait in the reader).
Each request may go to a different origin; the upstream connection is kept
while requests go to the same origin and user. Bodies stream both ways as
raw wire bytes. A CONNECT, or a 101 answer to an Upgrade, turns the
connection into a tunnel.
"""

from __future__ import annotations

import asyncio
import time

from lanner.entry.base import EntryProtocol
from lanner.entry.http_forward import (
    error_response,
    request_for_origin,
    response_for_client,
    split_absolute,
    split_authority,
)
from lanner.errors import AuthFailed, GatewayError, Outcome, UpstreamFailed
from lanner.net.analyze import AnalyzedClientEnd, AnalyzedUpstreamEnd, WsTap, is_websocket
from lanner.net.dial import dial
from lanner.net.listener import ListenerRuntime
from lanner.net.relay import WRITE_HIGH_WATER, UpstreamEnd, link
from lanner.record.convert import Origin
from lanner.route.params import NO_PARAMS
from lanner.wire.errors import ProtocolError
from lanner.wire.http1 import (
    NEED_DATA,
    PAUSED,
    BodyReceived,
    Framing,
    HttpReader,
    MessageEnded,
    RequestHead,
    RequestReceived,
    ResponseHead,
    ResponseReceived,
    header_value,
)
from lanner.wire.http_exchange import BodyCapture, Exchange

_PROXY_AUTHENTICATE = [(b"Proxy-Authenticate", b'Basic realm="lanner"')]
_CONNECTED = b"HTTP/1.1 200 Connection established\r\n\r\n"

# Reasons the client side may be paused; reading resumes when none is left.
DIALING = 1
_UPSTREAM_FULL = 2
_PIPELINED = 4


_JOIN_LIMIT = 64 * 1024

UpstreamKey = tuple[str, int, str | None]  # host, port, account: what a kept upstream serves


def _write_all(transport: asyncio.Transport, pending: list[bytes | memoryview]) -> None:
    """One write for what one pump produced: joined when small (one send), else gathered."""
    if len(pending) == 1:
        transport.write(pending[0])
    elif pending:
        if sum(map(len, pending)) <= _JOIN_LIMIT:
            transport.write(b"".join(pending))
        else:
            transport.writelines(pending)
    pending.clear()


class HttpUpstream(asyncio.Protocol):
    """The origin side of one HttpProxySession."""

    __slots__ = ("session", "transport", "key")

    def __init__(self, session: HttpProxySession, key: UpstreamKey) -> None:
        self.session = session
        self.key = key
        self.transport: asyncio.Transport = None  # type: ignore[assignment]

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.transport.set_write_buffer_limits(WRITE_HIGH_WATER)

    def data_received(self, data: bytes) -> None:
        self.session.upstream_data(self, data)

    def eof_received(self) -> bool:
        self.session.upstream_eof(self)
        return False

    def pause_writing(self) -> None:
        self.session.pause_client(_UPSTREAM_FULL)

    def resume_writing(self) -> None:
        self.session.resume_client(_UPSTREAM_FULL)

    def connection_lost(self, exc: Exception | None) -> None:
        self.session.upstream_lost(self, exc)


class HttpProxySession(EntryProtocol):
    spliceable = True  # an upgraded connection may move to the splice relay

    def __init__(self, listener: ListenerRuntime) -> None:
        super().__init__(listener)
        limits = listener.limits
        self.recorder = listener.recorder
        recording = self.recorder is not None
        self.requests = HttpReader(True, limits.max_header_bytes, limits.max_request_line, recording)
        self.responses = self.new_response_reader()
        self.exchange: Exchange | None = None  # being recorded
        self.origin: Origin | None = None
        self.upstream: HttpUpstream | None = None
        self.request: RequestHead | None = None
        self.awaiting_response = False
        self.response_started = False
        self.request_complete = False  # the request's body has been read to its end
        self.close_after = False
        self.upstream_reusable = False
        self.client_eof = False
        self.switching = False  # to a tunnel: stop parsing
        self.upgrading = False  # a 101 was answered: the tunnel starts after this flush
        self.tunnel_pending = False  # CONNECT is dialing
        self.to_upstream: list[bytes | memoryview] = []  # written once per pump
        self.paused = 0
        self.last_auth: bytes | None = None
        self.via = listener.config.via
        self.unanswered = False  # a request (or CONNECT) is waiting for an answer to count
        self.sent_at = 0.0  # monotonic time its head went upstream: the latency metric's start

    def started(self) -> None:
        self.conn.protocol = "http"

    # -- client side --

    def handle(self, data: bytes) -> None:
        self.requests.receive_data(data)
        if self.tunnel_pending:
            # A client that talks before "200 Connection established" waits, boundedly.
            if self.requests.buffered > self.listener.limits.max_header_bytes:
                self.pause_client(DIALING)
            return
        self.pump_requests()

    def pump_requests(self) -> None:
        """Forward what the client sent; everything for the upstream goes out in one write."""
        reader = self.requests
        pending = self.to_upstream
        try:
            while not self.paused & DIALING and not self.switching:
                event = reader.next_event()
                if type(event) is BodyReceived:
                    pending.append(event.data)
                    self.conn.up += len(event.data)
                    if self.exchange is not None:
                        self.capture(self.exchange.request, self.exchange.request_body, event.data, reader)
                elif type(event) is RequestReceived:
                    self.on_request(event.head)
                elif event is PAUSED:
                    if reader.buffered:
                        self.pause_client(_PIPELINED)
                    break
                elif event is NEED_DATA:
                    break
                elif type(event) is MessageEnded:
                    self.request_complete = True
                    if self.exchange is not None:
                        self.exchange.request_ended = time.time()
                        if reader.trailers:  # the reader starts a new list for the next message
                            self.exchange.request_trailers = reader.trailers
                else:
                    raise AssertionError(event)
        except ProtocolError as exc:
            self.refuse(exc.reply_hint or 400, str(exc), Outcome.BAD_REQUEST)
        except GatewayError as exc:
            self.refuse_gateway(exc)
        if pending and self.upstream is not None:
            _write_all(self.upstream.transport, pending)

    def on_request(self, head: RequestHead) -> None:
        conn = self.conn
        conn.handshake_done()
        conn.requests += 1
        self.request = head
        self.unanswered = True
        user = self.authenticate(head)
        if head.method == b"CONNECT":
            self.start_tunnel(head, user)
            return
        if self.recorder is not None:
            self.exchange = Exchange(head, time.time(), self.recorder.max_body)
        self.close_after = not head.keep_alive
        self.request_complete = False
        key, outgoing = self.route(head, user)
        self.awaiting_response = True
        self.response_started = False
        self.responses.expect_response_to(head.method)
        self.conn.up += len(outgoing)
        if self.keep_upstream(key):
            self.to_upstream.append(outgoing)
            self.sent_at = time.monotonic()  # written as this pump ends
            return
        self.drop_upstream()
        self.pause_client(DIALING)
        self.run(self.open_upstream(key, outgoing), "dial")

    def route(self, head: RequestHead, user: str | None) -> tuple[UpstreamKey, bytes]:
        """Where this request goes and the head to send there (raises ProtocolError if malformed)."""
        authority, path = split_absolute(head.target)
        host, port = split_authority(authority, 80)
        return (host, port, user), request_for_origin(head, authority, path, self.close_after, self.via)

    def new_response_reader(self) -> HttpReader:
        limits = self.listener.limits
        return HttpReader(False, limits.max_header_bytes, limits.max_request_line, self.recorder is not None)

    def keep_upstream(self, key: UpstreamKey) -> bool:
        """Whether `self.upstream` can carry the next request (to `key`)."""
        upstream = self.upstream
        return upstream is not None and upstream.key == key and not upstream.transport.is_closing()

    def authenticate(self, head: RequestHead) -> str | None:
        """Who the request is from, as far as keeping an upstream goes (raises AuthFailed)."""
        listener = self.listener
        if not listener.auth_required and listener.services.auth.params is None:
            return None  # no credentials asked for, and no vendor parameters to read from them
        credentials = header_value(head.headers, b"proxy-authorization")
        if credentials is None and not self.listener.auth_required:
            if self.last_auth is not None:  # an earlier request's parameters do not carry over
                self.last_auth = self.conn.user = None
                self.conn.params = NO_PARAMS
            return None
        if credentials is None or credentials != self.last_auth:
            identity = self.listener.services.auth.identify_basic(credentials, self.listener.auth_required)
            self.last_auth = credentials
            self.conn.user = identity.presented
            self.conn.account = identity.account
            self.conn.params = identity.params
        if self.conn.params is not NO_PARAMS:  # other parameters, another vendor session: another upstream
            return self.conn.user
        return self.conn.account

    async def connect(self, key: UpstreamKey) -> HttpUpstream:
        host, port, _ = key
        _transport, upstream = await dial(self.conn, host, port, lambda: HttpUpstream(self, key))
        return upstream

    async def open_upstream(self, key: UpstreamKey, outgoing: bytes) -> None:
        try:
            upstream = await self.connect(key)
        except GatewayError as exc:
            self.refuse_gateway(exc)
            return
        if self.client_gone:
            upstream.transport.close()
            return
        self.upstream = upstream
        self.conn.upstream = upstream.transport
        upstream.transport.write(outgoing)
        self.sent_at = time.monotonic()
        self.resume_client(DIALING)
        self.pump_requests()
        if self.responses.buffered:
            self.pump_responses()

    def start_tunnel(self, head: RequestHead, user: str | None) -> None:
        host, port = split_authority(head.target, None)
        self.conn.protocol = "connect"
        self.switching = True  # bytes from now on wait in the reader for the tunnel
        self.tunnel_pending = True
        self.drop_upstream()
        self.run(self.open_tunnel(host, port), "connect")

    async def open_tunnel(self, host: str, port: int) -> None:
        try:
            upstream = await self.dial_tunnel(host, port)
        except GatewayError as exc:
            self.refuse_gateway(exc)
            return
        if upstream is None:
            return
        self.transport.write(_CONNECTED)
        self.answered(200)
        self.tunnel(
            upstream,
            host,
            port,
            self.requests.take_buffered(),
            client_eof=self.client_eof,
            client_paused=bool(self.paused),
        )

    def eof_received(self) -> bool:
        self.requests.receive_eof()
        self.client_eof = True
        if self.awaiting_response or self.paused & DIALING or self.tunnel_pending:
            return True  # finish the exchange in flight, then close
        if self.requests.buffered:
            self.pump_requests()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.drop_upstream()
        if self.unanswered:
            self.answered(None)
        if self.exchange is not None:
            self.record_exchange("client closed the connection mid-exchange")
        super().connection_lost(exc)

    def pause_writing(self) -> None:
        if self.upstream is not None:
            self.upstream.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.upstream is not None:
            self.upstream.transport.resume_reading()

    def pause_client(self, reason: int) -> None:
        if not self.paused:
            self.transport.pause_reading()
        self.paused |= reason

    def resume_client(self, reason: int) -> None:
        if self.paused & reason:
            self.paused &= ~reason
            if not self.paused:
                self.transport.resume_reading()

    # -- upstream side --

    def upstream_data(self, upstream: HttpUpstream, data: bytes) -> None:
        if upstream is not self.upstream:
            if upstream.transport is not None and self.upstream is None and self.paused & DIALING:
                self.responses.receive_data(data)  # spoke before the dial finished: kept for later
            return
        self.responses.receive_data(data)
        exchange = self.exchange
        if exchange is not None and exchange.response_started is None:
            exchange.response_started = time.time()
        try:
            self.pump_responses()
        except Exception as exc:  # the crash boundary for the upstream side
            self.crash(exc)

    def pump_responses(self) -> None:
        """Forward what the upstream sent; everything for the client goes out in one write."""
        reader = self.responses
        pending: list[bytes | memoryview] = []
        try:
            while True:
                event = reader.next_event()
                if type(event) is BodyReceived:
                    pending.append(event.data)
                    self.conn.down += len(event.data)
                    if self.exchange is not None:
                        self.capture(self.exchange.response, self.exchange.response_body, event.data, reader)
                elif type(event) is ResponseReceived:
                    pending.append(self.on_response(event.head))
                    if self.switching:
                        break
                elif type(event) is MessageEnded:
                    self.flush_to_client(pending)
                    if self.exchange is not None:
                        if reader.trailers:
                            self.exchange.response_trailers = reader.trailers
                        self.record_exchange()
                    self.response_complete()
                    return
                else:
                    break
        except ProtocolError as exc:
            self.flush_to_client(pending)
            self.upstream_failed(UpstreamFailed(f"bad response from upstream: {exc}"))
            return
        self.flush_to_client(pending)
        if self.switching and self.upgrading:
            self.become_tunnel()

    def flush_to_client(self, pending: list[bytes | memoryview]) -> None:
        _write_all(self.transport, pending)

    def on_response(self, head: ResponseHead) -> bytes:
        """The head to send the client (a 101 also marks the switch to a tunnel)."""
        if not self.awaiting_response:
            raise ProtocolError("response without a request")
        request = self.request
        assert request is not None
        if head.status == 101 and not request.upgrade:
            raise ProtocolError("101 to a request that asked for no upgrade")
        if head.status >= 200 or head.status == 101:
            self.response_started = True
            self.answered(head.status, time.monotonic() - self.sent_at)
            if not self.request_complete:
                # Answered before the request body ended (a 413, say): the rest of the body has
                # nowhere to go, so this connection carries no further request.
                self.close_after = True
            # A body delimited by the server's close can only reach the client the same way.
            self.close_after = self.close_after or head.framing is Framing.UNTIL_CLOSE
            self.upstream_reusable = head.keep_alive and request.version != "1.0"
        exchange = self.exchange
        if exchange is not None:
            if 100 <= head.status < 200 and head.status != 101:
                exchange.interim_received(head, time.time())
            else:
                exchange.response_received(head, time.time())
        close = self.close_after or self.client_eof
        rendered = self.render_response(head, close, request.version)
        self.conn.down += len(rendered)
        if head.status == 101:
            self.switching = self.upgrading = True
        return rendered

    def render_response(self, head: ResponseHead, close: bool, client_version: str) -> bytes:
        return response_for_client(head, close, client_version, self.via)

    def become_tunnel(self) -> None:
        upstream = self.upstream
        assert upstream is not None
        self.switching = True
        self.conn.protocol = "http-upgrade"
        exchange = self.exchange
        tap = None
        if exchange is not None:
            exchange.upgraded = True
            self.record_exchange()
            if self.recorder is not None and self.origin is not None and is_websocket(exchange):
                tap = WsTap(self.conn, self.recorder, self.origin, exchange)
        end = UpstreamEnd(self.conn) if tap is None else AnalyzedUpstreamEnd(self.conn, tap)
        end.transport = upstream.transport
        upstream.transport.set_protocol(end)
        self.upstream = None
        link(
            self.conn,
            self.transport,
            end,
            to_upstream=self.requests.take_buffered(),
            to_client=bytes(self.responses.take_buffered()),
            client_end=AnalyzedClientEnd(self.conn, tap) if tap is not None else None,
            spliceable=self.spliceable,
        )

    def response_complete(self) -> None:
        self.awaiting_response = False
        if self.close_after or self.client_eof:
            self.drop_upstream()
            self.transport.close()
            return
        if not self.upstream_reusable:
            self.drop_upstream()
        self.responses.start_next()
        self.requests.start_next()
        self.resume_client(_PIPELINED)
        self.pump_requests()

    def upstream_eof(self, upstream: HttpUpstream) -> None:
        if upstream is not self.upstream:
            return
        self.responses.receive_eof()
        self.pump_responses()

    def upstream_lost(self, upstream: HttpUpstream, exc: Exception | None) -> None:
        if upstream is not self.upstream:
            return
        self.upstream = None
        self.conn.upstream = None
        if self.awaiting_response:
            detail = f"upstream closed mid-exchange: {exc}" if exc else "upstream closed mid-exchange"
            self.upstream_failed(UpstreamFailed(detail))

    def upstream_failed(self, exc: GatewayError) -> None:
        self.awaiting_response = False
        self.drop_upstream()
        if self.response_started:
            self.record_exchange(exc.detail)
            self.conn.set_outcome(exc.outcome, exc.detail)
            self.transport.abort()  # the client must not take a truncated body as whole
        else:
            self.refuse_gateway(exc)  # recorded with the answer lanner gave

    def drop_upstream(self) -> None:
        upstream = self.upstream
        if upstream is not None:
            self.upstream = None
            self.conn.upstream = None
            upstream.transport.close()

    # -- recording --

    def capture(
        self,
        head: RequestHead | ResponseHead | None,
        capture: BodyCapture,
        data: bytes | memoryview,
        reader: HttpReader,
    ) -> None:
        if head is not None and head.framing is Framing.CHUNKED:
            capture.add_spans(data, reader.payload_spans)
        else:
            capture.add(data)

    def record_exchange(self, error: str | None = None) -> None:
        exchange = self.exchange
        if exchange is None or self.recorder is None:
            return
        self.exchange = None
        if exchange.response_ended is None and error is None:
            exchange.response_ended = time.time()
        exchange.error = error
        if self.origin is None or self.origin.user != self.conn.user:
            self.origin = self.make_origin()
        self.recorder.exchange(exchange, self.origin)

    def make_origin(self) -> Origin:
        conn = self.conn
        assert self.recorder is not None
        return Origin(self.recorder.uid(conn), self.listener.name, conn.client_text, conn.user)

    def answered(self, status: int | None, latency: float | None = None) -> None:
        """Count the answer a client got (None: none); `latency` for the upstream's answers."""
        self.unanswered = False
        self.listener.metrics.answered(status, latency)

    # -- answers of our own --

    def refuse_gateway(self, exc: GatewayError) -> None:
        extra = _PROXY_AUTHENTICATE if isinstance(exc, AuthFailed) else []
        if exc.proxy_status is not None:  # RFC 9209 section 2
            extra = [(b"Proxy-Status", b"lanner; error=" + exc.proxy_status.encode())]
        detail = "proxy authentication required" if isinstance(exc, AuthFailed) else exc.public or exc.detail
        self.refuse(exc.http_status, detail, exc.outcome, extra, log_detail=exc.detail)

    def refuse(
        self,
        status: int,
        detail: str,
        outcome: Outcome,
        extra: list[tuple[bytes, bytes]] | None = None,
        log_detail: str | None = None,
    ) -> None:
        self.conn.set_outcome(outcome, log_detail or detail)
        self.record_exchange(f"lanner answered {status}: {log_detail or detail}")
        self.switching = True
        self.drop_upstream()
        if not self.client_gone:  # else connection_lost counts an exchange in flight as unanswered
            self.answered(status)
            self.transport.write(error_response(status, detail, extra or []))
            self.transport.close()
