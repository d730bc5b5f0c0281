"""Upstream proxy vendors behind lanner: fake vendors (real CONNECT/SOCKS5 servers) and real clients.

Each fake vendor checks the credential string lanner renders, like a real vendor
would, and misbehaves on demand. Clients must only ever see lanner's generic
answers: the tests read the full bytes lanner sends and look for every vendor
string the fake vendors put in their pages and headers.
"""

from __future__ import annotations

import base64
import http.client
import re
import signal
import socket
import struct
import subprocess
import time
from typing import Any

import httpx
import pytest
import yaml
from python_socks import ProxyError
from python_socks.sync import Proxy

from tests.conftest import require_binary
from tests.integration.fake_vendor import MODES
from tests.integration.raw import recv_head
from tests.integration.servers import Origin, free_port
from tests.integration.vendors import FakeVendor, leaked_vendor_strings

TEMPLATE = "customer-acme[-cc-{country}][-city-{city}][-sessid-{session}][-sesstime-{ttl}]"
USER_RE = (
    r"customer-acme(?:-cc-(?P<country>[A-Z]{2}))?(?:-city-(?P<city>[a-z_]+))?"
    r"(?:-sessid-(?P<session>[a-z0-9]{10}))?(?:-sesstime-(?P<ttl>[0-9]+))?"
)


def vendor(start_vendor: Any, name: str, protocol: str = "http", **settings: Any) -> FakeVendor:
    started: FakeVendor = start_vendor(
        name, protocol=protocol, user_re=USER_RE, password="vendorpw", **settings
    )
    return started


def provider(name: str, fake: FakeVendor, **settings: Any) -> dict[str, Any]:
    return {
        "name": name,
        "protocol": fake.protocol,
        "endpoints": [fake.address],
        "username": TEMPLATE,
        "password": fake.password,
        "fields": {"country": {"case": "upper"}, "city": {"space": "_"}},
        "handshake_timeout": 2,
        **settings,
    }


def gateway(providers: list[dict[str, Any]], **vendors: Any) -> dict[str, Any]:
    return {
        "listeners": [{"name": "gw", "upstream_pool": "main"}],
        "users": [{"name": "alice", "password": "secret"}],
        "rules": [{"action": "allow", "cidrs": ["127.0.0.1/32"]}, {"action": "deny"}],
        "vendors": {
            "providers": providers,
            "pools": [{"name": "main", "providers": [item["name"] for item in providers]}],
            "session_secret": "integration-secret",
            **vendors,
        },
    }


def connect_raw(lanner: Any, user: str, target: str, password: str = "secret") -> tuple[bytes, socket.socket]:
    """A CONNECT through lanner: (everything lanner answered up to its head's end, or to close; the socket)."""
    sock = socket.create_connection(lanner.addr("gw"), timeout=10)
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    sock.sendall(
        f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\nProxy-Authorization: Basic {token}\r\n\r\n".encode()
    )
    data = recv_head(sock)
    if not data.startswith(b"HTTP/1.1 200"):
        data += _read_to_close(sock)
    return data, sock


def _read_to_close(sock: socket.socket) -> bytes:
    data = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except (ConnectionResetError, TimeoutError):
            return data
        if not chunk:
            return data
        data += chunk


def get_through(sock: socket.socket, path: str = "/small") -> bytes:
    """A GET over an established tunnel: the response's body (the origin keeps connections alive)."""
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: origin\r\n\r\n".encode())
    response = http.client.HTTPResponse(sock)
    response.begin()
    body = response.read()
    sock.close()
    return body


def tunnel_get(lanner: Any, user: str, origin: Origin) -> bytes:
    answer, sock = connect_raw(lanner, user, f"127.0.0.1:{origin.port}")
    assert answer.startswith(b"HTTP/1.1 200"), answer
    return get_through(sock)


def socks5_login(lanner: Any, user: str, password: str = "secret") -> tuple[socket.socket, bytes]:
    """A SOCKS5 greeting and RFC 1929 login by hand: (the socket, the authentication answer)."""
    sock = socket.create_connection(lanner.addr("gw"), timeout=10)
    sock.sendall(b"\x05\x01\x02")
    assert sock.recv(2) == b"\x05\x02"
    sock.sendall(b"\x01" + bytes([len(user)]) + user.encode() + bytes([len(password)]) + password.encode())
    return sock, sock.recv(2)


