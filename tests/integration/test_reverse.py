"""The reverse listener with real backends (separate processes) and real clients (httpx, curl)."""

from __future__ import annotations

import collections
import json
import subprocess
import time
from typing import Any

import httpx
import pytest

from tests.conftest import require_binary
from tests.integration.backends import BackendProcess, echoed_headers, served_by, write_certificate
from tests.integration.raw import exchange
from tests.integration.store_reads import wait_flows


def reverse_config(
    pools: list[dict[str, Any]], routes: list[dict[str, Any]], **listener: Any
) -> dict[str, Any]:
    return {
        "listeners": [{"name": "api", "type": "reverse", "routes": routes, **listener}],
        "pools": pools,
    }


def pool(name: str, backends: list[BackendProcess], **settings: Any) -> dict[str, Any]:
    return {"name": name, "backends": [{"address": b.address} for b in backends], **settings}


def base_url(lanner: Any) -> str:
    host, port = lanner.addr("api")
    return f"http://{host}:{port}"


def test_routes_by_host_path_method_and_header(start_lanner: Any, start_backend: Any) -> None:
    api, web, canary, admin = (start_backend(name) for name in ("api", "web", "canary", "admin"))
    lanner = start_lanner(
        reverse_config(
            [pool("api", [api]), pool("web", [web]), pool("canary", [canary]), pool("admin", [admin])],
            [
                {"match": {"headers": {"X-Canary": "1"}}, "pool": "canary"},
                {"match": {"hosts": ["admin.example"], "methods": ["POST"]}, "pool": "admin"},
                {"match": {"hosts": ["*.example"], "path": "/api"}, "pool": "api", "strip_prefix": "/api"},
                {"match": {"hosts": ["www.example"]}, "pool": "web", "add_prefix": "/site"},
            ],
        )
    )
    url = base_url(lanner)
    with httpx.Client() as client:
        got = client.get(f"{url}/api/users?id=7", headers={"Host": "shop.example"})
        assert (served_by(got), json.loads(got.text)["path"]) == ("api", "/users?id=7")
        assert client.get(f"{url}/apix", headers={"Host": "shop.example"}).status_code == 404  # not /api
        assert client.get(f"{url}/api", headers={"Host": "example"}).status_code == 404  # bare parent
        got = client.get(f"{url}/index.html", headers={"Host": "WWW.example:8080"})
        assert (served_by(got), json.loads(got.text)["path"]) == ("web", "/site/index.html")
        assert served_by(client.post(f"{url}/x", headers={"Host": "admin.example"})) == "admin"
        assert client.get(f"{url}/x", headers={"Host": "admin.example"}).status_code == 404  # GET: no route
        assert served_by(client.get(f"{url}/anything", headers={"X-Canary": "1"})) == "canary"
        missing = client.get(f"{url}/nowhere", headers={"Host": "other.test"})
    assert missing.status_code == 404
    assert missing.text == "404 Not Found: not found\n"  # generic: nothing about routes or pools
    lanner.wait_log(r"outcome=no_route detail=\"?no route for other.test /nowhere")


def test_forwarding_headers_set_and_never_trusted_from_clients(start_lanner: Any, start_backend: Any) -> None:
    backend = start_backend("b")
    lanner = start_lanner(reverse_config([pool("p", [backend])], [{"pool": "p"}]))
    forged = {
        "X-Forwarded-For": "6.6.6.6",
        "X-Forwarded-Proto": "https",
        "X-Forwarded-Host": "evil.example",
        "Forwarded": "for=6.6.6.6",
        "X-Real-IP": "6.6.6.6",
        "X-Request-Id": "trace-123",
    }
    got = httpx.get(f"{base_url(lanner)}/h", headers={**forged, "Host": "api.example"})
    headers = echoed_headers(got)
    assert headers["x-forwarded-for"] == ["127.0.0.1"]
    assert headers["x-forwarded-proto"] == ["http"]
    assert headers["x-forwarded-host"] == ["api.example"]
    assert headers["forwarded"] == ["for=127.0.0.1;proto=http;host=api.example"]
    assert headers["x-real-ip"] == ["127.0.0.1"]
    assert headers["x-request-id"] == ["trace-123"]  # a request id is passed through
    assert headers["host"] == ["api.example"]
    fresh = echoed_headers(httpx.get(f"{base_url(lanner)}/h"))["x-request-id"]
    assert len(fresh) == 1 and len(fresh[0]) == 32 and fresh[0] != "trace-123"


