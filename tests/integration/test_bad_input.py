"""Every bad input the gateway core names gets its defined answer, and lanner keeps serving."""

from __future__ import annotations

import base64
import socket
import time
from typing import Any

import pytest

from tests.integration.raw import (
    connect,
    recv_exact,
    recv_until_close,
    socks4_request,
    socks5_greet,
    socks5_request,
)
from tests.integration.servers import Origin, SilentServer, refused_port


@pytest.fixture(scope="module")
def proxy(module_lanner: Any) -> Any:
    return module_lanner(
        {
            "listeners": [
                {"name": "open", "auth": False},
                {"name": "authed", "auth": True},
            ],
            "users": [{"name": "alice", "password": "wonderland"}],
            "rules": [{"action": "deny", "hosts": ["*.forbidden.test"]}],
            "limits": {
                "handshake_timeout": 1,
                "connect_timeout": 1,
                "max_header_bytes": 4096,
                "max_request_line": 1024,
            },
        }
    )


@pytest.fixture(autouse=True)
def still_serves(proxy: Any, origin: Origin) -> Any:
    """After every test here, the same instance proxies a normal request."""
    yield
    sock = connect(proxy.addr("open")[1])
    sock.sendall(
        f"GET http://127.0.0.1:{origin.port}/small HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode()
    )
    assert recv_until_close(sock).endswith(b"hello-from-origin\n")
    assert proxy.alive()


def port(proxy: Any, name: str = "open") -> int:
    return int(proxy.addr(name)[1])


def http_status(data: bytes) -> int:
    return int(data.split(b" ", 2)[1])


def send_http(proxy: Any, request: bytes, listener: str = "open") -> bytes:
    sock = connect(port(proxy, listener))
    sock.sendall(request)
    return recv_until_close(sock)


def socks5(proxy: Any, command: int, host: str, dest_port: int) -> int:
    sock = connect(port(proxy))
    assert socks5_greet(sock) == b"\x05\x00"
    code = socks5_request(sock, command, host, dest_port)[1]
    sock.close()
    return code


def test_binary_garbage_is_closed(proxy: Any) -> None:
    sock = connect(port(proxy))
    sock.sendall(b"\x00\xff\x13\x37garbage")
    assert recv_until_close(sock) == b""
    proxy.wait_log(r"outcome=bad_request detail=\"unrecognised first byte 0x00\"")


def test_printable_garbage_gets_400(proxy: Any) -> None:
    assert http_status(send_http(proxy, b'{"not": "a request"}\r\n\r\n')) == 400


def test_malformed_request_line_gets_400(proxy: Any) -> None:
    assert http_status(send_http(proxy, b"GET\x01http://x/ HTTP/1.1\r\n\r\n")) == 400


@pytest.mark.parametrize(
    "partial",
    [
        b"\x05\x02\x00",
        b"\x05\x01\x00\x05\x01\x00\x03\x09local",
        b"\x04\x01\x00",
        b"GET http://x/ HTTP/1.1\r\nHo",
    ],
    ids=["socks5-greeting", "socks5-request", "socks4", "http-head"],
)
def test_truncated_handshake_then_close(proxy: Any, partial: bytes) -> None:
    sock = connect(port(proxy))
    sock.sendall(partial)
    sock.shutdown(socket.SHUT_WR)
    data = recv_until_close(sock)
    assert data in (b"", b"\x05\x00") or http_status(data) == 400


def test_silent_client_hits_handshake_timeout(proxy: Any) -> None:
    sock = connect(port(proxy))
    started = time.monotonic()
    assert recv_until_close(sock) == b""  # closed by lanner, not by us
    assert time.monotonic() - started < 10
    proxy.wait_log(r"outcome=handshake_timeout")


def test_wrong_socks5_password(proxy: Any) -> None:
    sock = connect(port(proxy, "authed"))
    assert socks5_greet(sock, b"\x02") == b"\x05\x02"
    sock.sendall(b"\x01\x05alice\x05wrong")
    assert recv_exact(sock, 2) == b"\x01\x01"
    assert recv_until_close(sock) == b""
    proxy.wait_log(r"user=alice .*outcome=auth_failed")


@pytest.mark.parametrize("credentials", [None, "alice:wrong", "nobody:wonderland", "garbage"])
def test_wrong_http_proxy_credentials(proxy: Any, origin: Origin, credentials: str | None) -> None:
    header = ""
    if credentials:
        token = base64.b64encode(credentials.encode()).decode() if ":" in credentials else credentials
        header = f"Proxy-Authorization: Basic {token}\r\n"
    data = send_http(
        proxy,
        f"GET http://127.0.0.1:{origin.port}/small HTTP/1.1\r\nHost: x\r\n{header}\r\n".encode(),
        "authed",
    )
    assert http_status(data) == 407
    assert b'proxy-authenticate: basic realm="lanner"' in data.lower()