def socks5_raw(lanner: Any, user: str, host: str, port: int, password: str = "secret") -> tuple[bytes, bytes]:
    """A SOCKS5 CONNECT by hand: (the authentication answer, everything after it up to close or reply)."""
    sock, auth = socks5_login(lanner, user, password)
    if auth != b"\x01\x00":
        return auth, _read_to_close(sock)
    sock.sendall(b"\x05\x01\x00\x03" + bytes([len(host)]) + host.encode() + struct.pack("!H", port))
    reply = sock.recv(10)
    rest = b"" if reply[1:2] == b"\x00" else _read_to_close(sock)
    sock.close()
    return auth, reply + rest


def sessions_seen(fake: FakeVendor) -> list[str | None]:
    return [entry["groups"].get("session") for entry in fake.log() if entry["result"] == "ok"]


# -- routing parameters --


def test_parameters_reach_the_vendor_over_connect_http_and_socks5(
    start_lanner: Any, start_vendor: Any, origin: Origin
) -> None:
    fake = vendor(start_vendor, "acme")
    lanner = start_lanner(gateway([provider("acme", fake)]))
    host, port = lanner.addr("gw")
    target = f"http://127.0.0.1:{origin.port}/small"

    curl = require_binary("curl")
    out = subprocess.run(
        [curl, "-s", "-p", "-x", f"http://alice_country-de_session-cart42:secret@{host}:{port}", target],
        capture_output=True,
        timeout=20,
    )
    assert out.stdout == b"hello-from-origin\n", out
    with httpx.Client(
        proxy=f"http://alice_country-us_city-new+york:secret@{host}:{port}", trust_env=False
    ) as c:
        assert c.get(target).text == "hello-from-origin\n"  # absolute-form: tunnelled through the vendor
    proxy = Proxy.from_url(f"socks5://alice_country-fr_session-cart42_ttl-10m:secret@{host}:{port}")
    sock = proxy.connect("127.0.0.1", origin.port, timeout=10)
    assert get_through(sock).endswith(b"hello-from-origin\n")

    log = fake.log()
    assert [entry["result"] for entry in log] == ["ok", "ok", "ok"]
    assert all(
        entry["password"] == "vendorpw" and entry["target"] == f"127.0.0.1:{origin.port}" for entry in log
    )
    curl_entry, httpx_entry, socks_entry = (entry["groups"] for entry in log)
    assert curl_entry["country"] == "DE" and curl_entry["ttl"] == "10"  # the pool's default ttl, in minutes
    assert httpx_entry == {"country": "US", "city": "new_york", "session": None, "ttl": None}
    assert socks_entry["country"] == "FR" and socks_entry["ttl"] == "10"
    # One client session, one vendor session id: derived, not the client's own text.
    assert curl_entry["session"] == socks_entry["session"] != "cart42"


def test_keep_alive_requests_with_other_parameters_get_another_vendor_session(
    start_lanner: Any, start_vendor: Any, origin: Origin
) -> None:
    fake = vendor(start_vendor, "acme")
    lanner = start_lanner(gateway([provider("acme", fake)]))
    sock = socket.create_connection(lanner.addr("gw"), timeout=10)
    for user in ("alice_session-one", "alice_session-one", "alice_session-two"):
        token = base64.b64encode(f"{user}:secret".encode()).decode()
        url = f"http://127.0.0.1:{origin.port}/small"
        sock.sendall(f"GET {url} HTTP/1.1\r\nHost: x\r\nProxy-Authorization: Basic {token}\r\n\r\n".encode())
        response = http.client.HTTPResponse(sock)
        response.begin()
        assert response.read() == b"hello-from-origin\n"
    sock.close()
    sessions = sessions_seen(fake)
    assert len(sessions) == 2 and sessions[0] != sessions[1]  # the same session reused its tunnel