def test_forwarding_headers_extended_for_trusted_proxies(start_lanner: Any, start_backend: Any) -> None:
    backend = start_backend("b")
    lanner = start_lanner(
        reverse_config([pool("p", [backend])], [{"pool": "p"}], trusted_proxies=["127.0.0.0/8"])
    )
    got = httpx.get(
        f"{base_url(lanner)}/h",
        headers={
            "X-Forwarded-For": "203.0.113.9",
            "X-Forwarded-Proto": "https",
            "Forwarded": "for=203.0.113.9",
        },
    )
    headers = echoed_headers(got)
    assert headers["x-forwarded-for"] == ["203.0.113.9, 127.0.0.1"]
    assert headers["x-forwarded-proto"] == ["https"]
    assert headers["forwarded"][0].startswith("for=203.0.113.9, for=127.0.0.1;proto=http")


def test_route_header_rules_with_variables(start_lanner: Any, start_backend: Any) -> None:
    backend = start_backend("b")
    route = {
        "pool": "p",
        "request_headers": {
            "set": {"X-Client": "$remote_addr via $scheme://$host"},
            "add": {"X-Extra": "1"},
            "remove": ["X-Secret"],
        },
        "response_headers": {
            "set": {"X-Upstream": "$upstream_addr", "X-Request-Id": "$request_id"},
            "remove": ["Server"],
        },
    }
    lanner = start_lanner(reverse_config([pool("p", [backend])], [route]))
    got = httpx.get(
        f"{base_url(lanner)}/h", headers={"X-Secret": "s", "Host": "h.example", "X-Request-Id": "r1"}
    )
    headers = echoed_headers(got)
    assert headers["x-client"] == ["127.0.0.1 via http://h.example"]
    assert headers["x-extra"] == ["1"]
    assert "x-secret" not in headers
    assert got.headers["x-upstream"] == backend.address
    assert got.headers["x-request-id"] == "r1"
    assert "server" not in got.headers


@pytest.mark.parametrize(
    ("strategy", "weights"),
    [("round_robin", (1, 2, 3)), ("least_connections", (1, 2, 3)), ("random_two", (1, 1, 2))],
)
def test_strategy_distribution(
    start_lanner: Any, start_backend: Any, strategy: str, weights: tuple[int, ...]
) -> None:
    backends = [start_backend(f"b{index}") for index in range(len(weights))]
    config = {
        "name": "p",
        "strategy": strategy,
        "backends": [{"address": b.address, "weight": w} for b, w in zip(backends, weights, strict=True)],
    }
    lanner = start_lanner(reverse_config([config], [{"pool": "p"}]))
    counts: collections.Counter[str] = collections.Counter()
    total = 600
    with httpx.Client() as client:
        for _ in range(total):
            counts[served_by(client.get(f"{base_url(lanner)}/"))] += 1
    for backend, weight in zip(backends, weights, strict=True):
        share = counts[backend.name] / total
        assert abs(share - weight / sum(weights)) < 0.08, (strategy, counts)


def test_hash_by_header_moves_only_the_removed_backends_keys(
    start_lanner: Any, start_backend: Any, tmp_path: Any
) -> None:
    backends = [start_backend(f"b{index}") for index in range(4)]
    hashed = {"strategy": "hash", "hash_on": "header", "hash_name": "X-User"}
    keys = [f"user-{index}" for index in range(200)]

    def placement(members: list[BackendProcess]) -> dict[str, str]:
        lanner = start_lanner(reverse_config([pool("p", members, **hashed)], [{"pool": "p"}]))
        with httpx.Client() as client:
            placed = {
                key: served_by(client.get(f"{base_url(lanner)}/", headers={"X-User": key})) for key in keys
            }
            again = {
                key: served_by(client.get(f"{base_url(lanner)}/", headers={"X-User": key})) for key in keys
            }
        assert placed == again  # sticky
        return placed

    before = placement(backends)
    after = placement(backends[:2] + backends[3:])  # b2 removed
    moved = {key for key in keys if before[key] != after[key]}
    assert moved == {key for key in keys if before[key] == "b2"}
    assert 20 < len(moved) < 90  # about a quarter


def test_hash_by_cookie_and_by_client(start_lanner: Any, start_backend: Any) -> None:
    backends = [start_backend(f"b{index}") for index in range(3)]
    lanner = start_lanner(
        reverse_config(
            [
                pool("cookie", backends, strategy="hash", hash_on="cookie", hash_name="sid"),
                pool("client", backends, strategy="hash"),
            ],
            [{"match": {"path": "/c"}, "pool": "cookie"}, {"pool": "client"}],
        )
    )
    url = base_url(lanner)
    for sid in ("a", "b", "c", "d"):
        seen = {served_by(httpx.get(f"{url}/c", cookies={"sid": sid})) for _ in range(5)}
        assert len(seen) == 1
    assert len({served_by(httpx.get(f"{url}/x")) for _ in range(10)}) == 1  # one client address