def test_right_http_proxy_credentials(proxy: Any, origin: Origin) -> None:
    token = base64.b64encode(b"alice:wonderland").decode()
    data = send_http(
        proxy,
        f"GET http://127.0.0.1:{origin.port}/small HTTP/1.1\r\nHost: x\r\n"
        f"Proxy-Authorization: Basic {token}\r\nConnection: close\r\n\r\n".encode(),
        "authed",
    )
    assert http_status(data) == 200


def test_unsupported_socks_command_and_address_type(proxy: Any) -> None:
    assert socks5(proxy, 0x09, "127.0.0.1", 80) == 0x07
    sock = connect(port(proxy))
    socks5_greet(sock)
    sock.sendall(b"\x05\x01\x00\x07\x7f\x00\x00\x01\x00\x50")
    assert recv_exact(sock, 2) == b"\x05\x08"
    sock.close()
    sock, reply = socks4_request(port(proxy), "127.0.0.1", 80)
    sock.close()
    sock = connect(port(proxy))
    sock.sendall(b"\x04\x02\x00\x50\x7f\x00\x00\x01\x00")  # SOCKS4 BIND
    assert recv_exact(sock, 2) == b"\x00\x5b"
    sock.close()


def test_unresolvable_host(proxy: Any) -> None:
    assert socks5(proxy, 1, "nonexistent.invalid", 80) == 0x04
    data = send_http(proxy, b"GET http://nonexistent.invalid/ HTTP/1.1\r\nHost: x\r\n\r\n")
    assert http_status(data) == 502
    proxy.wait_log(r"dest=nonexistent.invalid:80 .*outcome=unresolved")


def test_refused_port(proxy: Any) -> None:
    closed = refused_port()
    assert socks5(proxy, 1, "127.0.0.1", closed) == 0x05
    sock, reply = socks4_request(port(proxy), "127.0.0.1", closed)
    assert reply[1] == 91
    sock.close()
    data = send_http(proxy, f"GET http://127.0.0.1:{closed}/ HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    assert http_status(data) == 502
    data = send_http(proxy, f"CONNECT 127.0.0.1:{closed} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    assert http_status(data) == 502


def test_destination_that_never_answers(proxy: Any) -> None:
    silent = SilentServer()
    try:
        assert socks5(proxy, 1, "127.0.0.1", silent.port) == 0x06
        data = send_http(proxy, f"GET http://127.0.0.1:{silent.port}/ HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        assert http_status(data) == 504
    finally:
        silent.close()
    proxy.wait_log(r"outcome=timeout")


def test_header_section_over_limit_gets_431(proxy: Any, origin: Origin) -> None:
    big = "".join(f"X-Filler-{i}: {'v' * 100}\r\n" for i in range(60))
    data = send_http(proxy, f"GET http://127.0.0.1:{origin.port}/ HTTP/1.1\r\n{big}\r\n".encode())
    assert http_status(data) == 431


def test_request_line_over_limit_gets_414(proxy: Any, origin: Origin) -> None:
    data = send_http(proxy, f"GET http://127.0.0.1:{origin.port}/{'a' * 2000} HTTP/1.1\r\n\r\n".encode())
    assert http_status(data) == 414


def test_malformed_chunked_body_gets_400(proxy: Any, origin: Origin) -> None:
    data = send_http(
        proxy,
        f"POST http://127.0.0.1:{origin.port}/echo HTTP/1.1\r\nHost: x\r\n"
        "Transfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n".encode(),
    )
    assert http_status(data) == 400


def test_smuggling_shapes_get_400(proxy: Any, origin: Origin) -> None:
    for headers in (
        "Content-Length: 5\r\nTransfer-Encoding: chunked",
        "Content-Length: 5\r\nContent-Length: 6",
    ):
        data = send_http(
            proxy, f"POST http://127.0.0.1:{origin.port}/echo HTTP/1.1\r\n{headers}\r\n\r\nhello".encode()
        )
        assert http_status(data) == 400


def test_denied_destination(proxy: Any) -> None:
    assert socks5(proxy, 1, "www.forbidden.test", 80) == 0x02
    data = send_http(proxy, b"GET http://www.forbidden.test/ HTTP/1.1\r\nHost: x\r\n\r\n")
    assert http_status(data) == 403
    data = send_http(proxy, b"CONNECT www.forbidden.test:443 HTTP/1.1\r\nHost: x\r\n\r\n")
    assert http_status(data) == 403


def test_proxy_to_itself_is_refused(proxy: Any) -> None:
    own = port(proxy)
    assert socks5(proxy, 1, "127.0.0.1", own) == 0x02
    data = send_http(proxy, f"GET http://localhost:{own}/ HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    assert http_status(data) == 403
