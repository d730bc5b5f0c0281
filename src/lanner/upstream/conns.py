"""Connections to backends: opening them (PROXY header, TLS), keeping them alive, bounding them.

A request takes a kept-alive connection of its backend when one is idle
(`take_idle`), else opens one (`open_conn`). Past the backend's
`max_connections`, a request waits for one to free up, at most
`max_pending` of them and for at most the pool's connect timeout; past that
it is refused (503) rather than queued without bound. A finished exchange
gives its connection back (`release`): kept while the backend takes
requests and fewer than `max_idle` are idle, closed otherwise. An idle
connection that the backend closes, or that says anything, is dropped; one
idle longer than `idle_timeout` is closed by `sweep_idle`.

A pool that sends PROXY headers keeps each connection for the client it
was opened for: the header names that client.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from lanner.config.pools import PoolConfig
from lanner.entry.http_proxy import HttpProxySession, HttpUpstream, UpstreamKey
from lanner.errors import Overloaded
from lanner.net.dial import map_dial_errors
from lanner.net.tls import start_client_tls
from lanner.tls.policy import shared_upstream_context
from lanner.upstream.backends import Backend
from lanner.wire.proxy_protocol import encode_local, encode_v1, encode_v2

ClientKey = tuple[str, int] | None  # the client a PROXY-header connection is kept for


class BackendConn(HttpUpstream):
    __slots__ = ("backend", "client_key", "idle_since")

    def __init__(
        self, session: HttpProxySession, key: UpstreamKey, backend: Backend, client: ClientKey
    ) -> None:
        super().__init__(session, key)
        self.backend = backend
        self.client_key = client
        self.idle_since = 0.0

    def leave_pool(self) -> None:
        """An upgraded connection becomes a tunnel: its slot is given back now."""
        self.backend.connections -= 1
        _wake(self.backend, None)

    def connection_lost(self, exc: Exception | None) -> None:
        backend = self.backend
        backend.connections -= 1
        if self.session is _IDLE:
            try:
                backend.idle.remove(self)
            except ValueError:
                pass
        else:
            super().connection_lost(exc)
        _wake(backend, None)


class _IdleOwner:
    """Stands in for a session while a connection is idle: anything it hears ends it."""

    def upstream_data(self, upstream: HttpUpstream, data: bytes) -> None:
        upstream.transport.close()  # a backend that talks unasked cannot be reused safely

    def upstream_eof(self, upstream: HttpUpstream) -> None:
        pass  # eof_received returns False: the transport closes, connection_lost removes it

    def upstream_lost(self, upstream: HttpUpstream, exc: Exception | None) -> None:
        pass

    def pause_client(self, reason: int) -> None:
        pass

    def resume_client(self, reason: int) -> None:
        pass


_IDLE: Any = _IdleOwner()


def take_idle(backend: Backend, session: HttpProxySession, client: ClientKey) -> BackendConn | None:
    idle = backend.idle
    if not idle:
        return None
    if client is None:
        while idle:
            conn = idle.pop()
            if not conn.transport.is_closing():
                conn.session = session
                return conn
        return None
    for conn in reversed(idle):
        if conn.client_key == client and not conn.transport.is_closing():
            idle.remove(conn)
            conn.session = session
            return conn
    return None


def release(conn: BackendConn) -> None:
    """A finished exchange gives its connection back."""
    backend = conn.backend
    transport = conn.transport
    if transport.is_closing():
        return
    if backend.draining or not backend.healthy or not transport.is_reading():
        transport.close()
        return
    conn.session = _IDLE
    if _wake(backend, conn):
        return
    if len(backend.idle) >= backend.pool.config.max_idle:
        transport.close()
        return
    conn.idle_since = time.monotonic()
    backend.idle.append(conn)


def _wake(backend: Backend, conn: BackendConn | None) -> bool:
    """Hand a freed connection (or, with None, a free slot) to the first request waiting for it.

    A connection that carries a PROXY header goes only to a request of the client it names.
    """
    for waiter, client in backend.waiters:
        if waiter.done() or (conn is not None and client != conn.client_key):
            continue
        backend.waiters.remove((waiter, client))
        waiter.set_result(conn)
        return True
    return False


async def open_conn(
    session: HttpProxySession, key: UpstreamKey, backend: Backend, client: ClientKey
) -> BackendConn:
    """A connection for one request: handed over by a finishing request, or newly opened."""
    config = backend.pool.config
    while backend.connections >= config.breaker.max_connections:
        if backend.idle:  # kept for other clients (PROXY headers): the oldest makes room
            backend.idle.popleft().transport.close()
        if len(backend.waiters) >= config.breaker.max_pending:
            raise Overloaded(f"backend {backend.key}: {len(backend.waiters)} requests already wait")
        waiter: asyncio.Future[BackendConn | None] = asyncio.get_running_loop().create_future()
        entry = (waiter, client)
        backend.waiters.append(entry)
        try:
            async with asyncio.timeout(config.connect_timeout):
                handed = await waiter
        except TimeoutError:
            late = waiter.result() if waiter.done() and not waiter.cancelled() else None
            if late is not None:
                release(late)  # handed over just as the time ran out: give it back
            raise Overloaded(f"backend {backend.key}: no connection free in time") from None
        finally:
            if entry in backend.waiters:
                backend.waiters.remove(entry)
            if not waiter.done():
                waiter.cancel()
        if handed is not None:
            if handed.transport.is_closing():
                continue
            handed.session = session
            return handed
    backend.connections += 1  # the slot is taken now; connection_lost gives it back
    try:
        return await _connect(session, key, backend, client, config)
    except BaseException:
        backend.connections -= 1
        _wake(backend, None)
        raise


async def _connect(
    session: HttpProxySession, key: UpstreamKey, backend: Backend, client: ClientKey, config: PoolConfig
) -> BackendConn:
    loop = asyncio.get_running_loop()
    resolver = session.listener.services.resolver
    where = backend.key
    started = time.monotonic()
    with map_dial_errors(backend.host, backend.port):
        async with asyncio.timeout(config.connect_timeout):
            address = (await resolver.resolve(backend.host))[0]
            transport, conn = await loop.create_connection(
                lambda: BackendConn(session, key, backend, client), address, backend.port
            )
    try:
        if config.send_proxy is not None:
            transport.write(proxy_header(config.send_proxy, session, transport))
        if config.tls:
            context = shared_upstream_context(config.verify, config.ca_file, (b"http/1.1",))
            conn.transport = await start_client_tls(
                transport, conn, context, backend.host, config.connect_timeout, where
            )
    except BaseException:
        transport.abort()
        raise
    session.listener.metrics.connected(time.monotonic() - started)
    return conn


def proxy_header(version: str, session: HttpProxySession, transport: asyncio.BaseTransport) -> bytes:
    """Names the client (as lanner knows it, PROXY protocol included) and the address it reached."""
    client = session.conn.client
    own = session.transport.get_extra_info("sockname")
    if not client or not own or (":" in client[0]) != (":" in own[0]):
        return encode_local(version)
    source, destination = (client[0], client[1]), (own[0], own[1])
    return encode_v2(source, destination) if version == "v2" else encode_v1(source, destination)


def sweep_idle(backends: list[Backend], now: float) -> None:
    """Close connections idle past their pool's idle timeout (oldest are first in each list)."""
    for backend in backends:
        limit = backend.pool.config.idle_timeout
        idle = backend.idle
        while idle and now - idle[0].idle_since >= limit:
            idle.popleft().transport.close()
