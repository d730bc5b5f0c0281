"""Listener runtime: binding, admitting clients under a cap, idle sweeping.

`Services` is what every listener shares (rules, resolver, credentials,
connection ids). `ListenerRuntime` is one bound listener: its limits, its
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
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from lanner.config.analysis import AnalysisConfig, Analyze
from lanner.config.model import Limits, ListenerConfig, RouteConfig, split_hostport
from lanner.config.pools import ReverseRoute
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


class ListenerRuntime:
    def __init__(
        self, config: ListenerConfig, limits: Limits, services: Services, analyze: Analyze = "none"
    ) -> None:
        self.config = config
        # The recorder this listener's analyzed traffic goes to (None: not analyzed).
        self.recorder = services.recorder if analyze != "none" else None
        self.analyze = analyze
        self.name = config.name
        self.limits = limits
        self.services = services
        self.live: set[Conn] = set()
        self.refused = 0
        self._refused_reported = 0
        self._report: asyncio.TimerHandle | None = None
        self.server: asyncio.Server | None = None
        self.auth_required = services.auth.required if config.auth is None else config.auth
        self.routes = NameRoutes([r for r in config.routes if isinstance(r, RouteConfig)])  # router, tls
        reverse = [route for route in config.routes if isinstance(route, ReverseRoute)]
        self.reverse_routes = ReverseRoutes(reverse) if reverse else None
        self.trusted_proxies = tuple(config.trusted_proxies)
        self.certificates: SniCertificates | None = None  # tls listeners

    async def bind(self, factory: Callable[[], asyncio.Protocol], reuse_port: bool) -> None:
        """Listen; with certificates, connections reach the entry once their TLS handshake is done."""
        host, port = split_hostport(self.config.bind)
        tls = self.certificates.listening if self.certificates is not None else None
        if self.config.proxy_protocol is not None:
            tls = None  # the PROXY header comes before the TLS handshake: see entry/proxy_header.py
        self.server = await asyncio.get_running_loop().create_server(
            factory,
            host,
            port,
            backlog=ACCEPT_BACKLOG,
            reuse_port=reuse_port or None,
            family=socket.AF_INET6 if ":" in host else socket.AF_UNSPEC,
            ssl=tls,
            ssl_handshake_timeout=self.limits.handshake_timeout if tls is not None else None,
        )

    def is_trusted_proxy(self, ip: str) -> bool:
        """Whether forwarding headers from this client address are kept (reverse listeners)."""
        return within(ip, self.trusted_proxies)

    def addresses(self) -> list[tuple[str, int]]:
        if self.server is None:
            return []
        return [sock.getsockname()[:2] for sock in self.server.sockets]

    def admit(self, transport: asyncio.Transport) -> Conn | None:
        if len(self.live) >= self.limits.max_connections:
            self.refused += 1
            transport.abort()
            if self._report is None:
                self._report = asyncio.get_running_loop().call_later(1.0, self._report_refusals)
            return None
        conn = Conn(next(self.services.ids), self, transport)
        self.live.add(conn)
        if self.services.events is not None:
            self.services.events.connection_opened(conn)
        return conn

    def release(self, conn: Conn) -> None:
        self.live.discard(conn)
        if self.services.events is not None:
            self.services.events.connection_closed(conn)

    def sweep(self, now: float) -> None:
        """Enforce handshake and idle timeouts (see `Gateway._sweep` for the cadence)."""
        handshake, idle = self.limits.handshake_timeout, self.limits.idle_timeout
        for conn in list(self.live):
            conn.check_timeouts(now, handshake, idle)

    def _report_refusals(self) -> None:
        self._report = None
        count = self.refused - self._refused_reported
        self._refused_reported = self.refused
        log.warning(
            "listener at capacity: refused connections",
            extra={
                "fields": {
                    "listener": self.name,
                    "cap": self.limits.max_connections,
                    "refused": count,
                    "refused_total": self.refused,
                }
            },
        )
