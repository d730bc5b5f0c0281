"""Process lifecycle: defaults, graceful shutdown, idle timeout, workers, JSON logs."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from tests.integration.raw import connect, recv_exact, recv_until_close, socks5_connect
from tests.integration.servers import Origin, TcpEcho, free_port


def test_defaults_with_env_override(tmp_path: Path, origin: Origin) -> None:
    """`lanner run` with no config file: a forward listener (bind moved by env to stay off 8080)."""
    port = free_port()
    env = {"PATH": "/usr/bin:/bin", "LANNER_LISTENERS__0__BIND": f"127.0.0.1:{port}"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "lanner", "run"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.strip() == (
            f"lanner: forward listener 'forward' on 127.0.0.1:{port} accepts http, connect, socks4, socks4a, socks5"
        )
        sock = connect(port)
        sock.sendall(
            f"GET http://127.0.0.1:{origin.port}/small HTTP/1.1\r\nConnection: close\r\n\r\n".encode()
        )
        assert recv_until_close(sock).endswith(b"hello-from-origin\n")
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(20) == 0


def test_graceful_shutdown_lets_open_tunnels_finish(start_lanner: Any, tcp_echo: TcpEcho) -> None:
    lanner = start_lanner({"shutdown_grace": 20})
    sock, code = socks5_connect(lanner.port, "127.0.0.1", tcp_echo.port)
    assert code == 0
    lanner.signal(signal.SIGTERM)
    lanner.wait_log(r"draining")
    # No new connections...
    deadline = time.monotonic() + 5
    while True:
        try:
            socket.create_connection(("127.0.0.1", lanner.port), timeout=1).close()
        except ConnectionRefusedError:
            break
        assert time.monotonic() < deadline, "listener still accepting after SIGTERM"
        time.sleep(0.05)
    # ...but the open tunnel still works until it closes.
    sock.sendall(b"still here")
    assert recv_exact(sock, 10) == b"still here"
    sock.close()
    assert lanner.proc.wait(15) == 0
    assert "outcome=ok" in lanner.log()


def test_shutdown_closes_what_outlives_the_grace(start_lanner: Any, tcp_echo: TcpEcho) -> None:
    lanner = start_lanner({"shutdown_grace": 0.5})
    sock, code = socks5_connect(lanner.port, "127.0.0.1", tcp_echo.port)
    assert code == 0
    lanner.signal(signal.SIGTERM)
    assert lanner.proc.wait(15) == 0
    assert recv_until_close(sock) == b""
    assert "outcome=shutdown" in lanner.log()


def test_idle_tunnels_are_closed(start_lanner: Any, tcp_echo: TcpEcho) -> None:
    lanner = start_lanner({"limits": {"idle_timeout": 0.5}})
    sock, code = socks5_connect(lanner.port, "127.0.0.1", tcp_echo.port)
    assert code == 0
    sock.sendall(b"x")
    assert recv_exact(sock, 1) == b"x"
    assert recv_until_close(sock) == b""
    lanner.wait_log(r"outcome=idle_timeout")


def test_json_logs(start_lanner: Any, origin: Origin) -> None:
    lanner = start_lanner({}, "--json-logs")
    sock = connect(lanner.port)
    sock.sendall(f"GET http://127.0.0.1:{origin.port}/small HTTP/1.1\r\nConnection: close\r\n\r\n".encode())
    recv_until_close(sock)
    lanner.wait_log(r'"msg": "connection"')
    records = [json.loads(line) for line in lanner.log().splitlines() if line.strip()]
    (record,) = [r for r in records if r["msg"] == "connection"]
    assert record["proto"] == "http"
    assert record["dest"] == f"127.0.0.1:{origin.port}"
    assert record["outcome"] == "ok"
    assert record["down"] > 0 and record["requests"] == 1


def test_workers_share_the_listener(start_lanner: Any, origin: Origin) -> None:
    lanner = start_lanner({}, "--workers", "2")
    children = Path(f"/proc/{lanner.proc.pid}/task/{lanner.proc.pid}/children")
    deadline = time.monotonic() + 10
    while len(children.read_text().split()) < 2:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    for _ in range(40):
        sock = connect(lanner.port)
        sock.sendall(
            f"GET http://127.0.0.1:{origin.port}/small HTTP/1.1\r\nConnection: close\r\n\r\n".encode()
        )
        assert recv_until_close(sock).endswith(b"hello-from-origin\n")
    # One line for the listener and one for the admin API (worker 0's), not one per worker.
    assert [line.split(" ")[1] for line in lanner.announced] == ["forward", "admin"]
    lanner.wait_log(r"outcome=ok.* worker=[01]")