def test_backend_connections_are_kept_alive_and_shared(start_lanner: Any, start_backend: Any) -> None:
    backend = start_backend("b")
    lanner = start_lanner(reverse_config([pool("p", [backend])], [{"pool": "p"}]))
    peers = set()
    for _ in range(5):  # a new client connection each time
        with httpx.Client() as client:
            peers.add(json.loads(client.get(f"{base_url(lanner)}/").text)["peer"])
    assert len(peers) == 1  # one backend connection served all five clients


def test_streams_bodies_both_ways_with_curl(start_lanner: Any, start_backend: Any, tmp_path: Any) -> None:
    curl = require_binary("curl")
    backend = start_backend("b")
    lanner = start_lanner(reverse_config([pool("p", [backend])], [{"pool": "p"}]))
    upload = tmp_path / "up.bin"
    upload.write_bytes(b"z" * 3_000_000)
    posted = subprocess.run(
        [curl, "-sS", "--data-binary", f"@{upload}", f"{base_url(lanner)}/upload"],
        capture_output=True, text=True, check=True, timeout=30,
    )  # fmt: skip
    assert json.loads(posted.stdout)["body_length"] == 3_000_000
    streamed = subprocess.run(
        [curl, "-sS", "-N", f"{base_url(lanner)}/stream?n=5&every=0.05"],
        capture_output=True, text=True, check=True, timeout=30,
    )  # fmt: skip
    assert streamed.stdout.splitlines() == [f"chunk {index} from b" for index in range(5)]


def test_websocket_upgrade_passes_through(start_lanner: Any, ws_echo: Any) -> None:
    from websockets.sync.client import connect

    lanner = start_lanner(
        reverse_config(
            [{"name": "ws", "backends": [{"address": f"127.0.0.1:{ws_echo.port}"}]}], [{"pool": "ws"}]
        )
    )
    host, port = lanner.addr("api")
    with connect(f"ws://{host}:{port}/echo") as websocket:
        websocket.send("hello through the reverse proxy")
        assert websocket.recv() == "hello through the reverse proxy"
    assert httpx.get(f"http://{host}:{port}/").status_code in (200, 404, 426)  # still serving


def test_answers_502_503_504_with_generic_bodies(start_lanner: Any, start_backend: Any) -> None:
    slow = start_backend("slow")
    dead = BackendProcess("dead")
    dead.stop()
    lanner = start_lanner(
        reverse_config(
            [
                pool("dead", [dead], outlier={"consecutive_gateway_failures": 0}),
                pool("slow", [slow], response_timeout=0.5),
                {"name": "drained", "backends": [{"address": slow.address, "drain": True}]},
            ],
            [
                {"match": {"path": "/dead"}, "pool": "dead"},
                {"match": {"path": "/drained"}, "pool": "drained"},
                {"pool": "slow"},
            ],
        )
    )
    url = base_url(lanner)
    refused = httpx.get(f"{url}/dead")
    assert (refused.status_code, refused.text) == (502, "502 Bad Gateway: bad gateway\n")
    assert dead.address not in refused.text
    unavailable = httpx.get(f"{url}/drained")
    assert (unavailable.status_code, unavailable.text) == (
        503,
        "503 Service Unavailable: service unavailable\n",
    )
    timed_out = httpx.get(f"{url}/slow?s=3", timeout=10)
    assert (timed_out.status_code, timed_out.text) == (504, "504 Gateway Timeout: gateway timeout\n")
    lanner.wait_log(r"outcome=refused detail=\"?127.0.0.1:\d+ refused the connection")
    lanner.wait_log(r"outcome=unavailable detail=\"?pool drained: no backend is up")
    lanner.wait_log(r"outcome=timeout detail=\"?backend 127.0.0.1:\d+ sent no response in 0.5s")
    assert httpx.get(f"{url}/fast").status_code == 200  # the same process keeps serving
    flows = wait_flows(lanner.store_path, 4)
    errors = sorted(flow.error or "" for flow in flows)
    assert any("504" in error and "sent no response" in error for error in errors), errors
    assert any("502" in error and "refused" in error for error in errors), errors


