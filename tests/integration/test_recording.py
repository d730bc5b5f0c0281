"""Recording: real clients through lanner, real origins, flows read back from the store."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import requests

from lanner.record.model import header
from tests.conftest import require_binary
from tests.integration.servers import Origin, TcpEcho
from tests.integration.store_reads import wait_connection_records, wait_flows, whole


@pytest.fixture(scope="module")
def recording(module_lanner: Any) -> Any:
    return module_lanner({"listeners": [{"name": "forward"}]})


def test_curl_exchanges_are_recorded_with_bodies_and_timings(recording: Any, origin: Origin) -> None:
    require_binary("curl")
    base = f"http://127.0.0.1:{origin.port}"
    for args in (
        [f"{base}/small?tag=curl1"],
        ["-d", '{"name":"ada"}', "-H", "Content-Type: application/json", f"{base}/echo?tag=curl2"],
        ["-I", f"{base}/small?tag=curl3"],
        [f"{base}/chunked?tag=curl4"],
    ):
        subprocess.run(["curl", "-sf", "-x", recording.http_proxy, "-o", "/dev/null", *args], check=True)
    flows = {f.path.split("tag=")[1]: f for f in wait_flows(recording.store_path, 4, "url:*tag=curl*")}
    get, post, head, chunked = flows["curl1"], flows["curl2"], flows["curl3"], flows["curl4"]
    assert (get.method, get.status, get.host, get.port, get.scheme) == (
        "GET",
        200,
        "127.0.0.1",
        origin.port,
        "http",
    )
    assert get.url == f"{base}/small?tag=curl1"
    assert whole(recording.store_path, get.id).response_body.data == b"hello-from-origin\n"
    post_whole = whole(recording.store_path, post.id)
    assert post_whole.request_body.data == b'{"name":"ada"}'
    assert post_whole.response_body.data == b'{"name":"ada"}'
    assert (head.method, head.status, head.response_body.size) == ("HEAD", 200, 0)
    chunked_whole = whole(recording.store_path, chunked.id)
    assert chunked_whole.response_body.data == b"first,second,third"  # chunk framing removed
    assert ("X-Checksum", "42") in chunked_whole.response_trailers
    for flow in flows.values():
        assert flow.request_ended is not None and flow.response_started is not None
        assert flow.started <= flow.request_ended <= flow.response_started <= (flow.response_ended or 0)
        assert flow.listener == "forward" and flow.client.startswith("127.0.0.1:")


def test_keep_alive_session_records_every_request(recording: Any, origin: Origin) -> None:
    with requests.Session() as session:
        session.proxies = {"http": recording.http_proxy}
        for index in range(5):
            reply = session.get(f"http://127.0.0.1:{origin.port}/small?tag=keep{index}")
            assert reply.status_code == 200
    flows = wait_flows(recording.store_path, 5, "url:*tag=keep*")
    assert len({flow.conn_uid for flow in flows}) == 1  # one connection, five flows under it


def test_gzip_body_stored_as_sent_and_searchable_decoded(recording: Any, origin: Origin) -> None:
    reply = httpx.get(f"http://127.0.0.1:{origin.port}/gzip?tag=gz", proxy=recording.http_proxy)
    assert reply.json() == {"packed": True, "word": "zebracorn"}
    (flow,) = wait_flows(recording.store_path, 1, "url:*tag=gz*")
    stored = whole(recording.store_path, flow.id)
    assert stored.response_body.data[:2] == b"\x1f\x8b"  # as it crossed the wire
    assert header(stored.response_headers, "set-cookie") == "[redacted]"
    (found,) = wait_flows(recording.store_path, 1, 'body:"zebracorn"')
    assert found.id == flow.id


def test_secrets_are_redacted_by_default(recording: Any, origin: Origin) -> None:
    requests.get(
        f"http://127.0.0.1:{origin.port}/headers?tag=secret",
        proxies={"http": recording.http_proxy},
        headers={"Authorization": "Bearer hunter2", "Cookie": "sid=hunter2", "X-Plain": "visible"},
        timeout=10,
    )
    (flow,) = wait_flows(recording.store_path, 1, "url:*tag=secret*")
    assert header(flow.request_headers, "authorization") == "[redacted]"
    assert header(flow.request_headers, "cookie") == "[redacted]"
    assert header(flow.request_headers, "x-plain") == "visible"
    stored = whole(recording.store_path, flow.id)
    assert b"hunter2" in stored.response_body.data  # the origin echoed it: only configured rules apply there
    assert "hunter2" not in json.dumps(stored.request_headers)


def test_failed_exchange_is_recorded_with_its_error(recording: Any) -> None:
    reply = requests.get(
        "http://127.0.0.1:1/refused?tag=fail", proxies={"http": recording.http_proxy}, timeout=10
    )
    assert reply.status_code == 502
    (flow,) = wait_flows(recording.store_path, 1, "url:*tag=fail*")
    assert flow.status is None and flow.error is not None and "502" in flow.error


def test_tunnels_get_connection_records_with_sni(recording: Any, tls_origin: Origin, ca_file: Path) -> None:
    require_binary("curl")
    subprocess.run(
        [
            "curl",
            "-sf",
            "--cacert",
            str(ca_file),
            "-x",
            recording.http_proxy,
            "-o",
            "/dev/null",
            f"https://localhost:{tls_origin.port}/small",
        ],
        check=True,
    )
    conn = wait_connection_records(recording.store_path, lambda c: c.sni == "localhost")
    assert conn.protocol == "connect" and conn.dest == f"localhost:{tls_origin.port}"
    assert conn.up > 0 and conn.down > 0 and conn.outcome == "ok"


def test_a_tls12_tunnel_keeps_its_server_name(start_lanner: Any, tls_origin: Origin, ca_file: Path) -> None:
    # TLS 1.2's second client flight is a handshake record too: it must not replace the SNI.
    require_binary("curl")
    lanner = start_lanner({"listeners": [{"name": "forward"}]})
    subprocess.run(
        ["curl", "-sf", "--tlsv1.2", "--tls-max", "1.2", "--cacert", str(ca_file), "-x", lanner.http_proxy,
         "-o", "/dev/null", f"https://localhost:{tls_origin.port}/small"],
        check=True,
    )  # fmt: skip
    conn = wait_connection_records(lanner.store_path, lambda c: c.protocol == "connect")
    assert (conn.sni, conn.outcome) == ("localhost", "ok")


def test_tcp_listener_analyzes_http(start_lanner: Any, origin: Origin) -> None:
    lanner = start_lanner(
        {
            "listeners": [
                {"name": "api", "type": "tcp", "target": f"127.0.0.1:{origin.port}", "analyze": "http"}
            ]
        }
    )
    host, port = lanner.addr()
    with requests.Session() as session:
        for index in range(3):
            assert session.get(f"http://{host}:{port}/small?tag=tcp{index}", timeout=10).status_code == 200
        assert session.post(f"http://{host}:{port}/echo", data=b"x" * 5000, timeout=10).content == b"x" * 5000
    flows = wait_flows(lanner.store_path, 4)
    assert {flow.listener for flow in flows} == {"api"}
    assert {flow.host for flow in flows} == {"127.0.0.1"}
    post = next(flow for flow in flows if flow.method == "POST")
    assert post.request_body.size == 5000


def test_analysis_of_non_http_never_breaks_the_relay(start_lanner: Any, tcp_echo: TcpEcho) -> None:
    lanner = start_lanner(
        {
            "listeners": [
                {"name": "odd", "type": "tcp", "target": f"127.0.0.1:{tcp_echo.port}", "analyze": "http"}
            ]
        }
    )
    with socket.create_connection(lanner.addr(), timeout=10) as sock:
        payload = b"SSH-2.0-not-http\r\n" + bytes(range(256)) * 10
        sock.sendall(payload)
        received = b""
        while len(received) < len(payload):
            received += sock.recv(65536)
        assert received == payload
    lanner.wait_log(r"analysis=.*not HTTP")


def test_sampling_keeps_errors_and_drops_the_rest(start_lanner: Any, origin: Origin) -> None:
    lanner = start_lanner({"record": {"sample": 0.0}})
    proxies = {"http": lanner.http_proxy}
    for index in range(5):
        requests.get(f"http://127.0.0.1:{origin.port}/small?tag=ok{index}", proxies=proxies, timeout=10)
    requests.get(f"http://127.0.0.1:{origin.port}/status?code=503&tag=err", proxies=proxies, timeout=10)
    (flow,) = wait_flows(lanner.store_path, 1, "status:>=500")
    assert flow.status == 503
    time.sleep(0.5)  # the writer wakes every 0.1 s: sampled-out flows would have landed by now
    assert [found.id for found in wait_flows(lanner.store_path, 1)] == [flow.id]


def test_configured_redaction(start_lanner: Any, origin: Origin) -> None:
    lanner = start_lanner(
        {
            "record": {
                "redact": {
                    "query_params": ["token"],
                    "json_fields": ["password"],
                    "patterns": [r"\d{4}-\d{4}"],
                }
            }
        }
    )
    requests.post(
        f"http://127.0.0.1:{origin.port}/echo?token=abc&card=1234-5678&tag=red",
        json={"user": "ada", "password": "pw1", "nested": [{"password": "pw2"}]},
        proxies={"http": lanner.http_proxy},
        timeout=10,
    )
    (flow,) = wait_flows(lanner.store_path, 1)
    assert "abc" not in flow.path and "1234-5678" not in flow.path and "tag=red" in flow.path
    stored = whole(lanner.store_path, flow.id)
    assert json.loads(stored.request_body.data) == {
        "user": "ada",
        "password": "[redacted]",
        "nested": [{"password": "[redacted]"}],
    }


def test_big_bodies_are_truncated_head_and_tail(start_lanner: Any, origin: Origin) -> None:
    lanner = start_lanner({"record": {"max_body": 1000}})
    reply = requests.get(
        f"http://127.0.0.1:{origin.port}/big?n=200000", proxies={"http": lanner.http_proxy}, timeout=10
    )
    assert len(reply.content) == 200000
    (flow,) = wait_flows(lanner.store_path, 1)
    stored = whole(lanner.store_path, flow.id)
    body = stored.response_body
    assert (body.size, body.truncated, len(body.data), body.head_len) == (200000, True, 1000, 500)


def test_recording_off_records_nothing(start_lanner: Any, origin: Origin) -> None:
    lanner = start_lanner({"record": {"enabled": False}})
    assert requests.get(
        f"http://127.0.0.1:{origin.port}/small", proxies={"http": lanner.http_proxy}, timeout=10
    ).ok
    time.sleep(0.3)
    assert not lanner.store_path.exists()


def test_unwritable_store_never_stops_proxying_and_recovers(
    start_lanner: Any, origin: Origin, tmp_path: Path
) -> None:
    blocker = tmp_path / "blocked"
    blocker.write_text("a file where the data directory should be")
    lanner = start_lanner({"data_dir": str(blocker / "data")})
    proxies = {"http": lanner.http_proxy}
    for index in range(3):
        assert requests.get(
            f"http://127.0.0.1:{origin.port}/small?tag=down{index}", proxies=proxies, timeout=10
        ).ok
    lanner.wait_log("recording paused: the store failed")
    blocker.unlink()
    assert requests.get(f"http://127.0.0.1:{origin.port}/small?tag=back", proxies=proxies, timeout=10).ok
    lanner.wait_log("recording resumed")
    assert lanner.log().count("recording paused") == 1  # logged once, not per retry
    wait_flows(lanner.store_path, 1, "url:*tag=back*")


def test_corrupted_store_never_stops_proxying(start_lanner: Any, origin: Origin, tmp_path: Path) -> None:
    data = tmp_path / "corrupt"
    data.mkdir()
    (data / "lanner.db").write_bytes(b"this is not an SQLite database at all" * 200)
    lanner = start_lanner({"data_dir": str(data)})
    for _ in range(3):
        assert requests.get(
            f"http://127.0.0.1:{origin.port}/small", proxies={"http": lanner.http_proxy}, timeout=10
        ).ok
    lanner.wait_log("recording paused: the store failed")


def test_full_queue_drops_and_counts_never_the_connection(
    start_lanner: Any, origin: Origin, tmp_path: Path
) -> None:
    blocker = tmp_path / "blocked"
    blocker.write_text("no store here")
    lanner = start_lanner({"data_dir": str(blocker / "data"), "record": {"queue": 5, "batch": 1}})
    with requests.Session() as session:
        session.proxies = {"http": lanner.http_proxy}
        for _ in range(40):
            assert session.get(f"http://127.0.0.1:{origin.port}/small", timeout=10).ok
    match = lanner.wait_log(r"recorder queue full: records dropped dropped=(\d+)", timeout=20)
    assert int(match.group(1)) > 0


def test_download_of_2_gib_keeps_memory_bounded(start_lanner: Any) -> None:
    from tests.integration.servers import BulkServer

    require_binary("curl")
    bulk = BulkServer()
    try:
        lanner = start_lanner({"record": {"max_body": "64KiB"}})
        size = 2 * 1024**3
        out = subprocess.run(
            [
                "curl",
                "-sf",
                "-x",
                lanner.http_proxy,
                "-o",
                "/dev/null",
                "-w",
                "%{size_download}",
                f"http://127.0.0.1:{bulk.port}/bulk?n={size}",
            ],
            capture_output=True,
            text=True,
            check=True,
            timeout=300,
        ).stdout
        assert int(out) == size
        rss_kib = int(Path(f"/proc/{lanner.proc.pid}/status").read_text().split("VmHWM:")[1].split()[0])
        assert rss_kib < 150 * 1024, f"lanner's peak RSS was {rss_kib} KiB"
        (flow,) = wait_flows(lanner.store_path, 1)
        assert flow.response_body.size == size and flow.response_body.truncated
    finally:
        bulk.close()


def writer_processes(pid: int) -> list[int]:
    """lanner's recording writer processes (`python -m lanner.record.writer`, its children)."""
    # a child is listed under the thread that started it (the recorder's feeder thread)
    children = [
        child
        for task in Path(f"/proc/{pid}/task").iterdir()
        for child in (task / "children").read_text().split()
    ]
    return [
        int(child)
        for child in children
        if b"lanner.record.writer" in Path(f"/proc/{child}/cmdline").read_bytes()
    ]


