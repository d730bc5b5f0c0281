"""Server-side TLS over a connection that is already open, driven through memory BIOs.

Interception must read the ClientHello before it knows which certificate to
show (and whether to intercept at all), so the TLS engine cannot own the
socket from the first byte the way `loop.start_tls` does: `TlsServer` takes
the bytes already read, feeds them to an `ssl.SSLObject`, and from then on
sits between the raw transport and the application protocol. The
application sees a `TlsTransport`, which behaves like any asyncio transport
(flow control, close, `set_protocol` for the relay) except that it cannot
half-close and offers no socket (so the splice relay never touches it).

It never blocks: the handshake advances as records arrive, and its result is
a future the entry awaits with a timeout.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable
from typing import Any

from lanner.errors import ConnectTimeout, UpstreamFailed, UpstreamTlsFailed

READ_SIZE = 256 * 1024


class TlsServer(asyncio.Protocol):
    """The raw transport's protocol: decrypts into the application protocol, encrypts its writes."""

    def __init__(
        self, context: ssl.SSLContext, raw: asyncio.Transport, lost: Callable[[Exception | None], None]
    ) -> None:
        self.raw = raw
        self.lost = lost  # told when it ends after the handshake, before an application is attached
        self.incoming = ssl.MemoryBIO()
        self.outgoing = ssl.MemoryBIO()
        self.tls = context.wrap_bio(self.incoming, self.outgoing, server_side=True)
        self.app: asyncio.BaseProtocol | None = None
        self.transport = TlsTransport(self)
        self.handshake: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.paused = False  # the application paused reading
        self.closing = False
        self.eof = False

    async def start(self, first: bytes) -> None:
        """Take over the raw transport, feed what was already read, finish the handshake.

        Raises ssl.SSLError (the client refused us, or spoke bad TLS) or
        ConnectionError (it left mid-handshake).
        """
        self.raw.set_protocol(self)
        self.raw.resume_reading()
        self.data_received(first)
        await self.handshake

    def attach(self, app: asyncio.BaseProtocol) -> None:
        """Hand decrypted bytes to `app` from now on (and what already arrived, at once)."""
        self.app = app
        self.deliver()

    @property
    def alpn(self) -> str | None:
        return self.tls.selected_alpn_protocol()

    # -- the raw transport's callbacks --

    def data_received(self, data: bytes) -> None:
        self.incoming.write(data)
        if self.handshake.done():
            self.deliver()
            return
        try:
            self.tls.do_handshake()
        except ssl.SSLWantReadError:
            self.flush()
            return
        except ssl.SSLError as exc:
            self.flush()  # the alert tells the client why
            self.handshake.set_exception(exc)
            self.raw.close()
            return
        self.flush()
        self.handshake.set_result(None)

    def eof_received(self) -> bool | None:
        self.eof = True
        if not self.handshake.done():
            self.handshake.set_exception(ConnectionResetError("client closed during the TLS handshake"))
            return False
        app = self.app
        if isinstance(app, asyncio.Protocol):
            return app.eof_received()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.handshake.done():  # whoever awaits the handshake answers for the connection
            self.handshake.set_exception(exc or ConnectionResetError("client left during the TLS handshake"))
        elif self.app is not None:
            self.app.connection_lost(exc)
        elif not self.handshake.exception():
            self.lost(exc)

    def pause_writing(self) -> None:
        if self.app is not None:
            self.app.pause_writing()

    def resume_writing(self) -> None:
        if self.app is not None:
            self.app.resume_writing()

    # -- moving records --

    def deliver(self) -> None:
        """Decrypt what has arrived into the application, as long as it reads."""
        app = self.app
        if not isinstance(app, asyncio.Protocol):
            return
        read = self.tls.read
        while not self.paused:
            try:
                chunk = read(READ_SIZE)
            except ssl.SSLWantReadError:
                break
            except ssl.SSLZeroReturnError:  # close_notify: the client is done sending
                self.flush()
                if not app.eof_received():
                    self.transport.close()
                return
            except ssl.SSLError as exc:
                self.raw.abort()
                app.connection_lost(exc)
                self.app = None
                return
            if not chunk:
                break
            app.data_received(chunk)
            app = self.app  # data_received may have handed the connection to another protocol
            if not isinstance(app, asyncio.Protocol):
                return
        if self.outgoing.pending:
            self.flush()  # post-handshake messages (TLS 1.3 tickets, key updates)

    def flush(self) -> None:
        if self.outgoing.pending:
            self.raw.write(self.outgoing.read())


