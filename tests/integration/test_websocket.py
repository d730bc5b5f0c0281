"""WebSocket through every mode, with the `websockets` library and aiohttp, echoed by a real server.

Where analysis is on, every message is recorded as a flow (proto websocket)
on the upgrade's connection: text and binary, both directions, fragmented
messages reassembled, permessage-deflate decoded.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import subprocess
import sys
from pathlib import Path
from typing import Any

import aiohttp
import trustme
from websockets.sync.client import ClientConnection, connect

from lanner.record.model import FlowRecord
from tests.integration.servers import WsEcho
from tests.integration.store_reads import wait_flows

BIG = "compress me " * 5000


def conversation(ws: ClientConnection) -> None:
    ws.send("hello text")
    assert ws.recv() == "hello text"
    ws.send(b"\x00\x01binary")
    assert ws.recv() == b"\x00\x01binary"
    ws.send(["part1-", "part2"])  # fragmented by the client
    assert ws.recv() == "part1-part2"
    ws.send("fragment-me")  # answered in three fragments
    assert ws.recv() == "frag1-frag2-frag3"
    ws.send(BIG)
    assert ws.recv() == BIG


def payload(flow: FlowRecord) -> bytes:
    body = flow.request_body if flow.notes["direction"] == "send" else flow.response_body
    return body.data


def assert_recorded(store: Path, scheme: str) -> list[FlowRecord]:
    flows = wait_flows(store, 12, "proto:websocket")
    seen = {(f.notes["direction"], f.method, payload(f)) for f in flows}
    for direction in ("send", "receive"):
        assert (direction, "TEXT", b"hello text") in seen
        assert (direction, "BINARY", b"\x00\x01binary") in seen
        assert (direction, "TEXT", b"part1-part2") in seen
        assert (direction, "TEXT", BIG.encode()) in seen
    assert ("receive", "TEXT", b"frag1-frag2-frag3") in seen
    assert {f.method for f in flows if f.method == "CLOSE"} == {"CLOSE"}
    big = [f for f in flows if payload(f) == BIG.encode()]
    assert all(f.notes.get("compressed") == "permessage-deflate" for f in big)
    assert {f.scheme for f in flows} == {scheme}
    assert len({f.conn_uid for f in flows}) == 1
    (upgrade,) = wait_flows(store, 1, f'conn:"{flows[0].conn_uid}" status:101')
    assert upgrade.notes.get("upgraded") == "101"
    return flows


def lanner_flows(store: Path, *args: str) -> str:
    command = [sys.executable, "-m", "lanner", "flows", "--db", str(store), *args]
    return subprocess.run(command, capture_output=True, text=True, check=True).stdout


def lanner_ca(lanner: Any) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(Path(lanner.config["data_dir"]) / "ca" / "ca.pem"))


def test_forward_proxy_absolute_form_upgrade_is_recorded(start_lanner: Any, ws_echo: WsEcho) -> None:
    lanner = start_lanner({"listeners": [{"name": "forward"}]})

    async def talk() -> None:
        async with aiohttp.ClientSession() as session:
            url = f"ws://127.0.0.1:{ws_echo.port}/chat"
            async with session.ws_connect(url, proxy=lanner.http_proxy, compress=15) as ws:
                for message in ("hello text", BIG):
                    await ws.send_str(message)
                    assert (await ws.receive_str()) == message
                await ws.send_bytes(b"\x00\x01binary")
                assert (await ws.receive_bytes()) == b"\x00\x01binary"
                await ws.send_str("fragment-me")
                assert (await ws.receive_str()) == "frag1-frag2-frag3"

    asyncio.run(talk())
    flows = wait_flows(lanner.store_path, 9, "proto:websocket")
    seen = {(f.notes["direction"], f.method, payload(f)) for f in flows}
    assert ("receive", "TEXT", b"frag1-frag2-frag3") in seen
    assert ("send", "TEXT", BIG.encode()) in seen and ("receive", "BINARY", b"\x00\x01binary") in seen
    assert {f.scheme for f in flows} == {"ws"} and {f.path for f in flows} == {"/chat"}


def test_forward_proxy_connect_tunnel_carries_websocket(start_lanner: Any, ws_echo: WsEcho) -> None:
    lanner = start_lanner({"listeners": [{"name": "forward"}]})
    with connect(f"ws://127.0.0.1:{ws_echo.port}/", proxy=lanner.http_proxy) as ws:
        conversation(ws)


def test_intercepted_wss_is_recorded(start_lanner: Any, wss_echo: WsEcho, ca_file: Path) -> None:
    lanner = start_lanner({"intercept": [{"hosts": ["localhost"], "ca_file": str(ca_file)}]})
    url = f"wss://localhost:{wss_echo.port}/live"
    with connect(url, proxy=lanner.http_proxy, ssl=lanner_ca(lanner)) as ws:
        conversation(ws)
    flows = assert_recorded(lanner.store_path, "wss")
    assert {f.path for f in flows} == {"/live"} and {f.host for f in flows} == {"localhost"}
    (upgrade,) = wait_flows(lanner.store_path, 1, "status:101")
    shown = lanner_flows(lanner.store_path, "show", str(upgrade.id))
    assert "websocket messages (12):" in shown and "-> TEXT" in shown and "<- TEXT" in shown
    assert "frag1-frag2-frag3" in shown
    listed = lanner_flows(lanner.store_path, "list", "proto:websocket")
    assert listed.count("ws->") == 6 and listed.count("ws<-") == 6
    har = json.loads(lanner_flows(lanner.store_path, "export", "--har", "-"))
    (entry,) = har["log"]["entries"]  # the messages are inside their upgrade's entry
    messages = entry["_webSocketMessages"]
    assert len(messages) == 12 and {m["type"] for m in messages} == {"send", "receive"}
    assert {"type": "receive", "opcode": 1, "data": "frag1-frag2-frag3"}.items() <= next(
        m for m in messages if m["data"] == "frag1-frag2-frag3"
    ).items()


def test_terminated_tls_listener_carries_and_records_websocket(
    start_lanner: Any, ws_echo: WsEcho, test_ca: trustme.CA, tmp_path: Path
) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    issued = test_ca.issue_cert("localhost")
    issued.cert_chain_pems[0].write_to_path(str(cert))
    issued.private_key_pem.write_to_path(str(key))
    lanner = start_lanner(
        {
            "listeners": [
                {
                    "name": "edge",
                    "type": "tls",
                    "certificates": [{"cert": str(cert), "key": str(key)}],
                    "target": f"127.0.0.1:{ws_echo.port}",
                    "analyze": "http",
                }
            ]
        }
    )
    trust = ssl.create_default_context()
    test_ca.configure_trust(trust)
    with connect(f"wss://localhost:{lanner.port}/edge", ssl=trust) as ws:
        conversation(ws)
    assert_recorded(lanner.store_path, "wss")


def test_router_passes_websocket_by_host(start_lanner: Any, ws_echo: WsEcho) -> None:
    lanner = start_lanner(
        {
            "listeners": [
                {
                    "name": "edge",
                    "type": "router",
                    "routes": [{"match": "localhost", "target": f"127.0.0.1:{ws_echo.port}"}],
                }
            ]
        }
    )
    with connect(f"ws://localhost:{lanner.port}/") as ws:
        conversation(ws)
