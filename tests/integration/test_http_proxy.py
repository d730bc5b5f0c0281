"""HTTP forward proxy semantics with a raw client, so every byte on the wire is checked."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.integration.raw import connect, recv_exact, recv_http_response, recv_until_close
from tests.integration.servers import Origin, RawBackend, UpgradeServer


@pytest.fixture(scope="module")
def proxy(module_lanner: Any) -> Any:
    return module_lanner({"listeners": [{"name": "forward", "via": True}]})


@pytest.fixture(scope="module")
def second_origin() -> Any:
    server = Origin()
    yield server
    server.close()


def get(target: str, extra: str = "", version: str = "1.1") -> bytes:
    return f"GET {target} HTTP/{version}\r\nHost: ignored.example\r\n{extra}\r\n".encode()


def test_keep_alive_requests_to_different_hosts(proxy: Any, origin: Origin, second_origin: Origin) -> None:
    sock = connect(proxy.port)
    for port in (origin.port, second_origin.port, second_origin.port, origin.port):
        sock.sendall(get(f"http://127.0.0.1:{port}/small"))
        head, body = recv_http_response(sock)
        assert head.startswith(b"HTTP/1.1 200")
        assert body == b"hello-from-origin\n"
    sock.close()
    proxy.wait_log(r"proto=http .*requests=4 .*outcome=ok")


def test_hop_by_hop_headers_removed_and_host_rewritten(proxy: Any, origin: Origin) -> None:
    sock = connect(proxy.port)
    sock.sendall(
        get(
            f"http://127.0.0.1:{origin.port}/headers?x=1",
            "Connection: keep-alive, X-Secret-Hop\r\nX-Secret-Hop: 1\r\nProxy-Connection: keep-alive\r\n"
            "Keep-Alive: timeout=5\r\nTE: trailers\r\nProxy-Authorization: Basic Zm9vOmJhcg==\r\n"
            "X-End-To-End: kept\r\n",
        )
    )
    head, body = recv_http_response(sock)
    seen = json.loads(body)
    assert seen["path"] == "/headers?x=1"
    headers = seen["headers"]
    assert headers["host"] == f"127.0.0.1:{origin.port}"
    assert headers["x-end-to-end"] == "kept"
    assert headers["via"] == "1.1 lanner"
    for name in ("x-secret-hop", "proxy-connection", "keep-alive", "te", "proxy-authorization"):
        assert name not in headers
    # The origin's own Connection/Keep-Alive headers do not reach the client.
    lowered = head.lower()
    assert b"keep-alive: timeout" not in lowered
    assert b"via: 1.1 lanner" in lowered
    sock.close()


def test_chunked_response_with_trailer_passes_verbatim(proxy: Any, origin: Origin) -> None:
    sock = connect(proxy.port)
    sock.sendall(get(f"http://127.0.0.1:{origin.port}/chunked", "Connection: close\r\n"))
    data = recv_until_close(sock)
    head, _, body = data.partition(b"\r\n\r\n")
    assert b"transfer-encoding: chunked" in head.lower()
    assert (
        body == b"6;ext=1\r\nfirst,\r\n7;ext=1\r\nsecond,\r\n5;ext=1\r\nthird\r\n0\r\nX-Checksum: 42\r\n\r\n"
    )


def test_close_delimited_response_closes_client(proxy: Any, origin: Origin) -> None:
    sock = connect(proxy.port)
    sock.sendall(get(f"http://127.0.0.1:{origin.port}/close"))
    data = recv_until_close(sock)
    head, _, body = data.partition(b"\r\n\r\n")
    assert b"connection: close" in head.lower()
    assert body == b"delimited-by-close"


def test_head_and_204_have_no_body(proxy: Any, origin: Origin) -> None:
    sock = connect(proxy.port)
    sock.sendall(f"HEAD http://127.0.0.1:{origin.port}/small HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(4096)
    assert b"content-length: 18" in data.lower()
    # The next response on the same connection must start right after the HEAD head.
    sock.sendall(get(f"http://127.0.0.1:{origin.port}/status?code=204"))
    head, body = recv_http_response(sock)
    assert head.startswith(b"HTTP/1.1 204") and body == b""
    sock.sendall(get(f"http://127.0.0.1:{origin.port}/small"))
    assert recv_http_response(sock)[1] == b"hello-from-origin\n"
    sock.close()


def test_pipelined_requests_answered_in_order(proxy: Any, origin: Origin, second_origin: Origin) -> None:
    sock = connect(proxy.port)
    sock.sendall(
        get(f"http://127.0.0.1:{origin.port}/status?code=201")
        + get(f"http://127.0.0.1:{second_origin.port}/status?code=202")
        + get(f"http://127.0.0.1:{origin.port}/status?code=203")
    )
    for code in (201, 202, 203):
        head, body = recv_http_response(sock)
        assert head.startswith(f"HTTP/1.1 {code}".encode())
        assert body == f"status {code}\n".encode()
    sock.close()


def test_chunked_request_body_and_expect_continue(proxy: Any, origin: Origin) -> None:
    sock = connect(proxy.port)
    sock.sendall(
        f"POST http://127.0.0.1:{origin.port}/echo HTTP/1.1\r\nHost: x\r\n"
        "Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n".encode()
    )
    assert recv_http_response(sock)[1] == b"hello world"
    sock.sendall(
        f"POST http://127.0.0.1:{origin.port}/echo HTTP/1.1\r\nHost: x\r\n"
        "Content-Length: 4\r\nExpect: 100-continue\r\n\r\n".encode()
    )
    interim = b""
    while b"\r\n\r\n" not in interim:
        interim += sock.recv(4096)
    assert interim.startswith(b"HTTP/1.1 100")
    sock.sendall(b"abcd")
    assert recv_http_response(sock)[1] == b"abcd"
    sock.close()


def test_http10_client_gets_a_closed_or_kept_connection(proxy: Any, origin: Origin) -> None:
    sock = connect(proxy.port)
    sock.sendall(get(f"http://127.0.0.1:{origin.port}/small", version="1.0"))
    data = recv_until_close(sock)
    assert data.startswith(b"HTTP/1.1 200") and data.endswith(b"hello-from-origin\n")
    sock = connect(proxy.port)
    sock.sendall(get(f"http://127.0.0.1:{origin.port}/small", "Connection: keep-alive\r\n", version="1.0"))
    head, body = recv_http_response(sock)
    assert b"connection: keep-alive" in head.lower() and body == b"hello-from-origin\n"
    sock.sendall(get(f"http://127.0.0.1:{origin.port}/small", version="1.0"))
    assert recv_until_close(sock).endswith(b"hello-from-origin\n")


def test_large_download_streams(proxy: Any, origin: Origin) -> None:
    size = 20_000_000
    sock = connect(proxy.port)
    sock.sendall(get(f"http://127.0.0.1:{origin.port}/big?n={size}", "Connection: close\r\n"))
    data = recv_until_close(sock, limit=size + 4096)
    head, _, body = data.partition(b"\r\n\r\n")
    assert len(body) == size and set(body) == {ord("x")}


def test_upgrade_turns_into_a_tunnel(proxy: Any) -> None:
    server = UpgradeServer()
    try:
        sock = connect(proxy.port)
        sock.sendall(
            f"GET http://127.0.0.1:{server.port}/ws HTTP/1.1\r\nHost: x\r\n"
            "Connection: Upgrade\r\nUpgrade: echo\r\n\r\n".encode()
        )
        head = b""
        while b"\r\n\r\n" not in head:
            head += sock.recv(4096)
        assert head.startswith(b"HTTP/1.1 101")
        assert b"upgrade: echo" in head.lower()
        sock.sendall(b"raw bytes after the upgrade")
        assert recv_exact(sock, 27) == b"raw bytes after the upgrade"
        sock.close()
    finally:
        server.close()


def test_origin_form_and_https_targets_refused(proxy: Any) -> None:
    for target in ("/small", "https://127.0.0.1/"):
        sock = connect(proxy.port)
        sock.sendall(get(target))
        assert recv_until_close(sock).startswith(b"HTTP/1.1 400")


def test_an_early_answer_to_a_partial_body_closes_the_connection(proxy: Any) -> None:
    def answer(sock: Any, head: bytes) -> None:
        sock.sendall(
            b"HTTP/1.1 413 Payload Too Large\r\nContent-Length: 0\r\n\r\n"
        )  # the body is left unread

    backend = RawBackend(answer)
    try:
        with connect(proxy.port) as sock:
            sock.sendall(
                f"POST http://{backend.address}/upload HTTP/1.1\r\nHost: {backend.address}\r\n"
                "Content-Length: 100\r\n\r\n".encode()
                + b"A" * 40
            )
            head, _ = recv_http_response(sock)
            assert head.startswith(b"HTTP/1.1 413 ") and b"Connection: close" in head
            # What the client still sends is not taken for a new request: the connection ends.
            try:
                sock.sendall(b"GET http://example.invalid/ HTTP/1.1\r\n\r\n" + b"A" * 60)
            except OSError:
                pass
            assert recv_until_close(sock) == b""
    finally:
        backend.close()
    assert backend.heads == [backend.heads[0]] and backend.heads[0].startswith(b"POST /upload ")
