"""The reverse listener's entry: requests routed to backend pools, one backend chosen per request.

Built on the forward proxy's HTTP session (streaming bodies both ways,
pipelining, upgrades, recording) with these differences: the route comes
from the request's host, path, method and headers; the backend from the
route's pool; connections to backends are kept alive in the pool and shared
by every client, not by one; the backend learns the client through
forwarding headers (and PROXY headers where the pool asks); failures count
toward outlier ejection, and idempotent requests that failed before the
backend answered are retried on another backend within the retry budget.

Answers of lanner's own have a short generic body; the reason is in the
connection log line and the flow record: 404 no route, 502 the backend
failed, 503 no backend up or a breaker open, 504 the backend timed out.
"""

from __future__ import annotations

import asyncio
import time
from http import HTTPStatus

from lanner.entry.http_forward import split_absolute
from lanner.entry.http_proxy import DIALING, HttpProxySession, HttpUpstream, UpstreamKey
from lanner.entry.http_reverse import Forwarding, request_for_backend, response_with_rules
from lanner.errors import (
    Denied,
    GatewayError,
    NoBackend,
    NotRouted,
    Outcome,
    Overloaded,
    ResponseTimeout,
    UpstreamFailed,
)
from lanner.net.dial import client_address
from lanner.net.listener import ListenerRuntime
from lanner.record.convert import Origin
from lanner.route.reverse import CompiledRoute, host_of
from lanner.route.rules import Verdict
from lanner.upstream.backends import Backend, Pool
from lanner.upstream.conns import BackendConn, ClientKey, open_conn, release, take_idle
from lanner.wire.errors import ProtocolError
from lanner.wire.http1 import Framing, RequestHead, ResponseHead, header_value

IDEMPOTENT = frozenset({b"GET", b"HEAD", b"OPTIONS", b"TRACE", b"PUT", b"DELETE"})


