"""Listener runtime: binding, admitting clients under a cap, idle sweeping.

`Services` is what every listener of one config generation shares (rules,
credentials, intercept rules) together with what all generations share
(resolver, recorder, pools, connection ids). `ListenerRuntime` is one
listener as one generation configured it: its limits, routes and
certificates; a connection keeps the runtime that admitted it until it ends
(`lanner.reload` makes a new one per reload and never changes an old one).
`Acceptor` is one listening address across generations: its sockets, its
live connections, its refusal counter. Connections over the cap are accepted
and closed at once (the kernel backlog is the only queue), counted, and
reported in one log line per second rather than one per refusal.
"""

from __future__ import annotations

import asyncio
import ipaddress
import itertools
import logging
import secrets
import socket
import ssl
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from lanner.config.analysis import AnalysisConfig, Analyze
from lanner.config.model import Limits, ListenerConfig, RouteConfig, split_hostport
from lanner.config.pools import ReverseRoute
from lanner.control import metrics
from lanner.errors import Outcome
from lanner.net.conn import Conn
from lanner.net.resolver import Resolver
from lanner.route.auth import Authenticator
from lanner.route.names import NameRoutes
from lanner.route.reverse import ReverseRoutes
from lanner.route.rules import Router

if TYPE_CHECKING:
    from lanner.control.stream import StreamHub
    from lanner.record.recorder import Recorder
    from lanner.tls.policy import Interception
    from lanner.tls.sni_certs import SniCertificates
    from lanner.upstream.registry import Upstreams
    from lanner.upstream.vendors import Vendors

log = logging.getLogger("lanner")

ACCEPT_BACKLOG = 4096


@dataclass
class Services:
    router: Router
    resolver: Resolver
    auth: Authenticator
    log_connections: bool = True
    worker: int | None = None  # set when several processes share the listeners
    splice_after_bytes: int = 0  # see lanner.net.splice
    recorder: Recorder | None = None  # see lanner.record.recorder
    analysis: AnalysisConfig = field(default_factory=AnalysisConfig)  # see lanner.net.analyze_db
    interception: Interception | None = None  # see lanner.tls.policy; None: no intercept rules
    upstreams: Upstreams | None = None  # see lanner.upstream.registry; None: no pools
    vendors: Vendors | None = None  # see lanner.upstream.vendors; None: no providers
    events: StreamHub | None = None  # the admin API's live stream (connection opened/closed)
    ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    # Tells this process's connection numbers apart from other processes' and runs': a
    # connection's uid ("<tag>.<number>") is its correlation id in logs, flows and the admin API.
    tag: str = field(default_factory=lambda: secrets.token_hex(3))


def within(ip: str, networks: Sequence[ipaddress.IPv4Network | ipaddress.IPv6Network]) -> bool:
    """Whether the address `ip` is in any of `networks` (False for none)."""
    if not networks:
        return False
    address = ipaddress.ip_address(ip)
    return any(address in network for network in networks)


class Acceptor:
    """One listening address: its sockets and the connections they admitted, across config generations.

    The sockets are bound once (`listen`) and stay open until the address is given up
    (`close`), so a reload never refuses a connection: the kernel's backlog holds it. Each
    generation accepts through asyncio servers of its own on duplicates of the sockets
    (`serve`), so a connection's entry, and for a TLS listener its handshake, belong to the
    generation that accepted it.
    """

    def __init__(self, bind: str, reuse_port: bool) -> None:
        self.bind = bind
        self.sockets = listen(bind, reuse_port)
        self.servers: list[asyncio.Server] = []
        self.live: set[Conn] = set()
        self.refused = 0
        self._refused_reported = 0
        self._report: asyncio.TimerHandle | None = None
        self._next: ListenerRuntime | None = None  # the generation `serve` is starting
        self.closed = False
        self.failed: str | None = None  # why the last `serve` could not accept (e.g. out of descriptors)

    def addresses(self) -> list[tuple[str, int]]:
        return [] if self.closed else [sock.getsockname()[:2] for sock in self.sockets]

    def pause(self, runtime: ListenerRuntime) -> None:
        """Stop accepting for the running generation now; `serve(runtime, …)` accepts for the next."""
        self._next = runtime
        for server in self.servers:
            server.close()
        self.servers = []

    async def serve(self, runtime: ListenerRuntime, factory: Callable[[], asyncio.Protocol]) -> None:
        """Accept for `runtime` (after `pause(runtime)`), unless a later generation or a close came first."""
        loop = asyncio.get_running_loop()
        tls = runtime.socket_tls()
        timeout = runtime.limits.handshake_timeout if tls is not None else None
        servers: list[asyncio.Server] = []
        try:
            for sock in self.sockets if not self.closed else []:
                servers.append(
                    await loop.create_server(
                        factory,
                        sock=sock.dup(),
                        backlog=ACCEPT_BACKLOG,
                        ssl=tls,
                        ssl_handshake_timeout=timeout,
                        start_serving=False,
                    )
                )
        except OSError as exc:  # /ready turns false and says so; the kernel keeps queueing clients
            for server in servers:
                server.close()
            self.failed = exc.strerror or str(exc)
            log.error(
                "listener not accepting", extra={"fields": {"listener": runtime.name, "error": self.failed}}
            )
            return
        self.failed = None
        if self._next is not runtime or self.closed:
            for server in servers:
                server.close()
            return
        self.servers = servers
        for server in servers:
            await server.start_serving()

    def close(self) -> None:
        """Give the address up: no new connections; the open ones are left to finish."""
        self.closed = True
        for server in self.servers:
            server.close()
        self.servers = []
        for sock in self.sockets:
            sock.close()

    def sweep(self, now: float) -> None:
        """Enforce handshake and idle timeouts, each connection by its own generation's limits."""
        for conn in list(self.live):
            limits = conn.listener.limits
            conn.check_timeouts(now, limits.handshake_timeout, limits.idle_timeout)

    def abort_all(self, outcome: Outcome, detail: str) -> None:
        for conn in list(self.live):
            conn.abort(outcome, detail)

    def refuse(self, transport: asyncio.Transport, runtime: ListenerRuntime) -> None:
        self.refused += 1
        transport.abort()
        if self._report is None:
            self._report = asyncio.get_running_loop().call_later(1.0, self._report_refusals, runtime)

    def _report_refusals(self, runtime: ListenerRuntime) -> None:
        self._report = None
        count = self.refused - self._refused_reported
        self._refused_reported = self.refused
        log.warning(
            "listener at capacity: refused connections",
            extra={
                "fields": {
                    "listener": runtime.name,
                    "cap": runtime.limits.max_connections,
                    "refused": count,
                    "refused_total": self.refused,
                }
            },
        )


