"""The forward listener's entry: tells SOCKS4, SOCKS5 and HTTP apart by the first byte.

0x04 is SOCKS4/4a, 0x05 is SOCKS5, an ASCII letter starts an HTTP request
line; anything else, or a protocol the listener does not accept, is closed
as a bad request.
"""

from __future__ import annotations

from lanner.entry.base import EntryProtocol
from lanner.entry.http_forward import error_response
from lanner.entry.http_proxy import HttpProxySession
from lanner.entry.socks import SocksEntry
from lanner.errors import Outcome
from lanner.net.listener import ListenerRuntime


class ForwardEntry(EntryProtocol):
    def __init__(self, listener: ListenerRuntime) -> None:
        super().__init__(listener)
        accepted = set(listener.config.protocols)
        self.http = "http" in accepted
        self.socks4 = "socks4" in accepted
        self.socks5 = "socks5" in accepted

    def handle(self, data: bytes) -> None:
        first = data[0]
        handler: EntryProtocol
        if (first == 0x05 and self.socks5) or (first == 0x04 and self.socks4):
            handler = SocksEntry(self.listener)
        elif self.http and (0x41 <= first <= 0x5A or 0x61 <= first <= 0x7A or first == 0x0D):
            handler = HttpProxySession(self.listener)
        else:
            self.conn.set_outcome(Outcome.BAD_REQUEST, f"unrecognised first byte {first:#04x}")
            if self.http and 0x20 <= first < 0x7F:
                self.transport.write(error_response(400, "not an HTTP or SOCKS request"))
            self.transport.close()
            return
        handler.take_over(self)
        handler.data_received(data)
