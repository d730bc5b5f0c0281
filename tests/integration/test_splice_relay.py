"""Bulk tunnels move to the splice relay mid-stream without losing or reordering a byte."""

from __future__ import annotations

import asyncio
import hashlib
import signal
from typing import Any

import pytest

from lanner.net import splice
from tests.conftest import require
from tests.integration.raw import connect, recv_exact, recv_until_close, socks5_connect
from tests.integration.servers import Origin, TcpEcho


@pytest.fixture(autouse=True)
def _needs_splice() -> None:
    require(splice.AVAILABLE, "os.splice exists on Linux only")


EARLY = 64 * 1024


def test_echo_both_ways_across_the_switch(start_lanner: Any, tcp_echo: TcpEcho) -> None:
    """Large blocks each way in turn: the tunnel switches within the first and stays exact."""
    lanner = start_lanner(
        {
            "splice_after_bytes": EARLY,
            "listeners": [{"name": "echo", "type": "tcp", "target": f"127.0.0.1:{tcp_echo.port}"}],
        }
    )
    block = hashlib.sha256(b"seed").digest() * (1024 * 1024 // 32)  # 1 MiB
    blocks = [bytes([index]) + block[1:] for index in range(8)]

    async def ping_pong() -> list[bytes]:
        reader, writer = await asyncio.open_connection("127.0.0.1", lanner.port)
        echoed = []
        for data in blocks:
            writer.write(data)
            await writer.drain()
            echoed.append(await reader.readexactly(len(data)))
        writer.write_eof()
        assert await reader.read() == b""
        writer.close()
        return echoed

    assert asyncio.run(ping_pong()) == blocks
    lanner.wait_log(r"up=8388608 down=8388608 .*outcome=ok.* relay=splice")


def test_download_through_connect_and_socks(start_lanner: Any, origin: Origin) -> None:
    lanner = start_lanner({"splice_after_bytes": EARLY})
    size = 30_000_000
    for use_socks in (False, True):
        if use_socks:
            sock, code = socks5_connect(lanner.port, "127.0.0.1", origin.port)
            assert code == 0
        else:
            sock = connect(lanner.port)
            sock.sendall(f"CONNECT 127.0.0.1:{origin.port} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            assert recv_exact(sock, 39) == b"HTTP/1.1 200 Connection established\r\n\r\n"[:39]
        sock.sendall(f"GET /big?n={size} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        data = recv_until_close(sock, limit=size + 4096)
        body = data.partition(b"\r\n\r\n")[2]
        assert len(body) == size and body.count(b"x") == size
        sock.close()
    lanner.wait_log(r"relay=splice(.|\n)*relay=splice")


def test_idle_and_shutdown_close_spliced_tunnels(start_lanner: Any, tcp_echo: TcpEcho) -> None:
    lanner = start_lanner({"splice_after_bytes": EARLY, "limits": {"idle_timeout": 1}})
    sock, code = socks5_connect(lanner.port, "127.0.0.1", tcp_echo.port)
    assert code == 0
    block = b"y" * (4 * EARLY)
    sock.sendall(block)
    assert recv_exact(sock, len(block)) == block
    assert recv_until_close(sock) == b""  # idle: closed by lanner although the sockets were duplicated
    lanner.wait_log(r"outcome=idle_timeout.* relay=splice")

    lanner2 = start_lanner({"splice_after_bytes": EARLY, "shutdown_grace": 0.5})
    sock, code = socks5_connect(lanner2.port, "127.0.0.1", tcp_echo.port)
    assert code == 0
    sock.sendall(block)
    assert recv_exact(sock, len(block)) == block
    lanner2.signal(signal.SIGTERM)
    assert lanner2.proc.wait(15) == 0
    sock.settimeout(5)
    try:
        assert sock.recv(10) == b""
    except (TimeoutError, ConnectionResetError) as exc:
        assert isinstance(exc, ConnectionResetError)
    assert "outcome=shutdown" in lanner2.log()
