"""Moving bytes between a client and an upstream once both are connected.

Two `asyncio.Protocol` ends, one per transport, each writing what it reads
into the other's transport. Per chunk there is one write and one counter
update, nothing else. Flow control: when a transport's write buffer passes its
high-water mark, the *other* side stops reading until it drains. Half-close:
an EOF from one side is passed on with `write_eof` while the other keeps
flowing; the tunnel ends when both sides have sent EOF or either is lost.
"""

from __future__ import annotations

import asyncio
from typing import Any

from lanner.errors import Outcome
from lanner.net import splice
from lanner.net.conn import Conn
from lanner.wire import tls_hello

WRITE_HIGH_WATER = 1024 * 1024
SPLICE_DRAIN_CHECKS = 50


class _End(asyncio.Protocol):
    # `tap` is set by the analyzing subclasses only (net/analyze.py); it lives here so that an end
    # can change class between plain and analyzing (same layout) when analysis starts or stops.
    __slots__ = ("conn", "transport", "peer", "eof", "lost", "splice_budget", "draining", "tap")
    tap: Any  # an `analyze.Analysis`, on analyzing ends only

    def __init__(self, conn: Conn) -> None:
        self.conn = conn
        self.transport: asyncio.Transport = None  # type: ignore[assignment]
        self.peer: _End | None = None
        self.eof = False
        self.lost = False
        # Bytes this end may relay before the tunnel tries the splice relay (0: never).
        after = conn.listener.services.splice_after_bytes
        self.splice_budget = after if splice.AVAILABLE and after > 0 else -1
        self.draining = False  # paused by a splice attempt: flow control must not resume it

    def try_splice(self, attempts: int = SPLICE_DRAIN_CHECKS) -> None:
        """Hand a bulk tunnel to the splice relay once nothing is buffered on either side.

        Reading stops on both sides while the transports' write buffers drain
        (checked every millisecond, a bounded number of times); if they do not
        drain, or either side ends meanwhile, the tunnel stays on this relay.
        A stream saturated both ways at once (an echo) may never drain while
        paused, because the far side blocks on its own unread output: such a
        tunnel stays on this relay, which is correct, only not zero-copy.
        """
        peer = self.peer
        self.splice_budget = -1
        if peer is None or self.eof or peer.eof or self.lost or peer.lost:
            self._resume_both(peer)
            return
        peer.splice_budget = -1
        if self.transport.get_write_buffer_size() or peer.transport.get_write_buffer_size():
            self.transport.pause_reading()
            peer.transport.pause_reading()
            self.draining = peer.draining = True
            if attempts:
                asyncio.get_running_loop().call_later(0.001, self.try_splice, attempts - 1)
            else:
                self._resume_both(peer)
            return
        self.transport.pause_reading()
        peer.transport.pause_reading()
        self.draining = peer.draining = False
        client, upstream = (self, peer) if isinstance(self, ClientEnd) else (peer, self)
        splice.SpliceRelay(self.conn, client.transport, upstream.transport)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.transport.set_write_buffer_limits(WRITE_HIGH_WATER)

    def _resume_both(self, peer: _End | None) -> None:
        """Undo a splice attempt's pause, leaving flow control's own pauses in place."""
        for end in (self, peer):
            if end is not None:
                end.draining = False
        for end in (self, peer):
            if end is None or end.lost or end.transport.is_closing():
                continue
            target = end.peer
            if target is None or target.transport.get_write_buffer_size() < WRITE_HIGH_WATER:
                end.transport.resume_reading()

    def eof_received(self) -> bool:
        self.eof = True
        peer = self.peer
        if peer is None:
            return True  # not linked yet: passed on at link time
        if peer.eof or peer.lost or not peer.transport.can_write_eof():
            self.transport.close()
            peer.transport.close()
            return False
        peer.transport.write_eof()
        return True

    def pause_writing(self) -> None:
        if self.peer is not None:
            self.peer.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.peer is not None and not self.peer.draining:
            self.peer.transport.resume_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        peer = self.peer
        if self.conn.splice is not None:
            # The splice relay moves the bytes on its own copies of the sockets and reports its
            # own failures; an error from this (paused) transport, such as ENOTCONN when uvloop
            # shuts down a socket the far side already closed, says nothing about the tunnel.
            self.ended()
            return
        if exc is not None:
            self.conn.set_outcome(Outcome.RESET, f"{self.side} connection lost: {exc}")
        if peer is not None and not peer.lost:
            if exc is None:
                peer.transport.close()
            else:
                peer.transport.abort()
        self.ended()

    side = "?"
    upward = True  # bytes read here go client -> upstream

    def data_received(self, data: bytes) -> None:
        peer = self.peer
        if peer is None:
            self.hold(data)
            return
        peer.transport.write(data)
        size = len(data)
        if self.upward:
            self.conn.up += size
        else:
            self.conn.down += size
        if self.splice_budget > 0:
            self.splice_budget -= size
            if self.splice_budget <= 0:
                self.try_splice()

    def hold(self, data: bytes) -> None:
        """Data before the tunnel is linked (only an upstream can speak first)."""
        raise AssertionError(f"{self.side} end received data before it was linked")

    def ended(self) -> None:
        pass