@pytest.mark.parametrize(
    ("username", "reason"),
    [
        ("alice_colour-blue", "unknown routing parameter 'colour'"),
        ("alice_country-usa", "malformed country value 'usa'"),
        ("alice_country-us_country-de", "parameter 'country' given twice"),
        ("alice_session", "malformed session value ''"),
        ("alice_pool-nowhere", "no vendor pool 'nowhere'"),
        ("alice_ttl-9999h", "ttl '9999h' is outside"),
    ],
)
def test_bad_parameters_are_refused_with_407_and_socks_auth_failure(
    start_lanner: Any, start_vendor: Any, origin: Origin, username: str, reason: str
) -> None:
    fake = vendor(start_vendor, "acme")
    lanner = start_lanner(gateway([provider("acme", fake)]))
    answer, sock = connect_raw(lanner, username, f"127.0.0.1:{origin.port}")
    sock.close()
    assert answer.startswith(b"HTTP/1.1 407 "), answer
    auth, _ = socks5_raw(lanner, username, "127.0.0.1", origin.port)
    assert auth == b"\x01\x01"
    lanner.wait_log(re.escape(reason))
    assert fake.log() == []  # refused before any vendor was asked
    assert tunnel_get(lanner, "alice_country-de", origin).endswith(b"hello-from-origin\n")  # still serving


# -- stickiness --


def test_sticky_sessions_hold_across_connections_workers_and_nodes(
    start_lanner: Any, start_vendor: Any, origin: Origin
) -> None:
    first, second = vendor(start_vendor, "first"), vendor(start_vendor, "second")
    config = gateway([provider("first", first), provider("second", second)])
    workers = start_lanner(config, "--workers", "2")
    for _ in range(8):  # new connections: spread over both workers by the kernel
        tunnel_get(workers, "alice_session-s1", origin)
    for _ in range(4):
        tunnel_get(workers, "alice_session-s2", origin)
    node = start_lanner(config)  # another node, no shared state
    for _ in range(4):
        tunnel_get(node, "alice_session-s1", origin)

    by_vendor = {fake: sessions_seen(fake) for fake in (first, second)}
    s1 = [(fake, sid) for fake, sids in by_vendor.items() for sid in sids[:]]
    assert len(s1) == 16
    # Every s1 tunnel (12: 8 + 4 on the second node) went to one vendor with one vendor session id.
    counts: dict[tuple[str, str | None], int] = {}
    for fake, sid in s1:
        counts[(fake.name, sid)] = counts.get((fake.name, sid), 0) + 1
    assert sorted(counts.values()) == [4, 12], counts


def test_a_session_expires_after_its_ttl(start_lanner: Any, start_vendor: Any, origin: Origin) -> None:
    fake = vendor(start_vendor, "acme")
    lanner = start_lanner(gateway([provider("acme", fake, ttl={"unit": "s", "min": 1})]))
    tunnel_get(lanner, "alice_session-short_ttl-2s", origin)
    tunnel_get(lanner, "alice_session-short_ttl-2s", origin)
    deadline = time.monotonic() + 10
    while len(set(sessions_seen(fake))) < 2 and time.monotonic() < deadline:
        time.sleep(0.3)
        tunnel_get(lanner, "alice_session-short_ttl-2s", origin)
    seen = sessions_seen(fake)
    assert len(set(seen)) >= 2, seen  # a new vendor session once the period ended
    assert seen[0] is not None and all(sid is not None and len(sid) == 10 for sid in seen)


def test_session_ip_gone_rotates_the_vendor_session_and_retries_once(
    start_lanner: Any, start_vendor: Any, origin: Origin
) -> None:
    fake = vendor(start_vendor, "acme")
    lanner = start_lanner(gateway([provider("acme", fake)]))
    tunnel_get(lanner, "alice_session-keep", origin)
    fake.mode("session_gone502", count=1)
    tunnel_get(lanner, "alice_session-keep", origin)  # the client never sees the 502
    tunnel_get(lanner, "alice_session-keep", origin)
    log = fake.log()
    assert [entry["result"] for entry in log] == ["ok", "session_gone502", "ok", "ok"]
    ids = [entry["groups"]["session"] for entry in log]
    assert ids[0] == ids[1] != ids[2] == ids[3]  # rotated once, and the new id sticks


def test_failover_pins_the_session_to_the_provider_that_served_it(
    start_lanner: Any, start_vendor: Any, origin: Origin
) -> None:
    fakes = {name: vendor(start_vendor, name) for name in ("first", "second")}
    lanner = start_lanner(gateway([provider(name, fake) for name, fake in fakes.items()]))
    tunnel_get(lanner, "alice_session-pinme", origin)
    chosen = next(name for name, fake in fakes.items() if fake.log())
    other = next(name for name in fakes if name != chosen)
    fakes[chosen].mode("geo525")  # no exit there any more
    tunnel_get(lanner, "alice_session-pinme", origin)
    assert len(fakes[other].log()) == 1
    fakes[chosen].mode("ok")
    fakes[chosen].reset()
    tunnel_get(lanner, "alice_session-pinme", origin)
    assert fakes[chosen].log() == []  # the session stays where it failed over to
    assert len(fakes[other].log()) == 2
    lanner.wait_log(f"pinned={other}")


