"""The L4/L7 router (SNI and Host, nothing terminated) and the tls listener (termination by SNI)."""

from __future__ import annotations

import socket
import ssl
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import trustme

from tests.conftest import require_binary
from tests.integration.servers import Origin, refused_port
from tests.integration.store_reads import wait_flows


@pytest.fixture(scope="module")
def backends(test_ca: trustme.CA) -> Iterator[tuple[Origin, Origin]]:
    """Two HTTPS origins that tell themselves apart by their certificates' names."""
    servers = []
    for name in ("alpha.test", "beta.test"):
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        test_ca.issue_cert(name, f"*.{name}").configure_cert(context)
        servers.append(Origin(tls=context))
    yield servers[0], servers[1]
    for server in servers:
        server.close()


def trust(test_ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context()
    test_ca.configure_trust(context)
    return context


def tls_exchange(address: tuple[str, int], context: ssl.SSLContext, name: str | None) -> tuple[str, bytes]:
    """(the certificate's first DNS name, the response) for GET /small over TLS to `address`."""
    with socket.create_connection(address, timeout=10) as raw:
        with context.wrap_socket(raw, server_hostname=name) as tls:
            certificate = tls.getpeercert()
            tls.sendall(f"GET /small HTTP/1.1\r\nHost: {name}\r\nConnection: close\r\n\r\n".encode())
            data = b""
            while chunk := tls.recv(65536):
                data += chunk
    assert certificate is not None
    names = [value for kind, value in certificate.get("subjectAltName", ()) if kind == "DNS"]
    return names[0], data


def plain_get(address: tuple[str, int], host: str | None) -> bytes:
    with socket.create_connection(address, timeout=10) as sock:
        host_line = f"Host: {host}\r\n" if host else ""
        sock.sendall(f"GET /small HTTP/1.1\r\n{host_line}Connection: close\r\n\r\n".encode())
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    return data


@pytest.fixture(scope="module")
def router(module_lanner: Any, backends: tuple[Origin, Origin], origin: Origin) -> Any:
    alpha, beta = backends
    return module_lanner(
        {
            "listeners": [
                {
                    "name": "edge",
                    "type": "router",
                    "routes": [
                        {"match": "alpha.test", "protocol": "tls", "target": f"127.0.0.1:{alpha.port}"},
                        {"match": "*.beta.test", "protocol": "tls", "target": f"127.0.0.1:{beta.port}"},
                        {"match": "down.test", "target": f"127.0.0.1:{refused_port()}"},
                        {"match": "web.test", "protocol": "http", "target": f"127.0.0.1:{origin.port}"},
                        {"match": "*", "protocol": "http", "target": f"127.0.0.1:{origin.port}"},
                    ],
                }
            ]
        }
    )


def test_sni_routes_to_two_tls_backends_untouched(router: Any, test_ca: trustme.CA) -> None:
    context = trust(test_ca)
    name, data = tls_exchange(router.addr(), context, "alpha.test")
    assert name == "alpha.test" and data.endswith(b"hello-from-origin\n")
    name, data = tls_exchange(router.addr(), context, "api.beta.test")  # by wildcard
    assert name == "beta.test" and data.endswith(b"hello-from-origin\n")
    router.wait_log(r"route=.?exact alpha.test \(alpha.test\) -> 127.0.0.1:\d+")
    router.wait_log(r"route=.?wildcard \*.beta.test \(api.beta.test\)")


def test_openssl_s_client_is_routed_by_servername(router: Any, ca_file: Path) -> None:
    require_binary("openssl")
    host, port = router.addr()
    out = subprocess.run(
        ["openssl", "s_client", "-connect", f"{host}:{port}", "-servername", "api.beta.test",
         "-CAfile", str(ca_file), "-verify_hostname", "api.beta.test"],
        input=b"", capture_output=True, timeout=20,
    )  # fmt: skip
    # Verified against the name asked: only beta's certificate (*.beta.test) passes.
    assert b"Verification: OK" in out.stdout and b"Verified peername: *.beta.test" in out.stdout


def test_unknown_name_gets_an_unrecognized_name_alert(router: Any, test_ca: trustme.CA) -> None:
    with pytest.raises(ssl.SSLError, match="UNRECOGNIZED_NAME"):
        tls_exchange(router.addr(), trust(test_ca), "gamma.test")
    router.wait_log(r"route=.?none for gamma.test \(tls\)")
    router.wait_log(r"outcome=no_route")


def test_a_hello_without_sni_has_no_tls_catch_all_here(router: Any) -> None:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with pytest.raises(ssl.SSLError, match="UNRECOGNIZED_NAME"):
        tls_exchange(router.addr(), context, None)


def test_plain_http_is_routed_by_host(router: Any) -> None:
    assert plain_get(router.addr(), "web.test").endswith(b"hello-from-origin\n")
    router.wait_log(r"route=.?exact web.test \(web.test\)")
    with httpx.Client() as client:
        response = client.get(f"http://127.0.0.1:{router.port}/small", headers={"Host": "other.test"})
    assert response.text == "hello-from-origin\n"  # the plain catch-all
    router.wait_log(r"route=.?catch-all \* \(other.test\)")


def test_unreachable_target_answers_502_or_an_alert(router: Any, test_ca: trustme.CA) -> None:
    assert plain_get(router.addr(), "down.test").startswith(b"HTTP/1.1 502")
    with pytest.raises(ssl.SSLError, match="INTERNAL_ERROR"):
        tls_exchange(router.addr(), trust(test_ca), "down.test")


def test_garbage_is_refused_and_the_router_keeps_serving(router: Any) -> None:
    with socket.create_connection(router.addr(), timeout=10) as sock:
        sock.sendall(b"\x16\x03\x01\x00\x05\x02\x00\x00\x01\x00")  # a handshake record that is no hello
        assert sock.recv(100).startswith(b"\x15\x03\x03")  # a TLS alert, then close
    assert plain_get(router.addr(), "web.test").endswith(b"hello-from-origin\n")


def test_no_route_for_plain_http_is_421(start_lanner: Any, origin: Origin) -> None:
    lanner = start_lanner(
        {
            "listeners": [
                {
                    "name": "edge",
                    "type": "router",
                    "routes": [{"match": "only.test", "target": f"127.0.0.1:{origin.port}"}],
                }
            ]
        }
    )
    assert plain_get(lanner.addr(), "elsewhere.test").startswith(b"HTTP/1.1 421")
    assert plain_get(lanner.addr(), None).startswith(b"HTTP/1.1 421")


# -- termination --


def write_pair(test_ca: trustme.CA, directory: Path, *names: str) -> tuple[str, str]:
    issued = test_ca.issue_cert(*names)
    cert, key = directory / f"{names[0].replace('*', 'star')}.pem", directory / f"{names[0]}.key"
    issued.cert_chain_pems[0].write_to_path(str(cert))
    issued.private_key_pem.write_to_path(str(key))
    return str(cert), str(key)


@pytest.fixture(scope="module")
def terminator(
    module_lanner: Any,
    test_ca: trustme.CA,
    tmp_path_factory: pytest.TempPathFactory,
    origin: Origin,
    tls_origin: Origin,
    ca_file: Path,
) -> Any:
    folder = tmp_path_factory.mktemp("certs")
    wildcard = write_pair(test_ca, folder, "*.api.example.com")
    exact = write_pair(test_ca, folder, "www.example.com")
    fallback = write_pair(test_ca, folder, "default.example.com")
    return module_lanner(
        {
            "listeners": [
                {
                    "name": "terminate",
                    "type": "tls",
                    "certificates": [
                        {"cert": wildcard[0], "key": wildcard[1]},
                        {"cert": exact[0], "key": exact[1]},
                        {"cert": fallback[0], "key": fallback[1], "default": True},
                    ],
                    "routes": [{"match": "*.api.example.com", "target": f"127.0.0.1:{origin.port}"}],
                    "target": f"127.0.0.1:{origin.port}",
                    "analyze": "http",
                },
                {
                    "name": "reencrypt",
                    "type": "tls",
                    "certificates": [{"cert": exact[0], "key": exact[1]}],
                    "target": f"localhost:{tls_origin.port}",
                    "target_tls": True,
                    "target_ca_file": str(ca_file),
                },
            ]
        }
    )


def test_certificates_are_chosen_by_sni(terminator: Any, test_ca: trustme.CA) -> None:
    context = trust(test_ca)
    address = terminator.addr("terminate")
    name, data = tls_exchange(address, context, "v1.api.example.com")
    assert name == "*.api.example.com" and data.endswith(b"hello-from-origin\n")
    name, _ = tls_exchange(address, context, "www.example.com")
    assert name == "www.example.com"
    relaxed = trust(test_ca)
    relaxed.check_hostname = False
    name, _ = tls_exchange(address, relaxed, "unknown.example.org")
    assert name == "default.example.com"
    terminator.wait_log(r"route=.?wildcard \*.api.example.com \(v1.api.example.com\)")
    terminator.wait_log(r"route=.?default \(www.example.com\)")


def test_curl_and_httpx_through_termination_are_recorded(terminator: Any, test_ca: trustme.CA) -> None:
    require_binary("curl")
    port = terminator.addr("terminate")[1]
    ca_path = Path(terminator.config["data_dir"]).parent / "test-ca.pem"
    test_ca.cert_pem.write_to_path(str(ca_path))
    out = subprocess.run(
        ["curl", "-sS", "--fail", "--cacert", str(ca_path), "--resolve", f"www.example.com:{port}:127.0.0.1",
         f"https://www.example.com:{port}/small?tag=terminated"],
        capture_output=True, check=True,
    )  # fmt: skip
    assert out.stdout == b"hello-from-origin\n"
    with httpx.Client(verify=trust(test_ca)) as client:
        response = client.get(
            f"https://127.0.0.1:{port}/small?tag=terminated-httpx",
            headers={"Host": "www.example.com"},
            extensions={"sni_hostname": "www.example.com"},
        )
    assert response.text == "hello-from-origin\n"
    wait_flows(terminator.store_path, 1, "url:*tag=terminated-httpx*")
    (flow,) = wait_flows(terminator.store_path, 1, "url:*tag=terminated")
    assert flow.scheme == "https" and flow.status == 200


def test_reencrypting_to_a_verified_target(terminator: Any, test_ca: trustme.CA) -> None:
    name, data = tls_exchange(terminator.addr("reencrypt"), trust(test_ca), "www.example.com")
    assert name == "www.example.com" and data.endswith(b"hello-from-origin\n")


def test_a_partial_hello_takes_no_route(router: Any, test_ca: trustme.CA) -> None:
    from tests.unit.wire.test_tls_hello import client_hello

    hello = client_hello("alpha.test")
    with socket.create_connection(router.addr(), timeout=10) as sock:
        sock.sendall(hello[:-10])  # everything but the end: no route may be chosen yet
        sock.shutdown(socket.SHUT_WR)
        assert sock.recv(100) == b""
    line = router.wait_log(r"proto=sni [^\n]*outcome=bad_request[^\n]*").group(0)
    assert "dest=- " in line and "route=" not in line
    name, _ = tls_exchange(router.addr(), trust(test_ca), "alpha.test")
    assert name == "alpha.test"
