"""The plain L4 entry: every connection goes to the listener's fixed target (analyzed: net/analyze_db.py).

The tls listener's entry (`entry/tls_terminate.py`) is this one behind TLS termination.
"""

from __future__ import annotations

from lanner.config.model import split_hostport
from lanner.entry.base import EntryProtocol
from lanner.net.analyze_db import analyzed_ends, tap_for
from lanner.net.listener import ListenerRuntime
from lanner.net.relay import UpstreamEnd, link


class TcpEntry(EntryProtocol):
    def __init__(self, listener: ListenerRuntime) -> None:
        super().__init__(listener)
        self.early: list[bytes] = []
        self.client_eof = False

    def started(self) -> None:
        self.conn.protocol = "tcp"
        self.conn.handshake_done()
        self.transport.pause_reading()
        self.run(self._connect(), "dial")

    def handle(self, data: bytes) -> None:
        # uvloop may deliver what it already read even though reading is paused.
        self.early.append(data)

    def eof_received(self) -> bool:
        self.client_eof = True
        return True

    # What a subclass (the tls listener) changes: where to, the scheme analysis records,
    # TLS towards the target, and whether the relay may splice.
    scheme = "http"
    spliceable = True

    def target(self) -> tuple[str, int] | None:
        assert self.listener.config.target is not None
        return split_hostport(self.listener.config.target)

    async def secure(self, upstream: UpstreamEnd, host: str) -> None:
        """Nothing to do over plain TCP."""

    async def _connect(self) -> None:
        target = self.target()
        if target is None:
            return
        host, port = target
        upstream = await self.dial_tunnel(host, port)
        if upstream is None:
            return
        await self.secure(upstream, host)
        conn = self.conn
        tap = tap_for(self.listener, conn, host, port, spliceable=self.spliceable, scheme=self.scheme)
        link(
            conn,
            self.transport,
            upstream,
            b"".join(self.early),
            client_eof=self.client_eof,
            client_paused=True,
            client_end=analyzed_ends(conn, tap, upstream) if tap is not None else None,
            spliceable=self.spliceable,
        )