def test_geo_capability_decides_which_provider_serves(
    start_lanner: Any, start_vendor: Any, origin: Origin
) -> None:
    cities, countries = vendor(start_vendor, "cities"), vendor(start_vendor, "countries")
    country_only = provider(
        "countries", countries, username="customer-acme[-cc-{country}][-sessid-{session}]"
    )
    lanner = start_lanner(gateway([provider("cities", cities), country_only]))
    for index in range(6):
        tunnel_get(lanner, f"alice_country-us_city-boston_session-c{index}", origin)
    assert len(cities.log()) == 6 and countries.log() == []
    answer, sock = connect_raw(lanner, "alice_asn-7922", f"127.0.0.1:{origin.port}")
    sock.close()
    assert answer.startswith(b"HTTP/1.1 503 "), answer  # nobody serves an ASN
    assert b"Proxy-Status: lanner; error=destination_unavailable" in answer


def test_whitelisted_provider_gets_no_credentials(
    start_lanner: Any, start_vendor: Any, origin: Origin
) -> None:
    fake = start_vendor("open", whitelist=True, user_re=".*", password="unused")
    listed = {"name": "open", "endpoints": [fake.address], "requires_whitelist": True}
    lanner = start_lanner(gateway([listed]))
    tunnel_get(lanner, "alice", origin)
    assert [(entry["username"], entry["result"]) for entry in fake.log()] == [(None, "ok")]


# -- sanitized failures --

FAILURE_MODES = [mode for mode in MODES if mode != "ok"]


@pytest.mark.parametrize("mode", FAILURE_MODES)
def test_vendor_failures_reach_http_clients_only_as_generic_answers(
    start_lanner: Any, start_vendor: Any, origin: Origin, mode: str
) -> None:
    fake = vendor(start_vendor, "acme")
    lanner = start_lanner(gateway([provider("acme", fake, handshake_timeout=1)]))
    fake.mode(mode, count=1, delay=5 if mode == "slow" else None)
    answer, sock = connect_raw(lanner, "alice_country-de", f"127.0.0.1:{origin.port}")
    sock.close()
    status = answer.split(b" ", 2)[1]
    assert status in (b"502", b"503"), answer
    assert re.search(rb"\r\nProxy-Status: lanner; error=[a-z_]+\r\n", answer), answer
    assert leaked_vendor_strings(answer) == [], answer
    assert str(fake.port).encode() not in answer and b"acme" not in answer
    lanner.wait_log("vendor_attempts=")
    if mode in ("auth407", "forbidden403"):  # lanner's own account is refused: alert, open the breaker
        lanner.wait_log(r"vendor refused lanner's account .*provider=acme")
        answer, sock = connect_raw(lanner, "alice_country-de", f"127.0.0.1:{origin.port}")
        sock.close()
        assert answer.startswith(b"HTTP/1.1 503 ") and leaked_vendor_strings(answer) == []
        assert len(fake.log()) == 1  # the open breaker keeps traffic away from the vendor
    else:  # the rest recover at once
        assert tunnel_get(lanner, "alice_country-de", origin).endswith(b"hello-from-origin\n")
    fake.mode(mode, count=1, delay=5 if mode == "slow" else None)
    host, port = lanner.addr("gw")
    with httpx.Client(
        proxy=f"http://alice_country-de:secret@{host}:{port}", trust_env=False, timeout=20
    ) as c:
        response = c.get(f"http://127.0.0.1:{origin.port}/small")  # absolute-form, tunnelled by lanner
    seen = b"".join(k + b": " + v + b"\n" for k, v in response.headers.raw) + response.content
    assert response.status_code in (502, 503) and leaked_vendor_strings(seen) == [], seen
    assert response.headers["proxy-status"].startswith("lanner; error=")


