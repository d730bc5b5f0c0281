"""The fake upstream vendor itself, checked with real clients before gateway tests lean on it.

curl tunnels through its HTTP CONNECT port, python-socks through its SOCKS5 port; raw
sockets read the misbehaving answers byte by byte.
"""

from __future__ import annotations

import base64
import json
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import pytest
from python_socks import ProxyError
from python_socks.sync import Proxy

from tests.conftest import require_binary
from tests.integration.raw import connect, recv_exact, recv_http_response, recv_until_close, socks5_request
from tests.integration.servers import Origin, TcpEcho, refused_port
from tests.integration.vendors import SERVER, VENDOR_STRINGS, FakeVendor, leaked_vendor_strings

USER_RE = r"customer-acme-country-(?P<country>[a-z]{2})-session-(?P<session>[a-z0-9]{8})"
PASSWORD = "s3cret"
USER = "customer-acme-country-de-session-abcd1234"
GROUPS = {"country": "de", "session": "abcd1234"}
ESTABLISHED = b"HTTP/1.1 200 Connection established\r\n\r\n"
SLOW = 0.3
HTTP_STATUS = {
    "auth407": 407,
    "forbidden403": 403,
    "session_gone502": 502,
    "geo525": 525,
    "refuse_target": 502,
}
SOCKS_REPLY = {"forbidden403": 0x02, "session_gone502": 0x01, "geo525": 0x04, "refuse_target": 0x05}
MODES = ["ok", "slow", "reset", "html", *HTTP_STATUS]


@pytest.fixture(scope="module")
def http_vendor() -> Iterator[FakeVendor]:
    with FakeVendor("http-vendor", "http", USER_RE, PASSWORD) as vendor:
        yield vendor


@pytest.fixture(scope="module")
def socks_vendor() -> Iterator[FakeVendor]:
    with FakeVendor("socks-vendor", "socks5", USER_RE, PASSWORD) as vendor:
        yield vendor


@pytest.fixture
def http(http_vendor: FakeVendor) -> FakeVendor:
    http_vendor.reset()
    return http_vendor


@pytest.fixture
def socks(socks_vendor: FakeVendor) -> FakeVendor:
    socks_vendor.reset()
    return socks_vendor


def curl(*args: str) -> subprocess.CompletedProcess[str]:
    environment = {name: value for name, value in os.environ.items() if "proxy" not in name.lower()}
    command = [require_binary("curl"), "-sS", "--max-time", "10", *args]
    return subprocess.run(command, capture_output=True, text=True, env=environment, timeout=20)