def test_reset_mid_response_breaks_the_response_without_hanging(
    start_lanner: Any, start_backend: Any
) -> None:
    backend = start_backend("b")
    lanner = start_lanner(reverse_config([pool("p", [backend])], [{"pool": "p"}]))
    with pytest.raises(httpx.RemoteProtocolError):
        httpx.get(f"{base_url(lanner)}/reset", timeout=10)
    lanner.wait_log(r"outcome=(upstream_error|reset)")
    assert httpx.get(f"{base_url(lanner)}/after").status_code == 200


def test_read_timeout_cuts_a_stalled_response(start_lanner: Any, start_backend: Any) -> None:
    backend = start_backend("b")
    lanner = start_lanner(reverse_config([pool("p", [backend], read_timeout=0.5)], [{"pool": "p"}]))
    with pytest.raises(httpx.RemoteProtocolError):
        httpx.get(f"{base_url(lanner)}/stream?n=3&every=3", timeout=20)
    lanner.wait_log(r"sent nothing for 0.5s")


def test_killed_backend_is_ejected_and_idempotent_requests_see_no_error(
    start_lanner: Any, start_backend: Any
) -> None:
    backends = [start_backend(f"b{index}") for index in range(3)]
    lanner = start_lanner(
        reverse_config([pool("p", backends, outlier={"max_ejection_percent": 50})], [{"pool": "p"}])
    )
    url = base_url(lanner)
    with httpx.Client() as client:
        for _ in range(30):
            assert client.get(f"{url}/").status_code == 200
        backends[1].kill()
        served: collections.Counter[str] = collections.Counter()
        for _ in range(60):
            response = client.get(f"{url}/")
            assert response.status_code == 200  # retried on another backend
            served[served_by(response)] += 1
    assert "b1" not in served and served["b0"] > 10 and served["b2"] > 10
    lanner.wait_log(rf"backend ejected.*backend=127.0.0.1:{backends[1].port}")
    lanner.wait_log(r"retried=")


def test_backend_returning_5xx_is_ejected(start_lanner: Any, start_backend: Any) -> None:
    good, bad = start_backend("good"), start_backend("bad")
    bad.control(fail=500)
    lanner = start_lanner(
        reverse_config(
            [pool("p", [good, bad], outlier={"consecutive_5xx": 3, "max_ejection_percent": 50})],
            [{"pool": "p"}],
        )
    )
    statuses = collections.Counter(httpx.get(f"{base_url(lanner)}/").status_code for _ in range(40))
    assert statuses[500] == 3  # a 5xx is the backend's answer (passed on), until it is ejected
    assert statuses[200] == 37
    lanner.wait_log(r"backend ejected.*3 answers 5xx in a row")


def test_ejection_cap_keeps_the_last_backends(start_lanner: Any, start_backend: Any) -> None:
    backends = [start_backend(f"b{index}") for index in range(2)]
    for backend in backends:
        backend.control(fail=503)
    lanner = start_lanner(
        reverse_config([pool("p", backends, outlier={"consecutive_5xx": 2})], [{"pool": "p"}])
    )
    statuses = [httpx.get(f"{base_url(lanner)}/").status_code for _ in range(12)]
    assert statuses.count(503) == 12  # passed on; with a 10% cap only one of two is ever ejected
    lanner.wait_log(r"backend not ejected: the pool's ejection cap is reached")


def test_health_checks_take_backends_out_and_back(start_lanner: Any, start_backend: Any) -> None:
    up, flapping = start_backend("up"), start_backend("flapping")
    health = {"path": "/health", "interval": 0.2, "timeout": 1, "rise": 2, "fall": 2, "jitter": 0.1}
    lanner = start_lanner(reverse_config([pool("p", [up, flapping], health=health)], [{"pool": "p"}]))
    url = base_url(lanner)
    flapping.control(health="down")
    lanner.wait_log(rf"backend down.*backend=127.0.0.1:{flapping.port}.*status 503")
    assert {served_by(httpx.get(f"{url}/")) for _ in range(20)} == {"up"}
    flapping.control(health="up")
    lanner.wait_log(rf"backend up.*backend=127.0.0.1:{flapping.port}")
    assert {served_by(httpx.get(f"{url}/")) for _ in range(20)} == {"up", "flapping"}
    up.kill()
    lanner.wait_log(rf"backend down.*backend=127.0.0.1:{up.port}")
    assert {served_by(httpx.get(f"{url}/")) for _ in range(10)} == {"flapping"}


def test_tcp_health_check_and_all_backends_down(start_lanner: Any, start_backend: Any) -> None:
    backends = [start_backend(f"b{index}") for index in range(2)]
    health = {"type": "tcp", "interval": 0.2, "fall": 1, "rise": 1}
    lanner = start_lanner(reverse_config([pool("p", backends, health=health)], [{"pool": "p"}]))
    for backend in backends:
        backend.kill()
    for backend in backends:
        lanner.wait_log(rf"backend down.*backend=127.0.0.1:{backend.port}")
    response = httpx.get(f"{base_url(lanner)}/")
    assert (response.status_code, response.text) == (503, "503 Service Unavailable: service unavailable\n")