@pytest.mark.parametrize("mode", ["auth407", "forbidden403", "geo525", "reset", "html", "refuse_target"])
def test_socks5_vendor_failures_reach_socks_clients_as_generic_replies(
    start_lanner: Any, start_vendor: Any, origin: Origin, mode: str
) -> None:
    fake = vendor(start_vendor, "acme", protocol="socks5")
    lanner = start_lanner(gateway([provider("acme", fake)]))
    fake.mode(mode, count=1)
    auth, reply = socks5_raw(lanner, "alice_country-de", "127.0.0.1", origin.port)
    assert auth == b"\x01\x00"
    assert reply[:2] in (b"\x05\x01", b"\x05\x04"), reply  # general failure or host unreachable
    assert len(reply) == 10 and leaked_vendor_strings(reply) == []
    host, port = lanner.addr("gw")
    fake.mode(mode, count=1)
    with pytest.raises(ProxyError) as refused:
        Proxy.from_url(f"socks5://alice:secret@{host}:{port}").connect("127.0.0.1", origin.port, timeout=10)
    assert leaked_vendor_strings(str(refused.value).encode()) == []


def test_breaker_opens_probes_the_check_target_and_closes(
    start_lanner: Any, start_vendor: Any, origin: Origin
) -> None:
    flaky, steady = vendor(start_vendor, "flaky"), vendor(start_vendor, "steady")
    breaker = {"consecutive_failures": 2, "open_for": 1}
    config = gateway(
        [provider("flaky", flaky, breaker=breaker, weight=100), provider("steady", steady)],
        check_target=f"127.0.0.1:{origin.port}",
    )
    lanner = start_lanner(config)
    flaky.mode("reset")
    for _ in range(4):  # failover hides the resets from the client
        tunnel_get(lanner, "alice", origin)
    lanner.wait_log(r"provider breaker open .*provider=flaky")
    flaky.mode("ok")
    lanner.wait_log(r"provider breaker closed .*provider=flaky", timeout=15)
    lanner.wait_log(r"provider probe passed .*provider=flaky")
    flaky.reset()
    for _ in range(4):
        tunnel_get(lanner, "alice", origin)
    assert len(flaky.log()) >= 3  # weight 100: back in selection


def test_max_connections_sends_the_next_tunnel_elsewhere_or_503(
    start_lanner: Any, start_vendor: Any, origin: Origin
) -> None:
    fake = vendor(start_vendor, "acme")
    lanner = start_lanner(gateway([provider("acme", fake, max_connections=1)]))
    answer, held = connect_raw(lanner, "alice", f"127.0.0.1:{origin.port}")
    assert answer.startswith(b"HTTP/1.1 200")
    refused, sock = connect_raw(lanner, "alice", f"127.0.0.1:{origin.port}")
    sock.close()
    assert refused.startswith(b"HTTP/1.1 503 ") and leaked_vendor_strings(refused) == []
    assert get_through(held).endswith(b"hello-from-origin\n")
    deadline = time.monotonic() + 5
    while True:  # the held tunnel's end reaches lanner asynchronously
        answer, sock = connect_raw(lanner, "alice", f"127.0.0.1:{origin.port}")
        if answer.startswith(b"HTTP/1.1 200") or time.monotonic() > deadline:
            break
        sock.close()
        time.sleep(0.1)
    assert answer.startswith(b"HTTP/1.1 200"), answer
    assert get_through(sock).endswith(b"hello-from-origin\n")


def test_udp_associate_is_refused_where_connections_go_through_a_vendor(
    start_lanner: Any, start_vendor: Any, origin: Origin
) -> None:
    fake = vendor(start_vendor, "acme")
    lanner = start_lanner(gateway([provider("acme", fake)]))
    sock, auth = socks5_login(lanner, "alice")
    assert auth == b"\x01\x00"
    sock.sendall(b"\x05\x03\x00\x01\x00\x00\x00\x00\x00\x00")  # UDP ASSOCIATE
    assert sock.recv(10)[:2] == b"\x05\x07"  # command not supported: datagrams would bypass the vendor
    sock.close()
    lanner.wait_log("UDP ASSOCIATE on a connection routed through a vendor pool")
    assert tunnel_get(lanner, "alice", origin).endswith(b"hello-from-origin\n")


