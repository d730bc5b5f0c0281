"""PROXY protocol v1/v2: received from trusted peers (HAProxy among them), refused from others, sent to backends."""

from __future__ import annotations

import shutil
import socket
import ssl
import struct
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import trustme

from tests.conftest import require
from tests.integration.backends import echoed_headers, write_certificate
from tests.integration.raw import exchange
from tests.integration.servers import free_port, wait_port
from tests.integration.store_reads import wait_flows

V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"


def v2_header(source: str, source_port: int, destination: str, destination_port: int) -> bytes:
    """A v2 PROXY/TCP4 header written out by hand from the spec (not with lanner's encoder)."""
    block = (
        socket.inet_aton(source)
        + socket.inet_aton(destination)
        + struct.pack("!HH", source_port, destination_port)
    )
    return V2_SIGNATURE + bytes([0x21, 0x11]) + struct.pack("!H", len(block)) + block


def request(path: str = "/") -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: api.example\r\nConnection: close\r\n\r\n".encode()


def forwarded_for(raw: bytes) -> list[str]:
    import json

    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 "), raw[:200]
    headers: dict[str, list[str]] = {}
    for name, value in json.loads(body)["headers"]:
        headers.setdefault(name.lower(), []).append(value)
    return headers["x-forwarded-for"]


def reverse_listener(backend: Any, trusted: list[str] | None, **extra: Any) -> dict[str, Any]:
    listener: dict[str, Any] = {"name": "api", "type": "reverse", "routes": [{"pool": "p"}], **extra}
    if trusted is not None:
        listener["proxy_protocol"] = {"trusted": trusted}
    return {"listeners": [listener], "pools": [{"name": "p", "backends": [{"address": backend.address}]}]}


def test_v1_and_v2_from_a_trusted_peer_set_the_client_address(start_lanner: Any, start_backend: Any) -> None:
    backend = start_backend("b")
    lanner = start_lanner(reverse_listener(backend, ["127.0.0.0/8"]))
    port = lanner.addr("api")[1]
    v1 = exchange(port, b"PROXY TCP4 203.0.113.7 10.0.0.1 5555 80\r\n" + request("/v1"))
    assert forwarded_for(v1) == ["203.0.113.7"]
    v2 = exchange(port, v2_header("198.51.100.8", 6666, "10.0.0.1", 80) + request("/v2"))
    assert forwarded_for(v2) == ["198.51.100.8"]
    v6 = exchange(port, b"PROXY TCP6 2001:db8::5 2001:db8::1 7777 80\r\n" + request("/v6"))
    assert forwarded_for(v6) == ["2001:db8::5"]
    local = exchange(port, V2_SIGNATURE + bytes([0x20, 0x00, 0, 0]) + request("/local"))
    assert forwarded_for(local) == ["127.0.0.1"]  # LOCAL: the peer's own connection
    lanner.wait_log(r"client=203\.0\.113\.7:5555 .*proxied_by=127\.0\.0\.1:\d+")
    flows = wait_flows(lanner.store_path, 4)
    clients = {flow.path: flow.client for flow in flows}
    assert clients["/v1"] == "203.0.113.7:5555"
    assert clients["/v2"] == "198.51.100.8:6666"
    assert clients["/v6"] == "2001:db8::5:7777"
    assert clients["/local"].startswith("127.0.0.1:")


def test_malformed_headers_from_a_trusted_peer_are_refused(start_lanner: Any, start_backend: Any) -> None:
    backend = start_backend("b")
    lanner = start_lanner(reverse_listener(backend, ["127.0.0.0/8"]))
    port = lanner.addr("api")[1]
    bad = [
        b"PROXY TCP4 203.0.113.7 10.0.0.1 5555\r\n",  # a port missing
        b"PROXY TCP4 999.0.113.7 10.0.0.1 5555 80\r\n",  # not an address
        b"PROXY TCP5 1.2.3.4 1.2.3.4 1 2\r\n",
        b"PROXY " + b"9" * 200,  # past 107 bytes without CRLF
        V2_SIGNATURE + bytes([0x31, 0x11, 0, 12]) + bytes(12),  # version 3
        V2_SIGNATURE + bytes([0x21, 0x11, 0, 4]) + bytes(4),  # address block too short
        request(),  # no header at all: a trusted peer must send one
    ]
    for data in bad:
        assert exchange(port, data) == b""  # closed, no answer
    lanner.wait_log(r"outcome=bad_request detail=\"?bad PROXY header from a trusted peer")
    assert forwarded_for(exchange(port, b"PROXY TCP4 192.0.2.1 10.0.0.1 1 80\r\n" + request())) == [
        "192.0.2.1"
    ]


