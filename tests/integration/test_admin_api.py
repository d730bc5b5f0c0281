"""The admin API of a running lanner, driven with httpx, curl and websockets against real traffic."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect as ws_connect

from tests.integration.servers import Origin, free_port
from tests.integration.store_reads import wait_flows

TOKEN = "s3cret-admin-token-0123456789"


def proxied(lanner: Any, origin: Origin, path: str, **kwargs: Any) -> httpx.Response:
    with httpx.Client(proxy=lanner.http_proxy, timeout=10) as client:
        return client.get(f"http://127.0.0.1:{origin.port}{path}", **kwargs)


def api(lanner: Any, path: str, method: str = "GET", **kwargs: Any) -> httpx.Response:
    return httpx.request(method, f"{lanner.admin_url}{path}", timeout=10, **kwargs)


def error_of(response: httpx.Response) -> dict[str, Any]:
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"status", "code", "message", "request_id"}
    assert body["error"]["status"] == response.status_code
    assert body["error"]["request_id"] == response.headers["x-request-id"]
    error: dict[str, Any] = body["error"]
    return error


def audit_lines(lanner: Any) -> list[dict[str, Any]]:
    path = Path(lanner.config["data_dir"]) / "audit.log"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_flows_pages_filters_details_bodies_har_and_stats(start_lanner: Any, origin: Origin) -> None:
    lanner = start_lanner({})
    for index in range(25):
        proxied(lanner, origin, f"/status?code={200 if index % 5 else 503}&n={index}")
    proxied(lanner, origin, "/gzip")
    wait_flows(lanner.store_path, 26)

    seen: list[int] = []
    cursor = None
    while True:
        params = {"limit": 10, **({"cursor": cursor} if cursor else {})}
        page = api(lanner, "/api/v1/flows", params=params).json()
        seen += [flow["id"] for flow in page["flows"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == sorted(seen, reverse=True) and len(set(seen)) == 26

    failed = api(lanner, "/api/v1/flows", params={"filter": "status:503"}).json()["flows"]
    assert len(failed) == 5 and {flow["status"] for flow in failed} == {503}
    assert api(lanner, "/api/v1/flows/count", params={"filter": "status:>=500"}).json() == {"count": 5}

    gzip_flow = api(lanner, "/api/v1/flows", params={"filter": "path:/gzip"}).json()["flows"][0]
    detail = api(lanner, f"/api/v1/flows/{gzip_flow['id']}").json()
    assert detail["response"]["body"]["content_type"] == "application/json"
    assert json.loads(detail["response"]["body"]["text"]) == {"packed": True, "word": "zebracorn"}
    assert ["Content-Encoding", "gzip"] in detail["response"]["headers"]
    assert detail["connection"]["uid"] == detail["conn_uid"]
    raw = api(lanner, f"/api/v1/flows/{gzip_flow['id']}/body/response")
    assert raw.headers["x-content-encoding"] == "gzip" and raw.content[:2] == b"\x1f\x8b"
    assert raw.headers["content-type"] == "application/octet-stream"
    assert raw.headers["x-content-type-options"] == "nosniff" and raw.headers["content-security-policy"] == "sandbox"

    har = api(lanner, "/api/v1/flows.har", params={"filter": "status:503"}).json()
    assert len(har["log"]["entries"]) == 5
    newest_two = api(lanner, "/api/v1/flows.har", params={"filter": "status:503", "limit": 2}).json()
    assert [e["request"]["url"] for e in newest_two["log"]["entries"]] == [
        e["request"]["url"] for e in har["log"]["entries"][-2:]
    ]
    assert {entry["response"]["status"] for entry in har["log"]["entries"]} == {503}

    stats = api(lanner, "/api/v1/stats").json()
    assert stats["flows"] == 26 and stats["status_classes"] == {"2xx": 21, "5xx": 5}


def test_errors_have_one_json_shape(start_lanner: Any) -> None:
    lanner = start_lanner({})
    cases = [
        ("/api/v1/flows?filter=status:%3E", 400, "bad_filter"),
        ("/api/v1/flows?cursor=0", 400, "bad_cursor"),
        ("/api/v1/flows?cursor=abc", 422, "invalid_request"),
        ("/api/v1/flows/999999", 404, "not_found"),
        ("/api/v1/flows/0", 422, "invalid_request"),
        ("/api/v1/flows/99999999999999999999999", 422, "invalid_request"),
        ("/api/v1/flows/1/body/sideways", 422, "invalid_request"),
        ("/api/v1/no-such-thing", 404, "not_found"),
    ]
    for path, status, code in cases:
        response = api(lanner, path)
        assert (response.status_code, error_of(response)["code"]) == (status, code), path
    response = api(lanner, "/api/v1/listeners", method="PUT")
    assert (response.status_code, error_of(response)["code"]) == (405, "method_not_allowed")
    assert api(lanner, "/health").json() == {"status": "ok"}  # still serving


def test_connections_listed_and_closed_with_correlation_and_audit(
    start_lanner: Any, tcp_echo: Any
) -> None:
    lanner = start_lanner({})
    tunnel = socket.create_connection(lanner.addr(), timeout=10)
    tunnel.sendall(f"CONNECT 127.0.0.1:{tcp_echo.port} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    assert tunnel.recv(4096).startswith(b"HTTP/1.1 200")
    tunnel.sendall(b"ping")
    assert tunnel.recv(4096) == b"ping"

    listed = api(lanner, "/api/v1/connections").json()
    assert len(listed) == 1
    conn = listed[0]
    assert conn["dest"] == f"127.0.0.1:{tcp_echo.port}" and conn["protocol"] == "connect"
    assert conn["up"] == 4 and conn["down"] == 4 and conn["age"] >= 0
    listeners = api(lanner, "/api/v1/listeners").json()
    assert listeners[0]["open"] == 1 and listeners[0]["addresses"] == [lanner.config["listeners"][0]["bind"]]

    closed = api(lanner, f"/api/v1/connections/{conn['uid']}", method="DELETE", headers={"X-Request-Id": "rid-42"})
    assert closed.json() == {"closed": conn["uid"]} and closed.headers["x-request-id"] == "rid-42"
    tunnel.settimeout(10)
    assert tunnel.recv(4096) == b""  # closed by lanner
    tunnel.close()
    # The uid is the correlation id: the same in the connection's log line.
    lanner.wait_log(rf"connection id={conn['uid']} [^\n]*outcome=closed_by_admin")
    assert api(lanner, "/api/v1/connections").json() == []
    entries = audit_lines(lanner)
    assert [(e["method"], e["path"], e["status"], e["request_id"]) for e in entries] == [
        ("DELETE", f"/api/v1/connections/{conn['uid']}", 200, "rid-42")
    ]
    assert entries[0]["client"].startswith("127.0.0.1:") and entries[0]["token"] is None


def test_flow_and_log_share_the_connection_uid(start_lanner: Any, origin: Origin) -> None:
    lanner = start_lanner({})
    proxied(lanner, origin, "/small")
    wait_flows(lanner.store_path, 1)
    flow = api(lanner, "/api/v1/flows").json()["flows"][0]
    lanner.wait_log(rf"connection id={flow['conn_uid']} listener=forward")
    assert api(lanner, "/api/v1/flows", params={"filter": f'conn:"{flow["conn_uid"]}"'}).json()["flows"] == [flow]


def test_config_is_shown_with_secrets_masked(start_lanner: Any) -> None:
    lanner = start_lanner(
        {
            "users": [{"name": "alice", "password": "wonderland"}],
            "admin": {"bind": f"127.0.0.1:{free_port()}", "token": TOKEN},
        }
    )
    shown = api(lanner, "/api/v1/config", headers={"Authorization": f"Bearer {TOKEN}"})
    text = shown.text
    assert "wonderland" not in text and TOKEN not in text
    config = shown.json()
    assert config["users"][0] == {"name": "alice", "password": "********", "socks4": False}
    assert config["admin"]["token"] == "********"


def test_token_required_everywhere_but_probes(start_lanner: Any, origin: Origin) -> None:
    lanner = start_lanner({"admin": {"bind": f"127.0.0.1:{free_port()}", "token": TOKEN}})
    proxied(lanner, origin, "/small")
    for path in ("/api/v1/flows", "/api/v1/connections", "/metrics", "/api/v1/openapi.json"):
        refused = api(lanner, path)
        assert refused.status_code == 401 and refused.headers["www-authenticate"] == "Bearer", path
        assert error_of(refused)["code"] == "unauthorized"
        wrong = api(lanner, path, headers={"Authorization": "Bearer not-the-token-at-all"})
        assert wrong.status_code == 401
        assert api(lanner, path, headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200, path
    assert api(lanner, "/health").status_code == 200
    assert api(lanner, "/ready").json()["ready"] is True
    refused = api(lanner, "/api/v1/config/reload", method="POST")
    assert refused.status_code == 401
    assert [entry["status"] for entry in audit_lines(lanner)] == []  # refused before it changed anything
    with pytest.raises(InvalidStatus) as refused:
        ws_connect(f"ws://{lanner.config['admin']['bind']}/api/v1/stream", open_timeout=5).close()
    assert refused.value.response.status_code == 403
    with ws_connect(f"ws://{lanner.config['admin']['bind']}/api/v1/stream?token={TOKEN}", open_timeout=5) as ws:
        assert json.loads(ws.recv(timeout=5))["type"] == "hello"


def test_non_loopback_admin_needs_a_token(tmp_path: Path) -> None:
    config = tmp_path / "lanner.yaml"
    config.write_text(f"admin:\n  bind: 0.0.0.0:{free_port()}\n")
    result = subprocess.run(
        [sys.executable, "-m", "lanner", "run", "-c", str(config)], capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 1
    assert "admin" in result.stderr and "not a loopback address: set admin.token" in result.stderr
    assert f"{config}:2" in result.stderr  # file and line


def test_non_loopback_admin_with_a_token_serves(start_lanner: Any) -> None:
    port = free_port()
    lanner = start_lanner({"admin": {"bind": f"0.0.0.0:{port}", "token": TOKEN}})
    url = f"http://127.0.0.1:{port}/api/v1/listeners"
    assert httpx.get(url, headers={"Authorization": f"Bearer {TOKEN}"}).json()[0]["name"] == "forward"
    assert httpx.get(url).status_code == 401
    assert lanner.alive()


def test_without_a_token_foreign_hosts_and_origins_are_refused(start_lanner: Any) -> None:
    lanner = start_lanner({})
    port = lanner.admin_url.rsplit(":", 1)[1]
    for host in ("attacker.example", f"127.attacker.example:{port}", f"localhost.attacker.example:{port}", "[::1"):
        rebound = api(lanner, "/api/v1/listeners", headers={"Host": host})
        assert (rebound.status_code, error_of(rebound)["code"]) == (403, "forbidden"), host
    for host in (f"localhost:{port}", f"127.0.0.2:{port}", f"[::1]:{port}"):
        assert api(lanner, "/api/v1/listeners", headers={"Host": host}).status_code == 200, host
    opaque = api(lanner, "/api/v1/connections/x", method="DELETE", headers={"Origin": "null"})
    assert opaque.status_code == 403  # a sandboxed frame or a data: URL is another origin too
    for origin in ("null", "http://attacker.example"):
        with pytest.raises(InvalidStatus) as refused:
            ws_connect(f"ws://{lanner.config['admin']['bind']}/api/v1/stream", origin=origin, open_timeout=5).close()
        assert refused.value.response.status_code == 403
    cross = api(lanner, "/api/v1/connections/x", method="DELETE", headers={"Origin": "http://attacker.example"})
    assert cross.status_code == 403
    same = api(lanner, "/api/v1/connections/x", method="DELETE", headers={"Origin": lanner.admin_url})
    assert same.status_code == 404  # allowed through, and there is no such connection
    curl = subprocess.run(
        ["curl", "-s", f"{lanner.admin_url}/api/v1/listeners"], capture_output=True, text=True, timeout=10
    )
    assert json.loads(curl.stdout)[0]["type"] == "forward"


def test_stream_pushes_matching_flows_and_connection_events(start_lanner: Any, origin: Origin) -> None:
    lanner = start_lanner({})
    bind = lanner.config["admin"]["bind"]
    with ws_connect(f"ws://{bind}/api/v1/stream?filter=status:404", open_timeout=5) as ws:
        assert json.loads(ws.recv(timeout=5)) == {"type": "hello", "filter": "status:404"}
        proxied(lanner, origin, "/small")
        proxied(lanner, origin, "/missing")
        events: list[dict[str, Any]] = []
        deadline = time.monotonic() + 15
        while not any(e["type"] == "flow" for e in events) and time.monotonic() < deadline:
            events.append(json.loads(ws.recv(timeout=15)))
        flows = [e["flow"] for e in events if e["type"] == "flow"]
        assert [(f["path"], f["status"]) for f in flows] == [("/missing", 404)]
        opened = [e for e in events if e["type"] == "connection" and e["event"] == "opened"]
        closed = [e for e in events if e["type"] == "connection" and e["event"] == "closed"]
        assert len(opened) == 2 and len(closed) == 2
        assert {e["connection"]["uid"] for e in closed} == {e["connection"]["uid"] for e in opened}
        assert flows[0]["conn_uid"] in {e["connection"]["uid"] for e in closed}
    with ws_connect(f"ws://{bind}/api/v1/stream?filter=status:%3E", open_timeout=5) as ws:
        answer = json.loads(ws.recv(timeout=5))
        assert answer["type"] == "error" and answer["code"] == "bad_filter"


def test_slow_stream_client_is_dropped_and_the_proxy_keeps_serving(start_lanner: Any, origin: Origin) -> None:
    lanner = start_lanner({"admin": {"bind": f"127.0.0.1:{free_port()}", "stream_buffer": 200}})
    bind = lanner.config["admin"]["bind"]
    slow = socket.socket()
    slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connecting: a small window
    slow.connect(("127.0.0.1", int(bind.rsplit(":", 1)[1])))
    key = "dGhlIHNhbXBsZSBub25jZQ=="
    slow.sendall(
        (
            "GET /api/v1/stream HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    slow.settimeout(5)
    assert slow.recv(4096).startswith(b"HTTP/1.1 101")
    # Never read again: once the socket buffers are full, events pile up in the hub until it
    # gives up on this client (the buffer is big enough that a burst alone does not fill it).
    with httpx.Client(proxy=lanner.http_proxy, timeout=10) as client:
        for sent in range(1, 2001):
            assert client.get(f"http://127.0.0.1:{origin.port}/small?{'x' * 6000}").status_code == 200
            if sent % 50 == 0 and "too slow" in lanner.log():
                break
    lanner.wait_log(r"live stream client too slow: disconnected")
    assert proxied(lanner, origin, "/small").status_code == 200
    with ws_connect(f"ws://{bind}/api/v1/stream", open_timeout=5) as ws:  # others still welcome
        assert json.loads(ws.recv(timeout=5))["type"] == "hello"
    slow.close()


def test_upstreams_listed_drained_and_undrained(start_lanner: Any, start_backend: Any) -> None:
    backend = start_backend("b1")
    lanner = start_lanner(
        {
            "listeners": [{"name": "web", "type": "reverse", "routes": [{"pool": "p"}]}],
            "pools": [{"name": "p", "backends": [{"address": backend.address}]}],
        }
    )
    with httpx.Client(timeout=10) as client:
        host, port = lanner.addr("web")
        assert client.get(f"http://{host}:{port}/").status_code == 200
    listed = api(lanner, "/api/v1/upstreams").json()
    assert [(b["pool"], b["backend"]) for b in listed["pools"]] == [("p", backend.address)]
    assert listed["pools"][0]["requests"] == 1 and listed["pools"][0]["latency_ms"] > 0
    assert listed["providers"] == []
    drained = api(lanner, f"/api/v1/upstreams/p/{backend.address}/drain", method="POST")
    assert drained.json() == {"pool": "p", "address": backend.address, "drained": True}
    assert api(lanner, "/api/v1/upstreams").json()["pools"][0]["state"] == "draining"
    assert api(lanner, f"/api/v1/upstreams/p/{backend.address}/undrain", method="POST").json()["drained"] is False
    missing = api(lanner, "/api/v1/upstreams/p/127.0.0.1:1/drain", method="POST")
    assert (missing.status_code, error_of(missing)["code"]) == (404, "not_found")
    assert [e["path"].rsplit("/", 1)[1] for e in audit_lines(lanner)] == ["drain", "undrain", "drain"]


def test_api_reload_under_workers_reloads_each_worker_once(start_lanner: Any) -> None:
    lanner = start_lanner({}, "--workers", "2")
    answer = api(lanner, "/api/v1/config/reload", method="POST")
    assert answer.status_code == 200 and answer.json()["ok"] is True
    lanner.wait_log(r"config reloaded source=api [^\n]*worker=0")
    lanner.wait_log(r"config reloaded source=signal [^\n]*worker=1")
    assert api(lanner, "/health").status_code == 200
    lines = [line for line in lanner.log().splitlines() if "config reloaded" in line]
    assert sorted(line.rsplit("worker=", 1)[1] for line in lines) == ["0", "1"], lines


def test_invalid_config_reload_is_refused_with_file_and_line(start_lanner: Any, origin: Origin) -> None:
    lanner = start_lanner({})
    lanner.path.write_text(lanner.path.read_text() + "limits:\n  idle_timeout: -1\n")
    refused = api(lanner, "/api/v1/config/reload", method="POST")
    error = error_of(refused)
    assert (refused.status_code, error["code"]) == (400, "invalid_config")
    assert f"{lanner.path}:" in error["message"] and "limits.idle_timeout" in error["message"]
    assert proxied(lanner, origin, "/small").status_code == 200  # the running config keeps serving
    assert [(e["path"], e["status"]) for e in audit_lines(lanner)] == [("/api/v1/config/reload", 400)]