def test_a_destination_no_vendor_handshake_can_name_is_refused(
    start_lanner: Any, start_vendor: Any, origin: Origin
) -> None:
    fake = vendor(start_vendor, "acme")
    config = gateway([provider("acme", fake)])
    del config["rules"]  # the name goes to the vendor unresolved
    lanner = start_lanner(config)
    auth, reply = socks5_raw(lanner, "alice", "bad host.example", 80)
    assert auth == b"\x01\x00" and reply[:2] == b"\x05\x04", reply
    lanner.wait_log("bad host.example:80 cannot be sent to a vendor")
    answer, sock = connect_raw(lanner, "alice", "a" * 64 + ".example:443")  # a label IDNA refuses
    sock.close()
    assert answer.startswith(b"HTTP/1.1 502 ") and b"acme" not in answer, answer
    assert b"Proxy-Status: lanner; error=destination_not_found" in answer
    assert fake.log() == []
    assert tunnel_get(lanner, "alice", origin).endswith(b"hello-from-origin\n")


def test_a_vendor_added_to_the_file_is_used_after_sighup(
    start_lanner: Any, start_vendor: Any, origin: Origin
) -> None:
    first, added = vendor(start_vendor, "first"), vendor(start_vendor, "added")
    lanner = start_lanner(gateway([provider("first", first)]))
    answer, sock = connect_raw(lanner, "alice_provider-added", f"127.0.0.1:{origin.port}")
    sock.close()
    assert answer.startswith(b"HTTP/1.1 407 ")  # no such provider yet
    lanner.config["vendors"]["providers"].append(provider("added", added))
    lanner.config["vendors"]["pools"][0]["providers"].append("added")
    lanner.path.write_text(yaml.safe_dump(lanner.config))
    lanner.proc.send_signal(signal.SIGHUP)
    lanner.wait_log("config reloaded .*providers=2")
    assert tunnel_get(lanner, "alice_provider-added", origin).endswith(b"hello-from-origin\n")
    assert len(added.log()) == 1 and first.log() == []


# -- shared state --


def start_redis() -> tuple[subprocess.Popen[bytes], int]:
    binary = require_binary("redis-server")
    port = free_port()
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return proc, port
        except OSError:
            if time.monotonic() > deadline:
                proc.kill()
                raise
            time.sleep(0.05)


def test_nodes_share_pins_through_redis_and_survive_its_loss(
    start_lanner: Any, start_vendor: Any, origin: Origin
) -> None:
    redis_proc, redis_port = start_redis()
    try:
        fakes = {name: vendor(start_vendor, name) for name in ("first", "second")}
        config = gateway(
            [provider(name, fake) for name, fake in fakes.items()], state=f"redis://127.0.0.1:{redis_port}/0"
        )
        one, two = start_lanner(config), start_lanner(config)
        tunnel_get(one, "alice_session-shared", origin)
        chosen = next(name for name, fake in fakes.items() if fake.log())
        other = next(name for name in fakes if name != chosen)
        fakes[chosen].mode("geo525", count=1)
        tunnel_get(one, "alice_session-shared", origin)  # fails over on node one, pinned in Redis
        fakes[chosen].reset()
        tunnel_get(two, "alice_session-shared", origin)  # node two follows the shared pin
        assert fakes[chosen].log() == [], "node two ignored the pin node one stored in Redis"
        assert len(fakes[other].log()) == 2
        redis_proc.kill()
        redis_proc.wait()
        for lanner in (one, two):
            for index in range(3):
                tunnel_get(lanner, f"alice_session-after{index}", origin)
            lanner.wait_log("Redis unavailable, using local state")
    finally:
        redis_proc.kill()
        redis_proc.wait()


def test_admin_api_shows_providers_with_breaker_and_handshake_latency(
    start_lanner: Any, start_vendor: Any, tcp_echo: Any
) -> None:
    fake = vendor(start_vendor, "v1")
    lanner = start_lanner(gateway([provider("v1", fake)]))
    answer, sock = connect_raw(lanner, "alice", f"127.0.0.1:{tcp_echo.port}")
    assert answer.startswith(b"HTTP/1.1 200")
    sock.close()
    shown = httpx.get(f"{lanner.admin_url}/api/v1/upstreams", timeout=10).json()
    assert shown["pools"] == []
    (described,) = shown["providers"]
    assert (described["name"], described["breaker"], described["handshakes"]) == ("v1", "closed", 1)
    assert described["handshake_ms"] > 0
    assert "vendorpw" not in httpx.get(f"{lanner.admin_url}/api/v1/config", timeout=10).text