def listen(bind: str, reuse_port: bool) -> list[socket.socket]:
    """Bound, listening, non-blocking sockets for `bind` (OSError naming the address if it is taken).

    Done synchronously, as asyncio's `create_server` would, so that a reload knows at once
    whether its new addresses can be had. `bind` is a config address (an IP literal in practice).
    """
    host, port = split_hostport(bind)
    family = socket.AF_INET6 if ":" in host else socket.AF_UNSPEC
    infos = socket.getaddrinfo(host or None, port, family, socket.SOCK_STREAM, 0, socket.AI_PASSIVE)
    sockets: list[socket.socket] = []
    try:
        for af, kind, proto, _, address in dict.fromkeys(infos):
            sock = socket.socket(af, kind, proto)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if reuse_port:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            if af == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            try:
                sock.bind(address)
            except OSError as exc:
                raise OSError(exc.errno, f"{bind}: {exc.strerror}") from exc
            sock.listen(ACCEPT_BACKLOG)
            sock.setblocking(False)
    except OSError:
        for sock in sockets:
            sock.close()
        raise
    return sockets


class ListenerRuntime:
    def __init__(
        self,
        config: ListenerConfig,
        limits: Limits,
        services: Services,
        analyze: Analyze = "none",
        *,
        acceptor: Acceptor,
    ) -> None:
        self.config = config
        # The recorder this listener's analyzed traffic goes to (None: not analyzed).
        self.recorder = services.recorder if analyze != "none" else None
        self.analyze = analyze
        self.name = config.name
        self.metrics = metrics.for_listener(config.name)  # label children resolved once (control/metrics.py)
        self.limits = limits
        self.services = services
        self.acceptor = acceptor  # shared with the generations before and after on the same address
        self.auth_required = services.auth.required if config.auth is None else config.auth
        self.routes = NameRoutes([r for r in config.routes if isinstance(r, RouteConfig)])  # router, tls
        reverse = [route for route in config.routes if isinstance(route, ReverseRoute)]
        self.reverse_routes = ReverseRoutes(reverse) if reverse else None
        self.trusted_proxies = tuple(config.trusted_proxies)
        self.certificates: SniCertificates | None = None  # tls listeners

    def socket_tls(self) -> ssl.SSLContext | None:
        """The TLS the listening socket itself does (None: none, or it starts after a PROXY header)."""
        if self.certificates is None or self.config.proxy_protocol is not None:
            return None  # the PROXY header comes before the TLS handshake: see entry/proxy_header.py
        return self.certificates.listening

    def is_trusted_proxy(self, ip: str) -> bool:
        """Whether forwarding headers from this client address are kept (reverse listeners)."""
        return within(ip, self.trusted_proxies)

    @property
    def live(self) -> set[Conn]:
        """The open connections on this listener's address, of this generation and earlier ones."""
        return self.acceptor.live

    @property
    def refused(self) -> int:
        return self.acceptor.refused

    def addresses(self) -> list[tuple[str, int]]:
        return self.acceptor.addresses()

    def is_serving(self) -> bool:
        """Whether the address takes connections (during a reload's switch-over, the kernel queues them)."""
        return not self.acceptor.closed and self.acceptor.failed is None

    def admit(self, transport: asyncio.Transport) -> Conn | None:
        if len(self.acceptor.live) >= self.limits.max_connections:
            self.acceptor.refuse(transport, self)
            return None
        conn = Conn(next(self.services.ids), self, transport)
        self.acceptor.live.add(conn)
        if self.services.events is not None:
            self.services.events.connection_opened(conn)
        return conn

    def release(self, conn: Conn) -> None:
        self.acceptor.live.discard(conn)
        if self.services.events is not None:
            self.services.events.connection_closed(conn)
