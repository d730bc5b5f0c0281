"""TLS interception: curl, httpx and Python ssl through lanner to an HTTPS origin with its own CA."""

from __future__ import annotations

import socket
import ssl
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import trustme

from tests.conftest import require_binary
from tests.integration.servers import Origin
from tests.integration.store_reads import wait_connection_records, wait_flows, whole


def lanner_ca(lanner: Any) -> str:
    return str(Path(lanner.config["data_dir"]) / "ca" / "ca.pem")


def trusting(lanner: Any) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=lanner_ca(lanner))


@pytest.fixture(scope="module")
def mitm(module_lanner: Any, ca_file: Path) -> Any:
    return module_lanner(
        {
            "listeners": [{"name": "forward"}],
            "intercept": [
                {"action": "bypass", "hosts": ["bypassed.localhost"]},
                {"hosts": ["localhost", "127.0.0.1", "*.example"], "ca_file": str(ca_file)},
                {"hosts": ["untrusted.localhost"]},  # verifies against the system store only
            ],
            "tls": {"pinning_failures": 3},
        }
    )


def connect_tunnel(proxy: Any, host: str, port: int) -> socket.socket:
    """A raw CONNECT through lanner; the socket is positioned after the 200."""
    sock = socket.create_connection(proxy.addr(), timeout=10)
    sock.sendall(f"CONNECT {host}:{port} HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode())
    head = b""
    while not head.endswith(b"\r\n\r\n"):
        chunk = sock.recv(1)
        assert chunk, head
        head += chunk
    assert head.startswith(b"HTTP/1.1 200"), head
    return sock


def tls_get(sock: socket.socket, context: ssl.SSLContext, name: str, path: str = "/small") -> bytes:
    with context.wrap_socket(sock, server_hostname=name) as tls:
        tls.sendall(f"GET {path} HTTP/1.1\r\nHost: {name}\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := tls.recv(65536):
            data += chunk
        return data


def test_curl_trusting_lanner_ca_is_intercepted_and_recorded(mitm: Any, tls_origin: Origin) -> None:
    require_binary("curl")
    url = f"https://localhost:{tls_origin.port}/small?tag=curl-mitm"
    out = subprocess.run(
        ["curl", "-sS", "--fail", "--cacert", lanner_ca(mitm), "-x", mitm.http_proxy, url],
        capture_output=True,
        check=True,
    )
    assert out.stdout == b"hello-from-origin\n"
    (flow,) = wait_flows(mitm.store_path, 1, "url:*tag=curl-mitm*")
    assert (flow.scheme, flow.host, flow.port, flow.status) == ("https", "localhost", tls_origin.port, 200)
    assert flow.url == url
    assert whole(mitm.store_path, flow.id).response_body.data == b"hello-from-origin\n"
    listed = subprocess.run(
        [
            sys.executable,
            "-m",
            "lanner",
            "flows",
            "--db",
            str(mitm.store_path),
            "list",
            "url:*tag=curl-mitm*",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert f"https://localhost:{tls_origin.port}/small" in listed.stdout


def test_httpx_keeps_one_intercepted_connection_for_many_requests(mitm: Any, tls_origin: Origin) -> None:
    base = f"https://localhost:{tls_origin.port}"
    with httpx.Client(proxy=mitm.http_proxy, verify=trusting(mitm)) as client:
        for index in range(20):
            response = client.post(f"{base}/echo?tag=httpx-ka-{index}", content=b"payload-%d" % index)
            assert response.status_code == 200 and response.content == b"payload-%d" % index
        assert client.get(f"{base}/chunked").text == "first,second,third"
    flows = wait_flows(mitm.store_path, 20, "url:*tag=httpx-ka-*")
    assert {flow.conn_uid for flow in flows} == {flows[0].conn_uid}  # one tunnel carried them all
    connection = wait_connection_records(mitm.store_path, lambda c: c.uid == flows[0].conn_uid)
    assert connection.protocol == "https" and connection.sni == "localhost"


def test_socks5_tunnels_are_intercepted_too(mitm: Any, tls_origin: Origin) -> None:
    proxy = f"socks5://127.0.0.1:{mitm.port}"
    with httpx.Client(proxy=proxy, verify=trusting(mitm)) as client:
        response = client.get(f"https://localhost:{tls_origin.port}/small?tag=socks-mitm")
    assert response.text == "hello-from-origin\n"
    (flow,) = wait_flows(mitm.store_path, 1, "url:*tag=socks-mitm*")
    assert flow.scheme == "https"


def test_a_leaf_for_an_ip_address_carries_an_ip_san(mitm: Any, tls_origin: Origin) -> None:
    context = ssl.create_default_context(cafile=lanner_ca(mitm))
    sock = connect_tunnel(mitm, "127.0.0.1", tls_origin.port)
    assert tls_get(sock, context, "127.0.0.1").endswith(b"hello-from-origin\n")


def test_unverifiable_upstream_gets_a_502_page_inside_the_session(mitm: Any, tls_origin: Origin) -> None:
    # untrusted.localhost resolves to 127.0.0.1 and the origin's certificate is from a private CA.
    url = f"https://untrusted.localhost:{tls_origin.port}/small?tag=unverified"
    with httpx.Client(proxy=mitm.http_proxy, verify=trusting(mitm)) as client:
        response = client.get(url)
    assert response.status_code == 502
    assert "did not verify" in response.text
    (flow,) = wait_flows(mitm.store_path, 1, "url:*tag=unverified*")
    assert flow.status is None and "did not verify" in (flow.error or "")


def test_h2_only_clients_are_passed_through(mitm: Any, tls_origin: Origin, test_ca: trustme.CA) -> None:
    context = ssl.create_default_context()
    test_ca.configure_trust(context)  # the origin's own certificate: nothing in between
    context.set_alpn_protocols(["h2"])
    sock = connect_tunnel(mitm, "localhost", tls_origin.port)
    assert tls_get(sock, context, "localhost").endswith(b"hello-from-origin\n")
    mitm.wait_log(r"intercept=.?bypassed: client offers only h2")


def test_hosts_no_rule_intercepts_stay_tunnels(mitm: Any, tls_origin: Origin, test_ca: trustme.CA) -> None:
    context = ssl.create_default_context()
    test_ca.configure_trust(context)
    sock = connect_tunnel(mitm, "bypassed.localhost", tls_origin.port)
    assert tls_get(sock, context, "localhost").endswith(b"hello-from-origin\n")
    record = wait_connection_records(
        mitm.store_path, lambda c: c.dest == f"bypassed.localhost:{tls_origin.port}"
    )
    assert record.protocol == "connect" and record.sni == "localhost"


def test_pinning_clients_are_recorded_then_passed_through(
    start_lanner: Any, tls_origin: Origin, test_ca: trustme.CA, ca_file: Path
) -> None:
    lanner = start_lanner(
        {"intercept": [{"hosts": ["*"], "ca_file": str(ca_file)}], "tls": {"pinning_failures": 2}}
    )
    pinned = ssl.create_default_context()
    test_ca.configure_trust(pinned)  # trusts the origin's CA only, never lanner's
    for _attempt in range(2):
        sock = connect_tunnel(lanner, "localhost", tls_origin.port)
        with pytest.raises(ssl.SSLCertVerificationError):
            tls_get(sock, pinned, "localhost")
    record = wait_connection_records(lanner.store_path, lambda c: c.outcome == "tls_failed")
    assert "client TLS handshake for localhost failed" in (record.detail or "")
    lanner.wait_log("passing the host through un-intercepted")
    sock = connect_tunnel(lanner, "localhost", tls_origin.port)
    assert tls_get(sock, pinned, "localhost").endswith(b"hello-from-origin\n")
    lanner.wait_log(r"bypassed: localhost refused lanner's certificate before")


def test_verify_false_reaches_an_untrusted_origin(start_lanner: Any, tls_origin: Origin) -> None:
    lanner = start_lanner({"intercept": [{"hosts": ["localhost"], "verify": False}]})
    with httpx.Client(proxy=lanner.http_proxy, verify=trusting(lanner)) as client:
        assert client.get(f"https://localhost:{tls_origin.port}/small").text == "hello-from-origin\n"


def test_intercept_flag_on_the_command_line(start_lanner: Any, tls_origin: Origin) -> None:
    require_binary("curl")
    lanner = start_lanner({"listeners": [{"name": "forward"}]}, "--intercept", "local*")
    url = f"https://localhost:{tls_origin.port}/small"
    # The origin's private CA is not trusted upstream, so the answer is lanner's 502 page.
    out = subprocess.run(
        ["curl", "-sS", "--cacert", lanner_ca(lanner), "-x", lanner.http_proxy, url],
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.startswith("502 Bad Gateway") and "did not verify" in out.stdout


def test_a_burst_of_new_hosts_does_not_stall_other_connections(mitm: Any, tls_origin: Origin) -> None:
    """200 tunnels, each to a name lanner has never issued a certificate for, at once."""
    context = ssl.create_default_context(cafile=lanner_ca(mitm))
    stop = threading.Event()
    rounds: list[float] = []

    def keep_asking() -> None:  # one kept-alive intercepted connection, asking all the while
        with httpx.Client(proxy=mitm.http_proxy, verify=trusting(mitm)) as client:
            while not stop.is_set():
                started = time.monotonic()
                client.get(f"https://localhost:{tls_origin.port}/small").raise_for_status()
                rounds.append(time.monotonic() - started)

    def new_host(index: int) -> bytes:
        sock = connect_tunnel(mitm, "127.0.0.1", tls_origin.port)
        return tls_get(sock, context, f"burst-{index}-{time.time_ns()}.example")

    asker = threading.Thread(target=keep_asking)
    asker.start()
    while not rounds:
        time.sleep(0.01)
    before = len(rounds)
    results: list[bytes] = []
    threads = [threading.Thread(target=lambda i=i: results.append(new_host(i))) for i in range(200)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    during = len(rounds) - before
    stop.set()
    asker.join(10)
    # The origin's certificate names localhost, not burst-*.example: lanner answers its 502 page,
    # which proves each client completed a handshake with a freshly issued leaf.
    assert len(results) == 200
    assert all(result.startswith(b"HTTP/1.1 502") and b"did not verify" in result for result in results)
    assert during > 0  # the kept-alive connection went on being served during the burst
    print(f"kept-alive requests during the burst: {during}, slowest {max(rounds) * 1000:.0f} ms")


def test_large_bodies_stream_both_ways_through_interception(mitm: Any, tls_origin: Origin) -> None:
    base = f"https://localhost:{tls_origin.port}"
    upload = bytes(range(256)) * 40_000  # 10 MiB
    with httpx.Client(proxy=mitm.http_proxy, verify=trusting(mitm), timeout=60) as client:
        download = client.get(f"{base}/big?n=20000000")
        assert download.status_code == 200 and len(download.content) == 20_000_000
        echoed = client.post(f"{base}/echo", content=upload)
        assert echoed.content == upload


def test_a_client_that_is_not_tls_inside_the_tunnel_is_passed_through(mitm: Any, origin: Origin) -> None:
    sock = connect_tunnel(mitm, "127.0.0.1", origin.port)  # a plain HTTP origin, intercept rule matches
    sock.sendall(b"GET /small HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    sock.close()
    assert data.endswith(b"hello-from-origin\n")
    mitm.wait_log(r"intercept=.?bypassed: not a TLS ClientHello")


def test_a_client_leaving_mid_hello_is_logged_and_lanner_keeps_serving(mitm: Any, tls_origin: Origin) -> None:
    from tests.unit.wire.test_tls_hello import client_hello

    hello = client_hello("localhost")
    sock = connect_tunnel(mitm, "localhost", tls_origin.port)
    sock.sendall(hello[: len(hello) // 2])
    sock.close()
    mitm.wait_log(r"bypassed: client closed before its ClientHello")
    context = trusting(mitm)
    assert tls_get(connect_tunnel(mitm, "localhost", tls_origin.port), context, "localhost").endswith(
        b"hello-from-origin\n"
    )


def test_a_client_leaving_right_after_its_hello_still_gets_a_connection_record(
    start_lanner: Any, tls_origin: Origin, ca_file: Path
) -> None:
    from tests.unit.wire.test_tls_hello import client_hello

    lanner = start_lanner({"intercept": [{"hosts": ["*"], "ca_file": str(ca_file)}]})
    for index in range(5):  # the first needs a new leaf (issued in a thread), the rest hit the cache
        sock = connect_tunnel(lanner, "localhost", tls_origin.port)
        sock.sendall(client_hello(f"gone{index}.localhost"))
        sock.close()
    for index in range(5):
        line = lanner.wait_log(rf"connection id=\w+\.\d+ [^\n]*sni=gone{index}.localhost[^\n]*").group(0)
        assert "client left" in line or "TLS handshake" in line
    assert tls_get(
        connect_tunnel(lanner, "localhost", tls_origin.port), trusting(lanner), "localhost"
    ).endswith(b"hello-from-origin\n")


def test_a_tunnel_that_never_sends_its_hello_is_closed_at_the_handshake_timeout(
    start_lanner: Any, tls_origin: Origin
) -> None:
    lanner = start_lanner({"intercept": [{"hosts": ["*"]}], "limits": {"handshake_timeout": 1}})
    sock = connect_tunnel(lanner, "localhost", tls_origin.port)
    sock.settimeout(15)
    assert sock.recv(100) == b""  # closed by lanner, not by this test
    sock.close()
    lanner.wait_log(r"proto=connect [^\n]*outcome=handshake_timeout")
    assert plain_ok(lanner)


def plain_ok(lanner: Any) -> bool:
    """The same process still serves: a CONNECT is answered."""
    with socket.create_connection(lanner.addr(), timeout=10) as sock:
        sock.sendall(b"CONNECT 127.0.0.1:1 HTTP/1.1\r\nHost: 127.0.0.1:1\r\n\r\n")
        return sock.recv(100).startswith(b"HTTP/1.1 502")


def test_workers_share_one_ca(start_lanner: Any, tls_origin: Origin, ca_file: Path) -> None:
    lanner = start_lanner(
        {"intercept": [{"hosts": ["localhost"], "ca_file": str(ca_file)}]}, "--workers", "2"
    )
    url = f"https://localhost:{tls_origin.port}/small"
    for _ in range(20):  # new connections: the kernel spreads them over both workers
        with httpx.Client(proxy=lanner.http_proxy, verify=trusting(lanner)) as client:
            assert client.get(url).text == "hello-from-origin\n"  # verified against the one ca.pem
    lanner.wait_log(r"proto=https [^\n]*worker=0")
    lanner.wait_log(r"proto=https [^\n]*worker=1")  # both workers intercepted with the same CA
