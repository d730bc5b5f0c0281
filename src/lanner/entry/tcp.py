"""The plain L4 entry: every connection goes to the listener's fixed target."""

from __future__ import annotations

from lanner.config.model import split_hostport
from lanner.entry.base import EntryProtocol
from lanner.net.listener import ListenerRuntime
from lanner.net.relay import link


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

    async def _connect(self) -> None:
        assert self.listener.config.target is not None
        host, port = split_hostport(self.listener.config.target)
        upstream = await self.dial_tunnel(host, port)
        if upstream is None:
            return
        link(
            self.conn,
            self.transport,
            upstream,
            b"".join(self.early),
            client_eof=self.client_eof,
            client_paused=True,
        )