class ClientEnd(_End):
    __slots__ = ()
    side = "client"
    upward = True

    def ended(self) -> None:
        self.conn.ended()


class SniProbe(ClientEnd):
    """A client end that looks at the tunnel's first bytes once for a TLS server name.

    After the first chunk it becomes a plain `ClientEnd` (same slots), so the
    rest of the tunnel pays nothing for the probe. The transport is told again
    (`set_protocol`): uvloop keeps the bound `data_received` it was given, and
    would go on calling this one, where a later handshake record (TLS 1.2's
    ClientKeyExchange) would overwrite the server name.
    """

    __slots__ = ()

    def data_received(self, data: bytes) -> None:
        self.__class__ = ClientEnd  # type: ignore[assignment]
        self.transport.set_protocol(self)
        if tls_hello.looks_like_tls(data):
            self.conn.sni = tls_hello.server_name(data)
        ClientEnd.data_received(self, data)


class UpstreamEnd(_End):
    """Created by the dialer; holds anything the upstream says before the tunnel is linked."""

    __slots__ = ("early",)
    side = "upstream"
    upward = False

    def __init__(self, conn: Conn) -> None:
        super().__init__(conn)
        self.early: list[bytes] = []

    def hold(self, data: bytes) -> None:
        self.early.append(data)
        self.transport.pause_reading()


def link(
    conn: Conn,
    client: asyncio.Transport,
    upstream: UpstreamEnd,
    to_upstream: bytes = b"",
    to_client: bytes = b"",
    client_eof: bool = False,
    client_paused: bool = False,
    client_end: ClientEnd | None = None,
    spliceable: bool = True,
) -> None:
    """Turn a handshaken client connection and a dialed upstream into a tunnel.

    `to_upstream` is what the client sent past its handshake; `to_client` is
    what the upstream sent that the entry already read (e.g. after a 101).
    `client_paused` says the entry paused the client's reading. `client_end`
    replaces the plain client end (an analyzing one, say). A tunnel whose
    transports carry TLS that lanner terminated is not `spliceable`.
    """
    if client_end is None:
        client_end = SniProbe(conn)
    if not spliceable:
        client_end.splice_budget = upstream.splice_budget = -1
    client_end.transport = client
    client.set_write_buffer_limits(WRITE_HIGH_WATER)
    client_end.peer = upstream
    upstream.peer = client_end
    client.set_protocol(client_end)
    if to_upstream:
        client_end.data_received(to_upstream)
    early = [to_client] if to_client else []
    early += upstream.early
    upstream.early = []
    for chunk in early:
        upstream.data_received(chunk)
    if upstream.eof:
        upstream.eof = False
        upstream.eof_received()
    if client_eof:
        client_end.eof_received()
    if upstream.lost:
        client.close()
        return
    # Resume only what was paused: each pause/resume pair costs two epoll_ctl calls.
    if early:
        upstream.transport.resume_reading()
    if client_paused:
        client.resume_reading()
