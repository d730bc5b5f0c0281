"""What every entry protocol shares: admission, the crash boundary, handover.

An entry owns a client connection from accept until it becomes a tunnel
(`relay.link` swaps the transport's protocol) or closes. An unexpected
exception in an entry closes that one connection, is logged once with the
connection id, and touches nothing else.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any

from lanner.errors import GatewayError, Outcome
from lanner.net.analyze_db import DATABASES, analyzed_ends, protocol_for, tap_for
from lanner.net.conn import Conn
from lanner.net.dial import dial
from lanner.net.listener import ListenerRuntime
from lanner.net.relay import UpstreamEnd, link
from lanner.net.tasks import spawn

log = logging.getLogger("lanner")


class EntryProtocol(asyncio.Protocol):
    """Base for client-side protocols; subclasses implement `handle`."""

    conn: Conn
    transport: asyncio.Transport

    def __init__(self, listener: ListenerRuntime) -> None:
        self.listener = listener
        self.admitted = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        conn = self.listener.admit(self.transport)
        if conn is None:
            self.listener.metrics.refused()  # at capacity: admit closed it
            return
        self.conn = conn
        self.admitted = True
        self.started()

    def take_over(self, previous: EntryProtocol) -> None:
        """Continue a connection another entry admitted (after protocol sniffing)."""
        self.transport = previous.transport
        self.conn = previous.conn
        self.admitted = True
        self.transport.set_protocol(self)
        self.started()

    def started(self) -> None:
        """Called once the connection is admitted."""

    def data_received(self, data: bytes) -> None:
        try:
            self.handle(data)
        except Exception as exc:  # the per-connection crash boundary
            self.crash(exc)

    def handle(self, data: bytes) -> None:
        raise NotImplementedError

    def eof_received(self) -> bool | None:
        self.conn.set_outcome(Outcome.BAD_REQUEST, "client closed during the handshake")
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        if self.admitted:
            if exc is not None:
                self.conn.set_outcome(Outcome.RESET, f"client connection lost: {exc}")
            self.conn.ended()

    def crash(self, exc: BaseException) -> None:
        log.error(
            "connection failed", exc_info=exc, extra={"fields": {"id": self.conn.id, "error": repr(exc)}}
        )
        self.conn.abort(Outcome.ERROR, f"internal error: {exc!r}")

    def run(self, coro: Coroutine[Any, Any, None], what: str) -> None:
        """Run a step of this connection as a named task inside the crash boundary."""
        spawn(self._guarded(coro), name=f"conn-{self.conn.id}-{what}")

    async def _guarded(self, coro: Coroutine[Any, Any, None]) -> None:
        try:
            await coro
        except GatewayError as exc:
            self.conn.set_outcome(exc.outcome, exc.detail)
            self.transport.close()
        except Exception as exc:
            self.crash(exc)

    async def dial_tunnel(
        self, host: str, port: int, end: Callable[[], UpstreamEnd] | None = None
    ) -> UpstreamEnd | None:
        """Open the upstream end of a tunnel; None if the client left meanwhile.

        Raises GatewayError (the entry answers it in its own protocol).
        """
        conn = self.conn
        transport, upstream = await dial(conn, host, port, end or (lambda: UpstreamEnd(conn)))
        if self.client_gone:
            transport.close()
            return None
        conn.upstream = transport
        return upstream

    @property
    def client_gone(self) -> bool:
        return self.transport.is_closing()

    def tunnel(
        self,
        upstream: UpstreamEnd,
        host: str,
        port: int,
        early: bytes,
        client_eof: bool = False,
        client_paused: bool = False,
    ) -> None:
        """The client has been told it is connected: relay, or intercept if a rule says so."""
        interception = self.listener.services.interception
        rule = None
        # A tunnel to a database port is analyzed as that database (it may start TLS of its own, such
        # as PostgreSQL's SSLRequest, which no intercept rule can open up).
        if interception is not None and protocol_for(self.listener, port, tunnel=True) not in DATABASES:
            rule = interception.rule_for(self.listener.name, self.conn.account, host, port)
        if rule is None:
            conn = self.conn
            tap = tap_for(self.listener, conn, host, port, tunnel=True)
            link(
                conn, self.transport, upstream, early, client_eof=client_eof, client_paused=client_paused,
                client_end=analyzed_ends(conn, tap, upstream) if tap is not None else None,
            )  # fmt: skip
            return
        from lanner.entry.intercept import TunnelOpener  # the intercept entry builds on this module

        context = interception.upstream_context(rule)  # type: ignore[union-attr]
        TunnelOpener(self, upstream, host, port, context).start(early, client_eof)