def test_untrusted_peers_cannot_send_a_header_but_are_served(start_lanner: Any, start_backend: Any) -> None:
    backend = start_backend("b")
    lanner = start_lanner(reverse_listener(backend, ["10.0.0.0/8"]))
    port = lanner.addr("api")[1]
    assert exchange(port, b"PROXY TCP4 203.0.113.7 10.0.0.1 5555 80\r\n" + request()) == b""
    assert exchange(port, v2_header("203.0.113.7", 1, "10.0.0.1", 80) + request()) == b""
    lanner.wait_log(r"PROXY header from 127\.0\.0\.1:\d+, which is not trusted to send one")
    assert forwarded_for(exchange(port, request())) == ["127.0.0.1"]  # a direct client
    put = exchange(port, b"PUT /p HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
    assert put.startswith(b"HTTP/1.1 200 ")  # "P" began a method, not a header


def test_a_listener_not_configured_never_reads_a_header(start_lanner: Any, start_backend: Any) -> None:
    backend = start_backend("b")
    lanner = start_lanner(reverse_listener(backend, None))
    port = lanner.addr("api")[1]
    answer = exchange(port, b"PROXY TCP4 203.0.113.7 10.0.0.1 5555 80\r\n" + request())
    assert answer.startswith(b"HTTP/1.1 400 ")  # an HTTP request it is not
    assert forwarded_for(exchange(port, request())) == ["127.0.0.1"]


def test_proxy_protocol_on_a_tcp_listener(start_lanner: Any, tcp_echo: Any) -> None:
    lanner = start_lanner(
        {
            "listeners": [
                {
                    "name": "tcp",
                    "type": "tcp",
                    "target": f"127.0.0.1:{tcp_echo.port}",
                    "proxy_protocol": {"trusted": ["127.0.0.1/32"]},
                }
            ]
        }
    )
    port = lanner.addr("tcp")[1]
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(b"PROXY TCP4 192.0.2.44 10.0.0.1 4444 80\r\nhello")
        assert sock.recv(100) == b"hello"  # the header is not passed on
    lanner.wait_log(r"client=192\.0\.2\.44:4444 .*proxied_by=")


# -- with a real HAProxy --


def haproxy_binary() -> str:
    path = shutil.which("haproxy") or shutil.which("haproxy", path="/usr/sbin:/sbin")
    require(path is not None, "haproxy is not installed (scripts/system-deps.sh installs it)")
    assert path is not None
    return path


@pytest.fixture
def haproxy(tmp_path: Path) -> Iterator[Any]:
    binary = haproxy_binary()
    started: list[subprocess.Popen[bytes]] = []

    def start(config: str) -> None:
        path = tmp_path / f"haproxy-{len(started)}.cfg"
        path.write_text(config)
        check = subprocess.run([binary, "-c", "-f", str(path)], capture_output=True, text=True)
        assert check.returncode == 0, check.stdout + check.stderr
        started.append(
            subprocess.Popen(
                [binary, "-db", "-f", str(path)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )
        )

    yield start
    for process in started:
        process.terminate()
        process.wait(10)


def haproxy_config(frontend: str, backend: str, mode: str = "tcp") -> str:
    return f"""
global
    maxconn 256
defaults
    mode {mode}
    timeout connect 5s
    timeout client 30s
    timeout server 30s
frontend front
    {frontend}
    default_backend back
backend back
    {backend}
"""


def test_haproxy_send_proxy_v2_in_front_of_lanner(
    start_lanner: Any, start_backend: Any, haproxy: Any, test_ca: trustme.CA, tmp_path: Path
) -> None:
    backend = start_backend("b")
    cert, key, ca = write_certificate(test_ca, tmp_path)
    https = {"name": "secure", "type": "reverse", "routes": [{"pool": "p"}],
             "certificates": [{"cert": str(cert), "key": str(key)}],
             "proxy_protocol": {"trusted": ["127.0.0.1/32"]}}  # fmt: skip
    config = reverse_listener(backend, ["127.0.0.1/32"])
    config["listeners"].append(https)
    lanner = start_lanner(config)
    front, secure_front = free_port(), free_port()
    haproxy(
        haproxy_config(
            f"bind 127.0.0.1:{front}", f"server lanner 127.0.0.1:{lanner.addr('api')[1]} send-proxy-v2"
        )
    )
    haproxy(
        haproxy_config(
            f"bind 127.0.0.1:{secure_front}",
            f"server lanner 127.0.0.1:{lanner.addr('secure')[1]} send-proxy-v2",
        )
    )
    wait_port(front)
    wait_port(secure_front)
    # The client comes from 127.0.0.7: only the PROXY header can tell lanner so.
    transport = httpx.HTTPTransport(local_address="127.0.0.7")
    with httpx.Client(transport=transport) as client:
        response = client.get(f"http://127.0.0.1:{front}/through-haproxy")
    assert echoed_headers(response)["x-forwarded-for"] == ["127.0.0.7"]
    secure_transport = httpx.HTTPTransport(
        local_address="127.0.0.8", verify=ssl.create_default_context(cafile=str(ca))
    )
    with httpx.Client(transport=secure_transport) as client:
        # TLS starts after the header (HAProxy in TCP mode passes the client's TLS through).
        response = client.get(f"https://127.0.0.1:{secure_front}/tls")
    assert echoed_headers(response)["x-forwarded-for"] == ["127.0.0.8"]
    assert echoed_headers(response)["x-forwarded-proto"] == ["https"]
    lanner.wait_log(r"client=127\.0\.0\.7:\d+ .*proxied_by=127\.0\.0\.1")


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_lanner_sends_proxy_headers_haproxy_accepts(
    start_lanner: Any, start_backend: Any, haproxy: Any, version: str
) -> None:
    backend = start_backend("b")
    accepting = free_port()
    haproxy(
        haproxy_config(
            f"bind 127.0.0.1:{accepting} accept-proxy\n    option forwardfor",
            f"server app {backend.address}",
            mode="http",
        )
    )
    wait_port(accepting)
    lanner = start_lanner(
        {
            "listeners": [{"name": "api", "type": "reverse", "routes": [{"pool": "p"}]}],
            "pools": [{"name": "p", "send_proxy": version, "backends": [{"address": f"127.0.0.1:{accepting}"}],
                       "health": {"path": "/health", "interval": 0.3}}],
        }
    )  # fmt: skip
    url = f"http://127.0.0.1:{lanner.addr('api')[1]}"
    for local in ("127.0.0.9", "127.0.0.10"):
        with httpx.Client(transport=httpx.HTTPTransport(local_address=local)) as client:
            headers = echoed_headers(client.get(f"{url}/proxied"))
        # lanner's own X-Forwarded-For, then HAProxy's, which it took from lanner's PROXY header.
        assert headers["x-forwarded-for"] == [f"{local}, {local}"] or headers["x-forwarded-for"] == [
            local,
            local,
        ]
    time.sleep(1)  # health checks with PROXY headers (LOCAL) pass: the backend stays up
    assert httpx.get(f"{url}/again").status_code == 200
    assert "backend down" not in lanner.log()


def test_rules_see_the_client_the_header_names(start_lanner: Any, start_backend: Any) -> None:
    backend = start_backend("b")
    config = reverse_listener(backend, ["127.0.0.0/8"])
    config["rules"] = [{"action": "deny", "clients": ["203.0.113.0/24"]}]
    lanner = start_lanner(config)
    port = lanner.addr("api")[1]
    denied = exchange(port, b"PROXY TCP4 203.0.113.7 10.0.0.1 5555 80\r\n" + request("/denied"))
    assert denied.startswith(b"HTTP/1.1 403 ")
    assert forwarded_for(exchange(port, b"PROXY TCP4 198.51.100.1 10.0.0.1 1 80\r\n" + request())) == [
        "198.51.100.1"
    ]
    lanner.wait_log(r"outcome=denied detail=\"?a rule denies api.example to 203\.0\.113\.7:5555")