class TlsTransport(asyncio.Transport):
    """What the application writes to and controls; bytes go through the session's TLS engine."""

    def __init__(self, session: TlsServer) -> None:
        super().__init__()
        self.session = session

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if data:
            self.writelines((data,))

    def writelines(self, list_of_data: Any) -> None:
        session = self.session
        if session.closing:
            return
        try:
            for data in list_of_data:
                if data:
                    session.tls.write(data)
        except ssl.SSLError:  # the TLS session broke (a fatal alert): like a reset socket
            self.abort()
            return
        session.flush()

    def can_write_eof(self) -> bool:
        return False  # TLS has no half-close that every client honours

    def write_eof(self) -> None:
        raise NotImplementedError("TLS connections cannot half-close")

    def close(self) -> None:
        session = self.session
        if session.closing:
            return
        session.closing = True
        if session.handshake.done() and not session.raw.is_closing():
            try:
                session.tls.unwrap()  # sends close_notify; the client's answer is not awaited
            except (ssl.SSLWantReadError, ssl.SSLError):
                pass
            session.flush()
        session.raw.close()

    def abort(self) -> None:
        self.session.closing = True
        self.session.raw.abort()

    def is_closing(self) -> bool:
        return self.session.closing or self.session.raw.is_closing()

    def pause_reading(self) -> None:
        self.session.paused = True
        self.session.raw.pause_reading()

    def resume_reading(self) -> None:
        session = self.session
        if not session.paused:
            return
        session.paused = False
        if not session.raw.is_closing():
            session.raw.resume_reading()
        asyncio.get_running_loop().call_soon(session.deliver)  # what arrived while paused

    def is_reading(self) -> bool:
        return not self.session.paused

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self.session.app = protocol

    def get_protocol(self) -> asyncio.BaseProtocol:
        assert self.session.app is not None
        return self.session.app

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        self.session.raw.set_write_buffer_limits(high, low)

    def get_write_buffer_size(self) -> int:
        return self.session.raw.get_write_buffer_size()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        if name == "ssl_object":
            return self.session.tls
        if name == "socket":
            return default  # the bytes on the socket are ciphertext: nothing may splice them
        return self.session.raw.get_extra_info(name, default)


async def start_client_tls(
    transport: asyncio.Transport,
    protocol: asyncio.BaseProtocol,
    context: ssl.SSLContext,
    server_hostname: str | None,
    handshake_timeout: float,
    where: str,
) -> asyncio.Transport:
    """TLS as a client over an open upstream connection; failures become GatewayErrors."""
    loop = asyncio.get_running_loop()
    try:
        secured = await loop.start_tls(
            transport,
            protocol,
            context,
            server_hostname=server_hostname,
            ssl_handshake_timeout=handshake_timeout,
        )
    except ssl.SSLCertVerificationError as exc:
        raise UpstreamTlsFailed(f"certificate of {where} did not verify: {exc.verify_message}") from exc
    except ssl.SSLError as exc:
        raise UpstreamTlsFailed(f"TLS handshake with {where} failed: {tls_reason(exc)}") from exc
    except TimeoutError as exc:
        raise ConnectTimeout(f"TLS handshake with {where} timed out") from exc
    except ConnectionError as exc:
        raise UpstreamFailed(f"{where} closed during the TLS handshake") from exc
    if secured is None:
        raise UpstreamFailed(f"{where} closed during the TLS handshake")
    return secured


def tls_reason(exc: ssl.SSLError) -> str:
    """OpenSSL's reason code, e.g. TLSV1_ALERT_UNKNOWN_CA (the client's alert), else the message."""
    return str(exc.reason or exc.strerror or exc)
