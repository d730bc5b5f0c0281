"""SOCKS details with raw clients: address types, UDP ASSOCIATE, authentication, SOCKS4 userid."""

from __future__ import annotations

import socket
import struct
from typing import Any

import pytest

from tests.conftest import require
from tests.integration.raw import (
    connect,
    recv_exact,
    socks4_request,
    socks5_connect,
    socks5_greet,
    socks5_request,
)
from tests.integration.servers import TcpEcho, UdpEcho


def has_ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as sock:
            sock.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.fixture(scope="module")
def proxy(module_lanner: Any) -> Any:
    return module_lanner({"listeners": [{"name": "forward"}]})


@pytest.fixture(scope="module")
def auth_proxy(module_lanner: Any) -> Any:
    return module_lanner(
        {
            "listeners": [{"name": "forward"}],
            "users": [
                {"name": "alice", "password": "wonderland"},
                {"name": "bob", "password": "builder", "socks4": True},
            ],
            "rules": [{"action": "deny", "users": ["alice"], "ports": [9]}],
        }
    )


def echo_roundtrip(sock: socket.socket, payload: bytes = b"ping") -> bytes:
    sock.sendall(payload)
    return recv_exact(sock, len(payload))


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_socks5_connect_ipv4_and_domain(proxy: Any, tcp_echo: TcpEcho, host: str) -> None:
    sock, code = socks5_connect(proxy.port, host, tcp_echo.port)
    assert code == 0
    assert echo_roundtrip(sock) == b"ping"
    sock.close()


def test_socks5_connect_ipv6(proxy: Any) -> None:
    require(has_ipv6_loopback(), "this machine has no IPv6 loopback")
    echo = TcpEcho(host="::1")
    try:
        sock, code = socks5_connect(proxy.port, "::1", echo.port)
        assert code == 0
        assert echo_roundtrip(sock) == b"ping"
        sock.close()
    finally:
        echo.close()


def test_socks5_half_close_passes_eof_on(proxy: Any, tcp_echo: TcpEcho) -> None:
    sock, code = socks5_connect(proxy.port, "127.0.0.1", tcp_echo.port)
    assert code == 0
    sock.sendall(b"last words")
    sock.shutdown(socket.SHUT_WR)  # the echo server answers, then closes its side
    data = b""
    while chunk := sock.recv(4096):
        data += chunk
    assert data == b"last words"


def test_socks5_bind_reply_address(proxy: Any, tcp_echo: TcpEcho) -> None:
    sock = connect(proxy.port)
    socks5_greet(sock)
    reply = socks5_request(sock, 1, "127.0.0.1", tcp_echo.port)
    assert reply[:4] == b"\x05\x00\x00\x01"
    assert socket.inet_ntoa(reply[4:8]) == "127.0.0.1"
    assert struct.unpack("!H", reply[8:10])[0] > 0
    sock.close()


def test_udp_associate_relays_datagrams(proxy: Any, udp_echo: UdpEcho) -> None:
    control = connect(proxy.port)
    socks5_greet(control)
    reply = socks5_request(control, 3, "0.0.0.0", 0)
    assert reply[1] == 0
    relay = (socket.inet_ntoa(reply[4:8]), struct.unpack("!H", reply[8:10])[0])
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.settimeout(5)
    header = b"\x00\x00\x00\x01" + socket.inet_aton("127.0.0.1") + struct.pack("!H", udp_echo.port)
    for index in range(3):
        udp.sendto(header + b"datagram %d" % index, relay)
        data, source = udp.recvfrom(65536)
        assert source == relay
        assert data == header + b"echo:datagram %d" % index
    # By name too: the relay resolves it.
    named = b"\x00\x00\x00\x03\x09localhost" + struct.pack("!H", udp_echo.port)
    udp.sendto(named + b"by-name", relay)
    data, _ = udp.recvfrom(65536)
    assert data.endswith(b"echo:by-name")
    # A fragmented datagram is dropped (and counted), not relayed.
    udp.sendto(b"\x00\x00\x01" + header[3:] + b"fragment", relay)
    udp.sendto(header + b"after", relay)
    data, _ = udp.recvfrom(65536)
    assert data == header + b"echo:after"
    control.close()
    udp.close()
    proxy.wait_log(r"proto=socks5-udp .*outcome=ok.* udp_dropped=1")


def test_bind_is_not_supported(proxy: Any) -> None:
    sock = connect(proxy.port)
    socks5_greet(sock)
    assert socks5_request(sock, 2, "127.0.0.1", 80)[1] == 0x07
    sock.close()


def test_socks5_username_password(auth_proxy: Any, tcp_echo: TcpEcho) -> None:
    sock = connect(auth_proxy.port)
    assert socks5_greet(sock, b"\x00\x02") == b"\x05\x02"
    sock.sendall(b"\x01\x05alice\x0awonderland")
    assert recv_exact(sock, 2) == b"\x01\x00"
    assert socks5_request(sock, 1, "127.0.0.1", tcp_echo.port)[1] == 0
    assert echo_roundtrip(sock) == b"ping"
    sock.close()
    auth_proxy.wait_log(r"proto=socks5 user=alice .*outcome=ok")


def test_rules_match_the_account_not_the_presented_name(auth_proxy: Any) -> None:
    def connect_as(username: bytes, password: bytes) -> int:
        sock = connect(auth_proxy.port)
        assert socks5_greet(sock, b"\x02") == b"\x05\x02"
        sock.sendall(b"\x01" + bytes([len(username)]) + username + bytes([len(password)]) + password)
        assert recv_exact(sock, 2) == b"\x01\x00"
        code = socks5_request(sock, 1, "127.0.0.1", 9)[1]
        sock.close()
        return code

    assert connect_as(b"alice_country-us_session-7", b"wonderland") == 0x02  # the rule names alice
    assert connect_as(b"bob", b"builder") == 0x05  # not denied: nothing listens on port 9
    auth_proxy.wait_log(r"user=alice_country-us_session-7 .*outcome=denied")


def test_socks5_no_acceptable_method_when_auth_required(auth_proxy: Any) -> None:
    sock = connect(auth_proxy.port)
    assert socks5_greet(sock, b"\x00") == b"\x05\xff"
    assert sock.recv(10) == b""


def test_socks4_userid_identifies_only_allowed_users(auth_proxy: Any, tcp_echo: TcpEcho) -> None:
    sock, reply = socks4_request(auth_proxy.port, "127.0.0.1", tcp_echo.port, b"bob")
    assert reply[1] == 90
    assert echo_roundtrip(sock) == b"ping"
    sock.close()
    sock, reply = socks4_request(auth_proxy.port, "127.0.0.1", tcp_echo.port, b"alice")
    assert reply[1] == 91
    sock.close()
    auth_proxy.wait_log(r"proto=socks4 user=alice .*outcome=auth_failed")


def test_socks4a_domain(proxy: Any, tcp_echo: TcpEcho) -> None:
    sock, reply = socks4_request(proxy.port, "localhost", tcp_echo.port, b"anyone")
    assert reply[1] == 90
    assert echo_roundtrip(sock) == b"ping"
    sock.close()
