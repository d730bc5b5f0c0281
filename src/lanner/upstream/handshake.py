"""Opening a tunnel through a vendor: connect, complete its handshake, hand the socket over.

The handshake (HTTP CONNECT or SOCKS5, `wire.proxy_client`) finishes before
lanner tells its own client anything: only an established tunnel is handed to
the caller's protocol, with any bytes the vendor sent after its success reply.
A refusal comes back as `Refused` for the caller to classify; a broken or
silent vendor raises `HandshakeBroken` or `TimeoutError`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TypeVar

from lanner.wire.errors import ProtocolError
from lanner.wire.proxy_client import Established, HttpConnectClient, Refused, Socks5Client

P = TypeVar("P", bound=asyncio.BaseProtocol)

Client = HttpConnectClient | Socks5Client


class HandshakeBroken(Exception):
    """The vendor closed, reset or spoke nonsense during its handshake."""


class _HandshakeProtocol(asyncio.Protocol):
    def __init__(self, client: Client, done: asyncio.Future[Established | Refused]) -> None:
        self.client = client
        self.done = done
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.transport.write(self.client.start())  # type: ignore[union-attr]

    def data_received(self, data: bytes) -> None:
        if self.done.done():
            return
        try:
            reply = self.client.receive_data(data)
        except ProtocolError as exc:
            self._fail(HandshakeBroken(f"bad handshake answer: {exc}"))
            return
        if reply and self.transport is not None:
            self.transport.write(reply)
        self._settle()

    def eof_received(self) -> bool:
        if not self.done.done():
            try:
                self.client.receive_eof()
            except ProtocolError as exc:
                self._fail(HandshakeBroken(str(exc)))
                return False
            self._settle()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done.done():
            self._fail(
                HandshakeBroken(
                    f"closed during the handshake: {exc}" if exc else "closed during the handshake"
                )
            )

    def _settle(self) -> None:
        result = self.client.result
        if result is not None and not self.done.done():
            if isinstance(result, Established) and self.transport is not None:
                self.transport.pause_reading()  # nothing more is read until the caller's protocol is in place
            self.done.set_result(result)

    def _fail(self, exc: Exception) -> None:
        if not self.done.done():
            self.done.set_exception(exc)


def make_client(protocol: str, host: str, port: int, username: str | None, password: str | None) -> Client:
    if protocol == "socks5":
        return Socks5Client(host, port, username, password)
    return HttpConnectClient(host, port, username, password)


async def open_tunnel(
    endpoint: tuple[str, int], client: Client, factory: Callable[[], P], within: float
) -> tuple[asyncio.Transport, P] | Refused:
    """The tunnel with `factory`'s protocol on it, or the vendor's refusal.

    Raises OSError (connect), HandshakeBroken, or TimeoutError after `within`
    seconds; the vendor connection is closed in every case but success.
    """
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    assert task is not None
    expired = False

    def expire() -> None:
        nonlocal expired
        expired = True
        task.cancel()

    # One timer instead of asyncio.timeout(): it is on every tunnel's path and costs a third as much.
    timer = loop.call_later(within, expire)
    done: asyncio.Future[Established | Refused] = loop.create_future()
    try:
        transport, _ = await loop.create_connection(lambda: _HandshakeProtocol(client, done), *endpoint)
        try:
            result = await done
        except BaseException:
            transport.abort()
            raise
    except asyncio.CancelledError:
        if expired and task.uncancel() == 0:  # our timer, not someone else's cancellation
            raise TimeoutError(f"no handshake within {within:g}s") from None
        raise
    finally:
        timer.cancel()
    if isinstance(result, Refused):
        transport.abort()
        return result
    protocol = factory()
    transport.set_protocol(protocol)
    protocol.connection_made(transport)
    if result.leftover:
        protocol.data_received(result.leftover)  # type: ignore[attr-defined]
    transport.resume_reading()
    return transport, protocol