class ReverseSession(HttpProxySession):
    def __init__(self, listener: ListenerRuntime) -> None:
        super().__init__(listener)
        upstreams = listener.services.upstreams
        assert upstreams is not None and listener.reverse_routes is not None
        self.upstreams = upstreams
        self.routes = listener.reverse_routes
        self.scheme = "https" if listener.certificates is not None else "http"
        self.spliceable = listener.certificates is None
        self.forwarding: Forwarding | None = None
        self.route_used: CompiledRoute | None = None
        self.pool: Pool | None = None
        self.backend: Backend | None = None
        self.tried: list[Backend] = []
        self.in_flight = False  # counted in the backend's and the pool's active requests
        self.retrying = False  # counted in the pool's retries too
        self.outgoing = b""  # the head sent to the backend, kept for a retry
        self.variables: dict[str, bytes] | None = None
        self.deadline = 0.0
        self.last_read = 0.0  # loop time of the backend's last bytes
        self.timer: asyncio.TimerHandle | None = None
        self.loop = asyncio.get_running_loop()
        self.rules_apply = listener.services.router.has_rules

    def started(self) -> None:
        super().started()
        client = self.conn.client
        ip = str(client[0]) if client else "0.0.0.0"
        trusted = self.listener.is_trusted_proxy(ip)
        config = self.listener.config
        self.forwarding = Forwarding.for_client(ip, self.scheme, trusted, config.request_id_header)

    def handle(self, data: bytes) -> None:
        if self.conn.requests == 0 and not self.requests.buffered and not _starts_http(data[0]):
            detail = f"not an HTTP request (first byte {data[0]:#04x})"
            self.refuse(400, "not an HTTP request", Outcome.BAD_REQUEST, log_detail=detail)
            return
        super().handle(data)

    def authenticate(self, head: RequestHead) -> str | None:
        return None

    def start_tunnel(self, head: RequestHead, user: str | None) -> None:
        raise ProtocolError("CONNECT is not served here: this is a reverse proxy", 405)

    # -- choosing the route and the backend --

    def route(self, head: RequestHead, user: str | None) -> tuple[UpstreamKey, bytes]:
        target = head.target
        host_header = header_value(head.headers, b"host")
        new_host = None
        if not target.startswith(b"/") and not (target == b"*" and head.method == b"OPTIONS"):
            # Absolute-form: its authority replaces any Host header (RFC 9112 section 3.2.2).
            new_host, target = split_absolute(target)
            host_header = new_host
        host = host_of(host_header)
        if self.rules_apply:
            self.check_rules(host)
        route = self.routes.choose(host, target, head.method, head.headers)
        if route is None:
            raise NotRouted(f"no route for {host or 'no host'} {target[:200].decode('latin-1')}")
        pool = self.upstreams.pools.get(route.pool)
        if pool is None:  # removed by a reload while this connection kept the routes it started with
            raise NoBackend(f"pool {route.pool} no longer exists")
        self.route_used, self.pool, self.tried = route, pool, []
        backend = self.choose_backend(pool, head)
        forwarding = self.forwarding
        assert forwarding is not None
        variables = None
        if route.request_rules is not None or route.response_rules is not None:
            variables = self.variables = {
                "remote_addr": forwarding.client_ip,
                "scheme": forwarding.scheme,
                "host": host.encode(),
                "upstream_addr": backend.key.encode(),
            }
        outgoing, request_id = request_for_backend(
            head, route.rewrite(target), host_header, forwarding, route.request_rules, variables, new_host
        )
        if variables is not None:
            variables["request_id"] = request_id
        self.outgoing = outgoing
        self.begin(backend)
        return (backend.host, backend.port, None), outgoing

    def check_rules(self, host: str) -> None:
        """Allow/deny rules see the host the client asked for, this listener's port and the client."""
        router = self.listener.services.router
        port = self.transport.get_extra_info("sockname")[1]
        verdict = router.check(self.listener.name, None, host, port, None, client_address(self.conn))
        if verdict is Verdict.DENY:
            raise Denied(f"a rule denies {host or 'no host'} to {self.conn.client_text}")

    def choose_backend(self, pool: Pool, head: RequestHead) -> Backend:
        backend = pool.choose(time.monotonic(), self.hash_key(pool, head), self.tried)
        if backend is None:
            if pool.saturated:
                limit = pool.config.breaker.max_requests
                raise Overloaded(f"pool {pool.name}: every backend up has {limit} requests in flight")
            raise NoBackend(f"pool {pool.name}: no backend is up")
        return backend

    def hash_key(self, pool: Pool, head: RequestHead) -> bytes | None:
        config = pool.config
        if config.strategy != "hash":
            return None
        if config.hash_on == "client":
            return self.forwarding.client_ip  # type: ignore[union-attr]
        assert config.hash_name is not None
        if config.hash_on == "header":
            return header_value(head.headers, config.hash_name.lower().encode())
        return _cookie(head, config.hash_name.encode())

    @property
    def client_key(self) -> ClientKey:
        pool, client = self.pool, self.conn.client
        if pool is None or pool.config.send_proxy is None or not client:
            return None
        return (str(client[0]), int(client[1]))

    # -- the backend connection --

    def keep_upstream(self, key: UpstreamKey) -> bool:
        assert self.backend is not None
        conn = take_idle(self.backend, self, self.client_key)
        if conn is None:
            return False
        self.upstream = conn
        self.conn.upstream = conn.transport
        self.arm_timer()
        return True

    async def connect(self, key: UpstreamKey) -> HttpUpstream:
        while True:
            backend = self.backend
            assert backend is not None and self.pool is not None
            try:
                conn = await open_conn(self, key, backend, self.client_key)
            except Overloaded:
                raise
            except GatewayError as exc:
                self.pool.gateway_failed(backend, time.monotonic(), exc.detail)
                if not self.retry(exc, before_sending=True):
                    raise
                continue
            self.arm_timer()
            return conn

    def retry(self, exc: GatewayError, before_sending: bool) -> bool:
        """Move the request to another backend if it may be tried again; True if it was."""
        request, pool, backend = self.request, self.pool, self.backend
        assert request is not None and pool is not None and backend is not None
        if not self.in_flight or self.client_gone:
            return False  # already answered, or nobody is waiting
        if request.method not in IDEMPOTENT or len(self.tried) >= pool.config.retries.attempts:
            return False
        if not before_sending and request.framing is not Framing.NONE:
            return False  # its body has gone to the failed backend
        if not pool.may_retry():
            return False
        self.tried.append(backend)
        nxt = pool.choose(time.monotonic(), self.hash_key(pool, request), self.tried)
        if nxt is None:
            return False
        self.conn.note("retried", f"{backend.key}: {exc.detail}")
        self.finish()
        self.begin(nxt, retry=True)
        return True

    def upstream_failed(self, exc: GatewayError) -> None:
        backend, pool = self.backend, self.pool
        if backend is not None and pool is not None and self.in_flight and not self.response_started:
            pool.gateway_failed(backend, time.monotonic(), exc.detail)
            if not isinstance(exc, ResponseTimeout) and not self.responses.buffered:
                if self.retry(exc, before_sending=False):
                    self.resend()
                    return
        self.finish()
        super().upstream_failed(exc)

    def resend(self) -> None:
        """The request again, to the backend `retry` chose, on a connection of its own."""
        request, backend = self.request, self.backend
        assert request is not None and backend is not None
        self.drop_upstream()
        self.responses = self.new_response_reader()  # nothing the failed connection sent may remain
        self.responses.expect_response_to(request.method)
        self.awaiting_response = True
        self.pause_client(DIALING)  # the client waits while the request is sent again
        self.run(self.open_upstream((backend.host, backend.port, None), self.outgoing), "retry")

    def upstream_data(self, upstream: HttpUpstream, data: bytes) -> None:
        self.last_read = self.loop.time()  # for the read timeout
        super().upstream_data(upstream, data)

    # -- accounting --

    def begin(self, backend: Backend, retry: bool = False) -> None:
        pool = backend.pool
        self.backend = backend
        self.conn.dest = backend.key
        backend.active += 1
        backend.requests += 1
        pool.active += 1
        if retry:
            pool.retries += 1
        self.in_flight, self.retrying = True, retry
        self.deadline = float("inf")  # set once a connection carries the request (dialing has its own)

    def finish(self) -> None:
        if not self.in_flight:
            return
        backend = self.backend
        assert backend is not None
        backend.active -= 1
        backend.pool.active -= 1
        if self.retrying:
            backend.pool.retries -= 1
        self.in_flight = self.retrying = False

    def render_response(self, head: ResponseHead, close: bool, client_version: str) -> bytes:
        backend = self.backend
        if backend is not None and head.status >= 200:
            backend.pool.answered(backend, head.status)
            self.ensure_timer(self.last_read + backend.pool.config.read_timeout)
        route = self.route_used
        rules = route.response_rules if route is not None else None
        return response_with_rules(head, close, client_version, rules, self.variables or {})

    def response_complete(self) -> None:
        self.finish()
        upstream = self.upstream
        if not self.request_complete:
            self.drop_upstream()  # the backend still expects the rest of the body (see on_response)
        elif self.responses.buffered:
            self.drop_upstream()  # the backend sent more than the response: never reuse it
            self.responses = self.new_response_reader()
        elif isinstance(upstream, BackendConn) and self.upstream_reusable:
            self.upstream = None
            self.conn.upstream = None
            release(upstream)
        super().response_complete()

    def become_tunnel(self) -> None:
        self.finish()  # an upgraded connection is no longer a request in flight
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        upstream = self.upstream
        if isinstance(upstream, BackendConn):
            upstream.leave_pool()  # the relay owns it now: it no longer counts toward max_connections
        super().become_tunnel()

    def connection_lost(self, exc: Exception | None) -> None:
        self.finish()
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        super().connection_lost(exc)

    # -- timeouts: one lazily re-armed timer per connection, not one per request --

    def arm_timer(self) -> None:
        """A connection now carries the request: the response head is due within response_timeout."""
        pool = self.pool
        assert pool is not None
        self.deadline = self.loop.time() + pool.config.response_timeout
        self.ensure_timer(self.deadline)

    def ensure_timer(self, when: float) -> None:
        """The timer fires no later than `when` (moved earlier if needed, never later)."""
        timer = self.timer
        if timer is not None:
            if timer.when() <= when:
                return
            timer.cancel()
        self.timer = self.loop.call_at(when, self.check_timer)

    def check_timer(self) -> None:
        self.timer = None
        pool = self.pool
        if not self.in_flight or pool is None or self.client_gone:
            return
        now = self.loop.time()
        if not self.response_started:
            if self.upstream is None:
                return  # dialing: the connect timeout bounds it; arm_timer follows
            if now >= self.deadline:
                limit = pool.config.response_timeout
                self.upstream_failed(
                    ResponseTimeout(f"backend {self.conn.dest} sent no response in {limit:g}s")
                )
                return
            self.ensure_timer(self.deadline)
            return
        limit = pool.config.read_timeout
        upstream = self.upstream
        if upstream is not None and not upstream.transport.is_reading():
            self.last_read = now  # paused because the client reads slowly: not the backend's fault
        elif now - self.last_read >= limit:
            self.upstream_failed(UpstreamFailed(f"backend {self.conn.dest} sent nothing for {limit:g}s"))
            return
        self.ensure_timer(self.last_read + limit)

    # -- answers of our own: generic bodies, the detail only in the log and the record --

    def refuse_gateway(self, exc: GatewayError) -> None:
        self.finish()
        phrase = HTTPStatus(exc.http_status).phrase.lower()
        self.refuse(exc.http_status, phrase, exc.outcome, log_detail=exc.detail)

    def answered(self, status: int | None, latency: float | None = None) -> None:
        super().answered(status, latency)
        upstream = self.upstream
        if latency is not None and isinstance(upstream, BackendConn):
            upstream.backend.observe_latency(latency)

    def make_origin(self) -> Origin:
        conn = self.conn
        assert self.recorder is not None
        return Origin(self.recorder.uid(conn), self.listener.name, conn.client_text, None, self.scheme)


def _starts_http(first: int) -> bool:
    """A request line starts with a method (letters) or, tolerated, an empty line (RFC 9112 2.2)."""
    return 0x41 <= first <= 0x5A or 0x61 <= first <= 0x7A or first in (0x0D, 0x0A)


def _cookie(head: RequestHead, name: bytes) -> bytes | None:
    for header, value in head.headers:
        if header.lower() != b"cookie":
            continue
        for pair in value.split(b";"):
            key, _, cookie = pair.strip().partition(b"=")
            if key == name:
                return cookie
    return None
