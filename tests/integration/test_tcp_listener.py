"""tcp listeners: every connection goes to the fixed target, driven by real clients."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import redis

from tests.conftest import require
from tests.integration.raw import connect, recv_exact
from tests.integration.servers import TcpEcho, free_port, refused_port


def test_tcp_listener_relays_and_half_closes(start_lanner: Any, tcp_echo: TcpEcho) -> None:
    lanner = start_lanner(
        {"listeners": [{"name": "echo", "type": "tcp", "target": f"127.0.0.1:{tcp_echo.port}"}]}
    )
    assert "tcp listener 'echo'" in lanner.announced[0]
    payload = bytes(range(256)) * 8192  # 2 MiB both ways
    sock = connect(lanner.port)
    sock.sendall(payload[:1000])
    assert recv_exact(sock, 1000) == payload[:1000]
    sock.close()

    async def bulk() -> bytes:
        reader, writer = await asyncio.open_connection("127.0.0.1", lanner.port)
        writer.write(payload)
        writer.write_eof()
        received = await reader.read()
        writer.close()
        return received

    assert asyncio.run(bulk()) == payload
    lanner.wait_log(r"proto=tcp .*up=2097152 down=2097152 .*outcome=ok")


def test_tcp_listener_to_real_redis(start_lanner: Any) -> None:
    lanner = start_lanner({"listeners": [{"name": "redis", "type": "tcp", "target": "127.0.0.1:6379"}]})
    client = redis.Redis(host="127.0.0.1", port=lanner.port, socket_timeout=5)
    client.set("lanner:test", "through the tcp listener")
    assert client.get("lanner:test") == b"through the tcp listener"
    pipe = client.pipeline()
    for _ in range(100):
        pipe.incr("lanner:counter")
    assert pipe.execute()[-1] >= 100
    client.delete("lanner:test", "lanner:counter")
    client.close()


def test_tcp_listener_target_down(start_lanner: Any) -> None:
    lanner = start_lanner(
        {"listeners": [{"name": "down", "type": "tcp", "target": f"127.0.0.1:{refused_port()}"}]}
    )
    sock = connect(lanner.port)
    try:
        assert sock.recv(10) == b""
    except ConnectionResetError:
        pass
    lanner.wait_log(r"proto=tcp .*outcome=refused")


def test_ipv6_listener(start_lanner: Any, tcp_echo: TcpEcho) -> None:
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
        has_v6 = True
    except OSError:
        has_v6 = False
    require(has_v6, "no IPv6 loopback on this machine")
    port = free_port()
    lanner = start_lanner(
        {
            "listeners": [
                {"name": "v6", "type": "tcp", "bind": f"[::1]:{port}", "target": f"127.0.0.1:{tcp_echo.port}"}
            ]
        }
    )
    with socket.create_connection(("::1", port), timeout=5) as sock:
        sock.sendall(b"over v6")
        assert recv_exact(sock, 7) == b"over v6"
    assert lanner.alive()