def test_full_disk_pauses_recording_and_it_resumes(start_lanner: Any, origin: Origin) -> None:
    """A file-size limit on lanner's writer process makes SQLite's writes fail like a full disk."""
    import resource

    lanner = start_lanner({})
    proxies = {"http": lanner.http_proxy}
    assert requests.get(f"http://127.0.0.1:{origin.port}/small?tag=before", proxies=proxies, timeout=10).ok
    wait_flows(lanner.store_path, 1, "url:*tag=before*")
    wal = Path(f"{lanner.store_path}-wal")
    limit = max(lanner.store_path.stat().st_size, wal.stat().st_size) + 256 * 1024
    (writer,) = writer_processes(lanner.proc.pid)
    resource.prlimit(writer, resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))  # soft limit
    body = os.urandom(512 * 1024)  # incompressible, each way: the store outgrows the limit
    for _ in range(4):
        reply = requests.post(
            f"http://127.0.0.1:{origin.port}/echo?tag=full", data=body, proxies=proxies, timeout=10
        )
        assert reply.content == body  # proxying goes on
    lanner.wait_log("recording paused: the store failed")
    unlimited = resource.RLIM_INFINITY
    resource.prlimit(writer, resource.RLIMIT_FSIZE, (unlimited, unlimited))
    lanner.wait_log("recording resumed", timeout=20)
    assert requests.get(f"http://127.0.0.1:{origin.port}/small?tag=after", proxies=proxies, timeout=10).ok
    wait_flows(lanner.store_path, 1, "url:*tag=after*")


def test_locked_store_pauses_recording_and_it_resumes(start_lanner: Any, origin: Origin) -> None:
    import sqlite3

    lanner = start_lanner({})
    proxies = {"http": lanner.http_proxy}
    assert requests.get(f"http://127.0.0.1:{origin.port}/small?tag=unlocked", proxies=proxies, timeout=10).ok
    wait_flows(lanner.store_path, 1, "url:*tag=unlocked*")
    holder = sqlite3.connect(lanner.store_path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        assert requests.get(
            f"http://127.0.0.1:{origin.port}/small?tag=locked", proxies=proxies, timeout=10
        ).ok
        lanner.wait_log("recording paused: the store failed", timeout=60)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    lanner.wait_log("recording resumed", timeout=20)
    wait_flows(lanner.store_path, 1, "url:*tag=locked*")
