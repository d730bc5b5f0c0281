"""open_tunnel against tiny local servers: hand-over with leftover bytes, its own timeout, cancellation."""

from __future__ import annotations

import asyncio

import pytest

from lanner.upstream.handshake import open_tunnel
from lanner.wire.proxy_client import HttpConnectClient, Refused


class Collect(asyncio.Protocol):
    def __init__(self) -> None:
        self.received = b""
        self.made = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.made = True

    def data_received(self, data: bytes) -> None:
        self.received += data


async def server(answer: bytes | None) -> tuple[asyncio.Server, tuple[str, int]]:
    """A vendor that reads the CONNECT head and answers `answer` (None: never answers)."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        if answer is None:
            await asyncio.sleep(30)
        writer.write(answer or b"")
        await writer.drain()
        await asyncio.sleep(0.2)
        writer.close()

    listening = await asyncio.start_server(handle, "127.0.0.1", 0)
    return listening, ("127.0.0.1", listening.sockets[0].getsockname()[1])


def client() -> HttpConnectClient:
    return HttpConnectClient("example.com", 443, "u", "p")


def test_the_tunnel_is_handed_over_with_the_bytes_after_the_success_reply() -> None:
    async def scenario() -> None:
        listening, endpoint = await server(b"HTTP/1.1 200 Connection established\r\n\r\nearly")
        async with listening:
            result = await open_tunnel(endpoint, client(), Collect, within=5)
            assert not isinstance(result, Refused)
            transport, protocol = result
            assert protocol.made and protocol.received == b"early"
            transport.close()

    asyncio.run(scenario())


def test_a_refusal_comes_back_and_the_connection_is_closed() -> None:
    async def scenario() -> None:
        listening, endpoint = await server(b"HTTP/1.1 407 No\r\nContent-Length: 2\r\n\r\nno")
        async with listening:
            result = await open_tunnel(endpoint, client(), Collect, within=5)
            assert isinstance(result, Refused) and result.status == 407 and result.body == b"no"

    asyncio.run(scenario())


def test_a_silent_vendor_times_out() -> None:
    async def scenario() -> None:
        listening, endpoint = await server(None)
        async with listening:
            with pytest.raises(TimeoutError):
                await open_tunnel(endpoint, client(), Collect, within=0.2)

    asyncio.run(scenario())


def test_a_cancellation_from_outside_stays_a_cancellation() -> None:
    async def scenario() -> None:
        listening, endpoint = await server(None)
        async with listening:
            task = asyncio.ensure_future(open_tunnel(endpoint, client(), Collect, within=5))
            await asyncio.sleep(0.1)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task

    asyncio.run(scenario())