def test_breaker_answers_503_at_once_past_max_requests(start_lanner: Any, start_backend: Any) -> None:
    backend = start_backend("b")
    breaker = {"max_requests": 2, "max_connections": 2, "max_pending": 0}
    lanner = start_lanner(reverse_config([pool("p", [backend], breaker=breaker)], [{"pool": "p"}]))
    url = base_url(lanner)

    async def burst() -> list[int]:
        import asyncio

        async with httpx.AsyncClient(timeout=20) as client:
            responses = await asyncio.gather(*(client.get(f"{url}/slow?s=1") for _ in range(6)))
        return [response.status_code for response in responses]

    import asyncio

    statuses = asyncio.run(burst())
    assert statuses.count(200) == 2 and statuses.count(503) == 4, statuses
    lanner.wait_log(r"outcome=unavailable detail=\"?pool p: every backend up has 2 requests in flight")
    assert httpx.get(f"{url}/").status_code == 200


def test_drain_finishes_requests_in_flight_and_survives_reload(start_lanner: Any, start_backend: Any) -> None:
    first, second = start_backend("first"), start_backend("second")
    config = reverse_config([pool("p", [first, second])], [{"pool": "p"}])
    lanner = start_lanner(config)
    url = base_url(lanner)
    with (
        httpx.Client(timeout=20) as client,
        client.stream("GET", f"{url}/stream?n=10&every=0.1") as streaming,
    ):
        origin = None
        drained = False
        lines = []
        for line in streaming.iter_lines():
            lines.append(line)
            origin = line.rsplit(" ", 1)[1]
            if not drained:
                # Drain the backend serving the stream through a config reload (SIGHUP).
                address = first.address if origin == "first" else second.address
                lanner.config["pools"][0]["backends"] = [
                    {"address": b.address, "drain": b.address == address} for b in (first, second)
                ]
                lanner.path.write_text(__import__("yaml").safe_dump(lanner.config))
                lanner.proc.send_signal(__import__("signal").SIGHUP)
                lanner.wait_log(r"backend drained|config reloaded")
                drained = True
    assert len(lines) == 10  # the request in flight finished on the drained backend
    other = "second" if origin == "first" else "first"
    assert {served_by(httpx.get(f"{url}/")) for _ in range(10)} == {other}


def test_bad_requests_get_defined_answers(start_lanner: Any, start_backend: Any) -> None:
    backend = start_backend("b")
    lanner = start_lanner(reverse_config([pool("p", [backend])], [{"pool": "p"}]))
    port = lanner.addr("api")[1]
    assert exchange(port, b"CONNECT x:443 HTTP/1.1\r\nHost: x\r\n\r\n").startswith(b"HTTP/1.1 405 ")
    assert exchange(port, b"GET nothing HTTP/1.1\r\nHost: x\r\n\r\n").startswith(b"HTTP/1.1 400 ")
    assert exchange(port, b"\x16\x03\x01\x00\x05hello").startswith(b"HTTP/1.1 400 ")
    absolute = exchange(port, b"GET http://a.example/abs HTTP/1.1\r\nConnection: close\r\n\r\n")
    assert absolute.startswith(b"HTTP/1.1 200 ") and b'"/abs"' in absolute
    time.sleep(0.1)
    assert httpx.get(f"{base_url(lanner)}/").status_code == 200


def test_https_reverse_listener_terminates_tls(
    start_lanner: Any, start_backend: Any, test_ca: Any, tmp_path: Any
) -> None:
    import ssl

    backend = start_backend("b")
    cert, key, ca = write_certificate(test_ca, tmp_path)
    lanner = start_lanner(
        reverse_config(
            [pool("p", [backend])], [{"pool": "p"}], certificates=[{"cert": str(cert), "key": str(key)}]
        )
    )
    host, port = lanner.addr("api")
    with httpx.Client(verify=ssl.create_default_context(cafile=str(ca))) as client:
        response = client.get(f"https://{host}:{port}/secure?x=1")
    headers = echoed_headers(response)
    assert headers["x-forwarded-proto"] == ["https"]
    assert "proto=https" in headers["forwarded"][0]
    (flow,) = wait_flows(lanner.store_path, 1)
    assert (flow.scheme, flow.path, flow.status) == ("https", "/secure?x=1", 200)