def curl_through(vendor: FakeVendor, url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return curl("--proxytunnel", "--proxy", f"http://{vendor.address}", *args, url)


def http_connect(
    vendor: FakeVendor, target: str, username: str | None = USER, password: str = PASSWORD
) -> socket.socket:
    sock = connect(vendor.port, timeout=5)
    credentials = ""
    if username is not None:
        token = base64.b64encode(f"{username}:{password}".encode()).decode()
        credentials = f"Proxy-Authorization: Basic {token}\r\n"
    sock.sendall(f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n{credentials}\r\n".encode())
    return sock


def socks_login(
    vendor: FakeVendor, username: str = USER, password: str = PASSWORD
) -> tuple[socket.socket, bytes]:
    """Greet offering username/password only and log in (RFC 1929): (socket, auth status reply)."""
    sock = connect(vendor.port, timeout=5)
    sock.sendall(b"\x05\x01\x02")
    assert recv_exact(sock, 2) == b"\x05\x02"
    user, secret = username.encode(), password.encode()
    sock.sendall(bytes([1, len(user)]) + user + bytes([len(secret)]) + secret)
    return sock, recv_exact(sock, 2)


def get_small(sock: socket.socket) -> bytes:
    sock.sendall(b"GET /small HTTP/1.1\r\nHost: origin\r\n\r\n")
    _, body = recv_http_response(sock)
    return body


def header_lines(head: bytes) -> set[bytes]:
    return set(head.split(b"\r\n")[1:])


def only_entry(vendor: FakeVendor) -> dict[str, object]:
    [entry] = vendor.log()
    return entry


def test_curl_tunnels_with_good_credentials(http: FakeVendor, origin: Origin) -> None:
    result = curl_through(http, f"http://127.0.0.1:{origin.port}/small", "--proxy-user", f"{USER}:{PASSWORD}")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "hello-from-origin\n"
    entry = only_entry(http)
    assert isinstance(entry.pop("at"), float)
    assert entry == {
        "username": USER,
        "password": PASSWORD,
        "target": f"127.0.0.1:{origin.port}",
        "groups": GROUPS,
        "result": "ok",
    }
    assert http.stats() == {"connections": 0, "handshakes": 1}


def test_curl_tunnel_carries_a_large_body(http: FakeVendor, origin: Origin) -> None:
    url = f"http://127.0.0.1:{origin.port}/big?n=5000000"
    result = curl_through(
        http, url, "--proxy-user", f"{USER}:{PASSWORD}", "-o", os.devnull, "-w", "%{size_download}"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "5000000"


def test_curl_reports_the_407(http: FakeVendor, origin: Origin) -> None:
    result = curl_through(http, f"http://127.0.0.1:{origin.port}/small", "--proxy-user", f"{USER}:wrong")
    assert result.returncode == 56
    assert "407" in result.stderr


@pytest.mark.parametrize(
    ("username", "password"),
    [(USER, "wrong"), ("customer-acme-country-deu-session-abcd1234", PASSWORD), (None, PASSWORD)],
    ids=["wrong-password", "username-off-pattern", "no-credentials"],
)
def test_bad_credentials_get_a_branded_407(
    http: FakeVendor, origin: Origin, username: str | None, password: str
) -> None:
    with http_connect(http, f"127.0.0.1:{origin.port}", username, password) as sock:
        head, body = recv_http_response(sock)
        assert recv_until_close(sock) == b""
    assert head.startswith(b"HTTP/1.1 407 Proxy Authentication Required\r\n")
    assert {
        b'Proxy-Authenticate: Basic realm="FakeVendor"',
        b"x-brd-error: bad credentials for zone",
        b"X-Scrapoxy-Proxyerror: fakevendor",
        b"Server: fakevendor-superproxy",
        b"Content-Length: %d" % len(body),
    } <= header_lines(head)
    assert b"FakeVendor" in body and b"gw.fakevendor-superproxy.net" in body and b"203.0.113.77" in body
    entry = only_entry(http)
    assert (entry["username"], entry["result"]) == (username, "auth")


def test_whitelisted_vendor_takes_anyone(origin: Origin) -> None:
    with FakeVendor("whitelist", "http", USER_RE, whitelist=True) as vendor:
        url = f"http://127.0.0.1:{origin.port}/small"
        assert curl_through(vendor, url).stdout == "hello-from-origin\n"
        assert curl_through(vendor, url, "--proxy-user", f"{USER}:anything").stdout == "hello-from-origin\n"
        assert [(entry["username"], entry["groups"], entry["result"]) for entry in vendor.log()] == [
            (None, {}, "ok"),
            (USER, GROUPS, "ok"),
        ]


def test_whitelisted_socks5_vendor_offers_no_authentication(tcp_echo: TcpEcho) -> None:
    with FakeVendor("whitelist-socks", "socks5", whitelist=True) as vendor, connect(vendor.port) as sock:
        sock.sendall(b"\x05\x02\x00\x02")
        assert recv_exact(sock, 2) == b"\x05\x00"
        assert socks5_request(sock, 1, "127.0.0.1", tcp_echo.port)[1] == 0
        sock.sendall(b"ping")
        assert recv_exact(sock, 4) == b"ping"


@pytest.mark.parametrize("mode", MODES)
def test_http_modes(http: FakeVendor, origin: Origin, mode: str) -> None:
    http.mode(mode, count=1, delay=SLOW)
    started = time.monotonic()
    with http_connect(http, f"127.0.0.1:{origin.port}") as sock:
        if mode == "reset":
            with pytest.raises(ConnectionResetError):
                sock.recv(1024)
        elif mode in ("ok", "slow"):
            assert recv_exact(sock, len(ESTABLISHED)) == ESTABLISHED
            assert get_small(sock) == b"hello-from-origin\n"
        else:
            head, body = recv_http_response(sock)
            assert recv_until_close(sock) == b""
            status = HTTP_STATUS.get(mode, 200)
            assert head.startswith(b"HTTP/1.1 %d " % status)
            assert b"FakeVendor" in body and b"203.0.113.77" in body
            assert leaked_vendor_strings(head + body) == list(VENDOR_STRINGS)
            if mode == "geo525":
                assert b"x-brd-error: no peers available for country de" in head
            if mode == "html":
                assert head.startswith(b"HTTP/1.1 200 OK\r\n") and body.startswith(b"<!DOCTYPE html>")
    assert (time.monotonic() - started >= SLOW) == (mode == "slow")
    assert only_entry(http)["result"] == mode
    result = curl_through(http, f"http://127.0.0.1:{origin.port}/small", "--proxy-user", f"{USER}:{PASSWORD}")
    assert result.stdout == "hello-from-origin\n", "count=1 covers one handshake only"


@pytest.mark.parametrize("mode", MODES)
def test_socks5_modes(socks: FakeVendor, tcp_echo: TcpEcho, mode: str) -> None:
    socks.mode(mode, count=1, delay=SLOW)
    started = time.monotonic()
    sock, status = socks_login(socks)
    with sock:
        if mode == "auth407":
            assert status == b"\x01\x01"
            assert recv_until_close(sock) == b""
        else:
            assert status == b"\x01\x00"
            check_socks5_mode(sock, tcp_echo, mode)
    assert (time.monotonic() - started >= SLOW) == (mode == "slow")
    entry = only_entry(socks)
    assert (entry["result"], entry["groups"]) == (mode, GROUPS)
    assert entry["target"] == (None if mode == "auth407" else f"127.0.0.1:{tcp_echo.port}")
    with Proxy.from_url(socks.proxy_url(USER)).connect("127.0.0.1", tcp_echo.port, timeout=5) as sock:
        sock.sendall(b"again")
        assert recv_exact(sock, 5) == b"again", "count=1 covers one handshake only"


def check_socks5_mode(sock: socket.socket, tcp_echo: TcpEcho, mode: str) -> None:
    request = b"\x05\x01\x00\x01" + socket.inet_aton("127.0.0.1") + tcp_echo.port.to_bytes(2, "big")
    sock.sendall(request)
    if mode == "reset":
        with pytest.raises(ConnectionResetError):
            sock.recv(1024)
    elif mode == "html":
        blob = recv_until_close(sock)
        assert blob.startswith(b"<!DOCTYPE html>") and b"FakeVendor" in blob
    else:
        reply = recv_exact(sock, 10)
        assert reply[:4] == bytes([5, SOCKS_REPLY.get(mode, 0), 0, 1])
        if mode in ("ok", "slow"):
            sock.sendall(b"ping")
            assert recv_exact(sock, 4) == b"ping"
        else:
            assert recv_until_close(sock) == b""


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_python_socks_tunnels_and_half_closes(socks: FakeVendor, tcp_echo: TcpEcho, host: str) -> None:
    with Proxy.from_url(socks.proxy_url(USER)).connect(host, tcp_echo.port, timeout=5) as sock:
        assert socks.stats() == {"connections": 1, "handshakes": 1}
        sock.sendall(b"hello")
        sock.shutdown(socket.SHUT_WR)
        assert recv_until_close(sock) == b"hello"
    entry = only_entry(socks)
    assert (entry["username"], entry["password"], entry["groups"]) == (USER, PASSWORD, GROUPS)
    assert (entry["target"], entry["result"]) == (f"{host}:{tcp_echo.port}", "ok")


def test_python_socks_rejects_a_bad_password(socks: FakeVendor, tcp_echo: TcpEcho) -> None:
    with pytest.raises(ProxyError):
        Proxy.from_url(socks.proxy_url(USER, "wrong")).connect("127.0.0.1", tcp_echo.port, timeout=5)
    assert only_entry(socks)["result"] == "auth"


def test_targets_off_loopback_and_refused_targets_fail(http: FakeVendor, socks: FakeVendor) -> None:
    closed = refused_port()
    for target, status in (("192.0.2.1:80", 403), (f"127.0.0.1:{closed}", 502)):
        with http_connect(http, target) as sock:
            head, body = recv_http_response(sock)
        assert head.startswith(b"HTTP/1.1 %d " % status) and b"FakeVendor" in body
    for host, port, code in (("192.0.2.1", 80, 0x02), ("127.0.0.1", closed, 0x05)):
        sock, _ = socks_login(socks)
        with sock:
            assert socks5_request(sock, 1, host, port)[1] == code
    for vendor in (http, socks):
        assert [entry["result"] for entry in vendor.log()] == ["denied", "refused"]


def test_mode_count_persistence_and_reset(http: FakeVendor, origin: Origin) -> None:
    target = f"127.0.0.1:{origin.port}"

    def status(username: str = USER, password: str = PASSWORD) -> bytes:
        with http_connect(http, target, username, password) as sock:
            return sock.recv(12)

    http.mode("forbidden403", count=2)
    assert status(password="wrong") == b"HTTP/1.1 407", "a bad credential consumes no misbehaviour"
    assert [status(), status(), status()] == [b"HTTP/1.1 403", b"HTTP/1.1 403", b"HTTP/1.1 200"]
    assert http.mode("session_gone502") == {"mode": "session_gone502", "count": None, "delay": 30.0}
    assert [status(), status()] == [b"HTTP/1.1 502", b"HTTP/1.1 502"]
    assert http.stats()["handshakes"] == 6
    http.reset()
    assert (http.log(), http.stats()["handshakes"], status()) == ([], 0, b"HTTP/1.1 200")


def test_stats_count_open_tunnels(http: FakeVendor, tcp_echo: TcpEcho) -> None:
    tunnels = [http_connect(http, f"127.0.0.1:{tcp_echo.port}") for _ in range(3)]
    for sock in tunnels:
        assert recv_exact(sock, len(ESTABLISHED)) == ESTABLISHED
    assert http.stats() == {"connections": 3, "handshakes": 3}
    for sock in tunnels:
        sock.close()
    deadline = time.monotonic() + 5
    while http.stats()["connections"] and time.monotonic() < deadline:
        time.sleep(0.02)
    assert http.stats()["connections"] == 0


def test_control_port_rejects_unknown_modes(http: FakeVendor) -> None:
    with pytest.raises(httpx.HTTPStatusError):
        http.mode("teapot")
    with pytest.raises(httpx.HTTPStatusError):
        http.mode("slow", count=0)


def test_config_json_and_no_log(origin: Origin) -> None:
    config = {"protocol": "http", "user_re": USER_RE, "password": PASSWORD, "no_log": True}
    command = [sys.executable, str(SERVER), "--config", json.dumps(config)]
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as proc:
        try:
            assert proc.stdout is not None
            line = proc.stdout.readline()
            match = re.fullmatch(r"ready (\d+) (\d+)\n", line)
            assert match, line
            url = f"http://127.0.0.1:{origin.port}/small"
            result = curl("-p", "-x", f"http://127.0.0.1:{match[1]}", "-U", f"{USER}:{PASSWORD}", url)
            assert result.stdout == "hello-from-origin\n"
            control = f"http://127.0.0.1:{match[2]}"
            assert httpx.get(f"{control}/log", trust_env=False).json() == []
            assert httpx.get(f"{control}/stats", trust_env=False).json() == {
                "connections": 0,
                "handshakes": 1,
            }
        finally:
            proc.terminate()
    assert proc.returncode == 0
