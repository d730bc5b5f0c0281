"""Reverse-proxy edge cases: early answers, extra bytes, timers across requests, waiting, reloads."""

from __future__ import annotations

import socket
import ssl
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import trustme
import yaml

from tests.integration.backends import served_by, write_certificate
from tests.integration.raw import exchange
from tests.integration.servers import RawBackend, RawHandler


@pytest.fixture
def raw_backend() -> Iterator[Callable[[RawHandler], RawBackend]]:
    started: list[RawBackend] = []

    def start(answer: RawHandler) -> RawBackend:
        backend = RawBackend(answer)
        started.append(backend)
        return backend

    yield start
    for backend in started:
        backend.close()


def reverse(
    pools: list[dict[str, Any]], routes: list[dict[str, Any]] | None = None, **listener: Any
) -> dict[str, Any]:
    return {
        "listeners": [
            {"name": "api", "type": "reverse", "routes": routes or [{"pool": pools[0]["name"]}], **listener}
        ],
        "pools": pools,
    }


def ok(body: bytes = b"ok") -> bytes:
    return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)


def test_an_early_answer_to_a_partial_body_never_lends_the_connection(
    start_lanner: Any, raw_backend: Any
) -> None:
    def answer(sock: socket.socket, head: bytes) -> None:
        if head.startswith(b"POST"):
            sock.sendall(b"HTTP/1.1 413 Payload Too Large\r\nContent-Length: 0\r\n\r\n")  # body unread
        else:
            sock.sendall(ok(head.split(b" ")[1]))

    backend = raw_backend(answer)
    lanner = start_lanner(reverse([{"name": "p", "backends": [{"address": backend.address}]}]))
    port = lanner.addr("api")[1]
    with socket.create_connection(("127.0.0.1", port), timeout=10) as client:
        client.sendall(b"POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\n" + b"A" * 40)
        answer_413 = client.recv(65536)
        assert answer_413.startswith(b"HTTP/1.1 413 ")
        assert b"Connection: close" in answer_413
        try:  # closed: the rest of the body has nowhere to go (unread bytes may turn the FIN into a RST)
            client.sendall(b"A" * 60)
            assert client.recv(65536) == b""
        except ConnectionResetError:
            pass
    for index in range(3):
        response = httpx.get(f"http://127.0.0.1:{port}/from-client-{index}")
        assert (response.status_code, response.text) == (200, f"/from-client-{index}")
    assert all(head.startswith((b"POST /upload ", b"GET /from-client-")) for head in backend.heads)


def test_extra_bytes_after_a_response_are_never_served_to_the_next_request(
    start_lanner: Any, raw_backend: Any
) -> None:
    def answer(sock: socket.socket, head: bytes) -> None:
        path = head.split(b" ")[1]
        if path == b"/head-with-body":
            sock.sendall(b"HTTP/1.1 204 No Content\r\n\r\n" + ok(b"stale"))
        else:
            sock.sendall(ok(path))

    backend = raw_backend(answer)
    lanner = start_lanner(reverse([{"name": "p", "backends": [{"address": backend.address}]}]))
    url = f"http://127.0.0.1:{lanner.addr('api')[1]}"
    with httpx.Client() as client:
        assert client.get(f"{url}/head-with-body").status_code == 204
        for index in range(3):
            response = client.get(f"{url}/next-{index}")
            assert (response.status_code, response.text) == (200, f"/next-{index}")


def test_a_shorter_response_timeout_is_kept_after_a_longer_one(start_lanner: Any, start_backend: Any) -> None:
    backend = start_backend("b")
    lanner = start_lanner(
        reverse(
            [
                {"name": "patient", "backends": [{"address": backend.address}]},
                {"name": "hasty", "backends": [{"address": backend.address}], "response_timeout": 0.5},
            ],
            [{"match": {"path": "/hasty"}, "pool": "hasty", "strip_prefix": "/hasty"}, {"pool": "patient"}],
        )
    )
    url = f"http://127.0.0.1:{lanner.addr('api')[1]}"
    with httpx.Client(timeout=20) as client:
        assert client.get(f"{url}/first").status_code == 200
        assert client.get(f"{url}/hasty/slow?s=4").status_code == 504


def test_a_request_that_gave_up_waiting_leaves_no_place_taken(start_lanner: Any, start_backend: Any) -> None:
    import asyncio

    backend = start_backend("b")
    pool = {
        "name": "p",
        "backends": [{"address": backend.address}],
        "breaker": {"max_connections": 1, "max_pending": 1},
        "connect_timeout": 0.5,
    }
    lanner = start_lanner(reverse([pool]))
    url = f"http://127.0.0.1:{lanner.addr('api')[1]}"

    async def scenario() -> list[int]:
        async with httpx.AsyncClient(timeout=20) as first, httpx.AsyncClient(timeout=20) as second:
            slow = asyncio.ensure_future(first.get(f"{url}/slow?s=1.5"))
            await asyncio.sleep(0.3)
            waited = await second.get(f"{url}/waits")  # no connection frees within 0.5 s
            return [(await slow).status_code, waited.status_code]

    assert asyncio.run(scenario()) == [200, 503]
    for _ in range(3):
        assert httpx.get(f"{url}/after").status_code == 200


def test_a_reload_that_removes_a_pool_answers_503_on_open_connections(
    start_lanner: Any, start_backend: Any
) -> None:
    import signal

    first, second = start_backend("first"), start_backend("second")
    config = reverse(
        [
            {"name": "old", "backends": [{"address": first.address}]},
            {"name": "new", "backends": [{"address": second.address}]},
        ],
        [{"match": {"path": "/new"}, "pool": "new"}, {"pool": "old"}],
    )
    lanner = start_lanner(config)
    url = f"http://127.0.0.1:{lanner.addr('api')[1]}"
    with httpx.Client() as client:
        assert served_by(client.get(f"{url}/x")) == "first"
        lanner.config["pools"] = [lanner.config["pools"][1]]
        lanner.config["listeners"][0]["routes"] = [{"pool": "new"}]
        lanner.path.write_text(yaml.safe_dump(lanner.config))
        lanner.proc.send_signal(signal.SIGHUP)
        lanner.wait_log(r"config reloaded")
        stale = client.get(f"{url}/x")  # this connection keeps the routes it started with
        assert stale.status_code == 503
    assert served_by(httpx.get(f"{url}/x")) == "second"  # new connections take the new routes
    lanner.wait_log(r"pool old no longer exists")


def test_failed_tls_after_proxy_headers_frees_the_listener_slots(
    start_lanner: Any, start_backend: Any, test_ca: trustme.CA, tmp_path: Path
) -> None:
    backend = start_backend("b")
    cert, key, ca = write_certificate(test_ca, tmp_path)
    lanner = start_lanner(
        reverse(
            [{"name": "p", "backends": [{"address": backend.address}]}],
            certificates=[{"cert": str(cert), "key": str(key)}],
            proxy_protocol={"trusted": ["10.0.0.0/8"]},  # this test's client is not trusted
            limits={"max_connections": 2},
        )
    )
    port = lanner.addr("api")[1]
    for _ in range(4):
        assert exchange(port, b"\x16\x03\x01\x00\x05not-a-hello")[:1] in (b"", b"\x15")  # an alert or nothing
    lanner.wait_log(r"outcome=tls_failed")
    with httpx.Client(verify=ssl.create_default_context(cafile=str(ca))) as client:
        assert client.get(f"https://127.0.0.1:{port}/fine").status_code == 200
