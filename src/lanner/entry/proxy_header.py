"""PROXY protocol v1/v2 in front of any listener's own entry, for listeners configured for it.

A peer in the listener's `proxy_protocol.trusted` networks must start with a
PROXY header; the client address it names replaces the peer's for
everything after (rules, logs, forwarding headers, recorded flows), and the
listener's own entry then takes the connection over. Anyone else is served
as a direct client, except that a PROXY header from them is refused: an
untrusted peer must not choose the address lanner believes. A listener not
configured for PROXY protocol never runs this entry and never guesses.

On a listener with certificates, TLS starts after the header (the header
comes first on the wire), through the memory-BIO TLS server.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable

from lanner.entry.base import EntryProtocol
from lanner.errors import Outcome
from lanner.net.listener import ListenerRuntime, within
from lanner.net.tls import TlsServer, tls_reason
from lanner.wire import proxy_protocol
from lanner.wire.errors import ProtocolError

_V2_SIGNATURE_SIZE = len(proxy_protocol.V2_SIGNATURE)


class ProxyHeaderEntry(EntryProtocol):
    def __init__(self, listener: ListenerRuntime, inner: Callable[[], EntryProtocol]) -> None:
        super().__init__(listener)
        self.inner = inner
        self.reader: proxy_protocol.ProxyHeaderReader | None = None
        self.seen = b""  # an untrusted peer's first bytes, until they show they are no PROXY header
        self.tls_pending = False
        self.late: list[bytes] = []

    def started(self) -> None:
        config = self.listener.config.proxy_protocol
        assert config is not None
        peer = self.conn.client
        if peer and within(peer[0], config.trusted):
            self.reader = proxy_protocol.ProxyHeaderReader()

    def handle(self, data: bytes) -> None:
        if self.tls_pending:
            self.late.append(data)  # delivered after reading was paused, before TLS took over
            return
        if self.reader is None:
            self.untrusted(data)
            return
        try:
            header = self.reader.receive_data(data)
        except ProtocolError as exc:
            self.refuse(f"bad PROXY header from a trusted peer: {exc}")
            return
        if header is None:
            return
        conn = self.conn
        if not header.local and header.source is not None:
            conn.note("proxied_by", conn.client_text)
            conn.client = header.source
        self.hand_over(self.reader.rest)

    def untrusted(self, data: bytes) -> None:
        seen = self.seen + data
        if proxy_protocol.starts_like_header(seen):
            v1 = len(seen) >= len(proxy_protocol.V1_PREFIX) and seen.startswith(proxy_protocol.V1_PREFIX)
            if v1 or len(seen) >= _V2_SIGNATURE_SIZE:
                self.refuse(f"PROXY header from {self.conn.client_text}, which is not trusted to send one")
                return
            self.seen = seen  # "P" may begin "PUT": wait for the bytes that tell
            return
        self.hand_over(seen)

    def hand_over(self, rest: bytes) -> None:
        certificates = self.listener.certificates
        if certificates is not None:
            self.transport.pause_reading()  # the TLS server reads from here on
            self.tls_pending = True
            self.run(self.start_tls(certificates.listening, rest), "tls")
            return
        entry = self.inner()
        entry.take_over(self)
        if rest:
            entry.data_received(rest)

    async def start_tls(self, context: ssl.SSLContext, first: bytes) -> None:
        tls = TlsServer(context, self.transport, self._lost_after_handshake)
        try:
            await tls.start(first + b"".join(self.late))
        except (ssl.SSLError, ConnectionError) as exc:
            reason = tls_reason(exc) if isinstance(exc, ssl.SSLError) else str(exc) or type(exc).__name__
            self.conn.set_outcome(Outcome.TLS_FAILED, f"client TLS handshake failed: {reason}")
            self.transport.close()
            self.conn.ended()  # the TLS server does not report a connection it failed to secure
            return
        self.transport = tls.transport
        entry = self.inner()
        entry.take_over(self)
        tls.attach(entry)

    def _lost_after_handshake(self, exc: Exception | None) -> None:
        self.conn.ended()

    def refuse(self, why: str) -> None:
        self.conn.set_outcome(Outcome.BAD_REQUEST, why)
        self.transport.close()
