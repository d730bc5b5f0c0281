"""Redis through lanner: real clients, the machine's redis-server, flows read back from the store."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import redis
import yaml
from python_socks.sync import Proxy

from lanner.record.filter import parse
from lanner.record.sqlite import SqliteStore
from tests.conftest import require, require_binary
from tests.integration.raw import recv_until_close
from tests.integration.servers import free_port, wait_port
from tests.integration.store_reads import wait_connection_records, wait_flows

REDIS = ("127.0.0.1", 6379)


def _redis_up() -> bool:
    try:
        with socket.create_connection(REDIS, timeout=1):
            return True
    except OSError:
        return False


@pytest.fixture(scope="module")
def lanner(module_lanner: Any) -> Any:
    require(_redis_up(), "redis-server is not running on 127.0.0.1:6379")
    return module_lanner(
        {
            "listeners": [
                {"name": "redis", "type": "tcp", "target": "127.0.0.1:6379"},  # auto: port 6379 is redis
                {"name": "forward"},
            ],
            "analysis": {"redis": {"redact_keys": ["secret:*"]}},
        }
    )


def client(lanner: Any, **options: Any) -> redis.Redis:
    host, port = lanner.addr("redis")
    options.setdefault("protocol", 2)  # redis-py 8 speaks RESP3 unless told
    return redis.Redis(host=host, port=port, socket_timeout=10, **options)


def tag() -> str:
    return uuid.uuid4().hex[:10]


def flows(lanner: Any, count: int, text: str) -> list[Any]:
    return sorted(wait_flows(lanner.store_path, count, text), key=lambda flow: flow.id)


def test_resp2_commands_are_recorded_with_keys_replies_and_timings(lanner: Any) -> None:
    t = tag()
    with client(lanner) as r:
        assert r.set(f"t{t}:user:1", "ada") is True
        assert r.get(f"t{t}:user:1") == b"ada"
        assert r.get(f"t{t}:missing") is None
        assert r.mset({f"t{t}:a": "1", f"t{t}:b": "2"}) is True
        with pytest.raises(redis.ResponseError):
            r.incr(f"t{t}:user:1")  # not an integer (redis-py sends INCRBY key 1)
    found = flows(lanner, 5, f"proto:redis key:t{t}:*")
    by_command = {(flow.method, flow.keys[0]): flow for flow in found}
    set_flow = by_command[("SET", f"t{t}:user:1")]
    assert set_flow.command == f"SET t{t}:user:1 ada"
    assert (set_flow.reason, set_flow.category, set_flow.path) == ("simple", "write", "/0")
    assert set_flow.response_body.data == b"OK"
    get_flow = by_command[("GET", f"t{t}:user:1")]
    assert get_flow.reason == "bulk" and b"ada" in get_flow.response_body.data
    assert get_flow.category == "read" and get_flow.duration is not None and get_flow.duration >= 0
    assert by_command[("GET", f"t{t}:missing")].reason == "null"
    assert by_command[("MSET", f"t{t}:a")].keys == [f"t{t}:a", f"t{t}:b"]
    incr = by_command[("INCRBY", f"t{t}:user:1")]
    assert incr.error is not None and "not an integer" in incr.error
    assert [flow.id for flow in flows(lanner, 1, f"proto:redis cmd:GET key:t{t}:user:*")] == [get_flow.id]
    assert len(flows(lanner, 1, f"proto:redis key:t{t}:* error:*")) == 1


def test_resp3_hello_maps_and_pipelines(lanner: Any) -> None:
    t = tag()
    with client(lanner, protocol=3) as r:
        r.hset(f"t{t}:h", mapping={"name": "ada", "lang": "en"})
        assert r.hgetall(f"t{t}:h") == {b"name": b"ada", b"lang": b"en"}
        with r.pipeline(transaction=False) as pipe:
            for _ in range(20):
                pipe.incr(f"t{t}:n")
            results = pipe.execute()
        assert results == list(range(1, 21))
    hgetall = flows(lanner, 1, f"cmd:HGETALL key:t{t}:h")[0]
    assert hgetall.reason == "map" and hgetall.notes["protocol"] == "RESP3"
    increments = flows(lanner, 20, f"cmd:INCRBY key:t{t}:n")
    assert [flow.response_body.data for flow in increments] == [
        f"(integer) {n}".encode() for n in range(1, 21)
    ]
    hello = [flow for flow in flows(lanner, 1, "cmd:HELLO") if flow.conn_uid == hgetall.conn_uid]
    assert hello and hello[0].reason == "map"


def test_auth_and_redacted_keys_never_reach_the_store(lanner: Any) -> None:
    t = tag()
    secret = f"hunter2-{t}"
    with client(lanner) as r:
        with pytest.raises(redis.RedisError):
            r.execute_command("AUTH", secret)  # no password set: refused, but the secret was sent
        r.set(f"secret:{t}", f"value-{t}")
        assert r.get(f"secret:{t}") == f"value-{t}".encode()
    assert {flow.command for flow in flows(lanner, 1, "cmd:AUTH")} == {"AUTH <redacted>"}
    redacted = flows(lanner, 2, f"key:secret:{t}")
    assert all(flow.notes.get("redacted") == "yes" for flow in redacted)
    raw = b"".join(path.read_bytes() for path in Path(lanner.store_path).parent.glob("lanner.db*"))
    assert secret.encode() not in raw and f"value-{t}".encode() not in raw


def test_select_multi_exec_and_client_reply_keep_pairing(lanner: Any) -> None:
    t = tag()
    with client(lanner, db=3) as r:
        with r.pipeline(transaction=True) as pipe:
            pipe.set(f"t{t}:x", "1").incr(f"t{t}:x").get(f"t{t}:x")
            assert pipe.execute() == [True, 2, b"2"]
    queued = flows(lanner, 3, f"key:t{t}:x")
    assert all(flow.path == "/3" and "queued" in flow.notes for flow in queued)
    exec_flow = [flow for flow in flows(lanner, 1, "cmd:EXEC") if flow.conn_uid == queued[0].conn_uid][0]
    assert exec_flow.reason == "array" and exec_flow.rows == 3
    # CLIENT REPLY OFF / SKIP: commands without replies must not shift the pairing of later ones.
    host, port = lanner.addr("redis")
    with socket.create_connection((host, port)) as raw:
        raw.sendall(
            _resp("SET", f"t{t}:off", "a") + _resp("CLIENT", "REPLY", "OFF") + _resp("SET", f"t{t}:off", "b")
            + _resp("CLIENT", "REPLY", "ON") + _resp("CLIENT", "REPLY", "SKIP") + _resp("SET", f"t{t}:off", "c")
            + _resp("GET", f"t{t}:off")
        )  # fmt: skip
        assert _read_until(raw, b"$1\r\nc\r\n") == b"+OK\r\n+OK\r\n$1\r\nc\r\n"
    paired = {flow.command.split()[-1]: flow for flow in flows(lanner, 4, f"key:t{t}:off")}
    replies = {last: (flow.method, flow.reason) for last, flow in paired.items()}
    assert replies == {
        "a": ("SET", "simple"),
        "b": ("SET", "no reply"),
        "c": ("SET", "no reply"),
        f"t{t}:off": ("GET", "bulk"),
    }  # a command without a reply does not take the next command's
    assert b"c" in paired[f"t{t}:off"].response_body.data


def test_pubsub_messages_and_blocking_commands(lanner: Any) -> None:
    t = tag()
    with client(lanner) as r, redis.Redis(*REDIS) as direct:
        pubsub = r.pubsub()
        pubsub.subscribe(f"news-{t}", f"alerts-{t}")
        for _ in range(2):
            assert pubsub.get_message(timeout=5)["type"] == "subscribe"  # type: ignore[index]
        assert direct.publish(f"news-{t}", "hello") == 1
        message = None
        for _ in range(10):
            message = pubsub.get_message(timeout=1)
            if message is not None:
                break
        assert message is not None and message["data"] == b"hello"
        pubsub.close()
        assert r.blpop([f"t{t}:empty"], timeout=1) is None
    pushed = [flow for flow in flows(lanner, 1, "cmd:MESSAGE") if flow.command == f"news-{t}"]
    assert pushed and b"hello" in pushed[0].response_body.data and pushed[0].reason == "push"
    subscribe = flows(lanner, 1, f"cmd:SUBSCRIBE conn:{pushed[0].conn_uid}")[0]
    assert f"news-{t}" in subscribe.command and f"alerts-{t}" in subscribe.command
    blpop = flows(lanner, 1, f"cmd:BLPOP key:t{t}:empty")[0]
    assert blpop.error is None and "blocking" in blpop.notes and blpop.reason == "null"


def test_redis_cli_inline_and_pipe(lanner: Any, tmp_path: Path) -> None:
    cli = require_binary("redis-cli")
    t = tag()
    host, port = lanner.addr("redis")
    inline = f'SET t{t}:inline "two words"\r\nGET t{t}:inline\r\nPING\r\n'.encode()
    out = subprocess.run(
        [cli, "-h", host, "-p", str(port), "--pipe"], input=inline, capture_output=True, check=True
    )
    assert b"errors: 0, replies: 3" in out.stdout
    inline_set = flows(lanner, 1, f"cmd:SET key:t{t}:inline")[0]
    assert inline_set.notes.get("inline") == "yes" and inline_set.command == f'SET t{t}:inline "two words"'
    mass = b"".join(_resp("SET", f"t{t}:mass:{n}", str(n)) for n in range(500))
    out = subprocess.run(
        [cli, "-h", host, "-p", str(port), "--pipe"], input=mass, capture_output=True, check=True
    )
    assert b"errors: 0, replies: 500" in out.stdout
    assert len(flows(lanner, 500, f"cmd:SET key:t{t}:mass:*")) == 500
    shown = subprocess.run(
        [sys.executable, "-m", "lanner", "flows", "--db", str(lanner.store_path), "show", str(inline_set.id)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert f'> SET t{t}:inline "two words"' in shown.stdout and "< (simple" in shown.stdout
    stats = subprocess.run(
        [sys.executable, "-m", "lanner", "flows", "--db", str(lanner.store_path), "stats", "proto:redis"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    set_line = next(line for line in stats.stdout.splitlines() if line.startswith("SET "))
    assert int(set_line.split()[1]) >= 501


def test_tunnels_to_port_6379_are_analyzed(lanner: Any) -> None:
    t = tag()
    _, port = lanner.addr("forward")
    for url in (f"socks5://127.0.0.1:{port}", f"http://127.0.0.1:{port}"):
        sock = Proxy.from_url(url).connect(dest_host="127.0.0.1", dest_port=6379, timeout=5)
        with sock:
            sock.sendall(_resp("SET", f"t{t}:tunnel", url))
            assert _read_until(sock, b"+OK\r\n") == b"+OK\r\n"
    tunnelled = flows(lanner, 2, f"cmd:SET key:t{t}:tunnel")
    assert {flow.listener for flow in tunnelled} == {"forward"}
    assert {flow.port for flow in tunnelled} == {6379}


def test_an_intercept_rule_does_not_take_a_tunnel_to_a_database_port(start_lanner: Any) -> None:
    require(_redis_up(), "redis-server is not running on 127.0.0.1:6379")
    t = tag()
    lanner = start_lanner({"listeners": [{"name": "forward"}], "intercept": [{"hosts": ["127.0.0.1"]}]})
    sock = Proxy.from_url(f"http://127.0.0.1:{lanner.port}").connect(dest_host="127.0.0.1", dest_port=6379)
    with sock:
        sock.sendall(_resp("SET", f"t{t}:intercepted", "no"))
        assert _read_until(sock, b"+OK\r\n") == b"+OK\r\n"
    (found,) = flows(lanner, 1, f"cmd:SET key:t{t}:intercepted")
    assert found.listener == "forward" and "bypassed" not in lanner.log()


def test_garbage_stops_analysis_but_not_the_connection(lanner: Any) -> None:
    host, port = lanner.addr("redis")
    conversation = _resp("PING") + b"*2\r\n$3\r\nGET\r\n$-7\r\n"  # a negative length: RESP protocol error
    replies = []
    for address in ((host, port), REDIS):
        with socket.create_connection(address, timeout=5) as raw:
            raw.sendall(conversation)
            replies.append(recv_until_close(raw))
    assert replies[0] == replies[1] and replies[0].startswith(b"+PONG\r\n-ERR Protocol error")
    record = wait_connection_records(
        lanner.store_path, lambda c: c.listener == "redis" and "analysis" in (c.detail or "")
    )
    assert "analysis" in (record.detail or "")
    with client(lanner) as r:  # the same process goes on serving and recording
        assert r.ping() is True


def test_sniffing_finds_redis_on_an_unmapped_port_and_none_bypasses(
    start_lanner: Any, tmp_path: Path
) -> None:
    server = require_binary("redis-server")
    port = free_port()
    proc = subprocess.Popen(
        [server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL, cwd=tmp_path,
    )  # fmt: skip
    try:
        wait_port(port)
        lanner = start_lanner(
            {
                "listeners": [
                    {"name": "sniffed", "type": "tcp", "target": f"127.0.0.1:{port}"},
                    {"name": "plain", "type": "tcp", "target": f"127.0.0.1:{port}", "analyze": "none"},
                ]
            }
        )
        for name in ("sniffed", "plain"):
            host, listen = lanner.addr(name)
            with redis.Redis(host=host, port=listen) as r:
                r.set(f"via-{name}", name)
        (found,) = flows(lanner, 1, "proto:redis cmd:SET")
        assert found.listener == "sniffed" and found.keys == ["via-sniffed"]
        time.sleep(0.5)
        store = SqliteStore(str(lanner.store_path), readonly=True)
        try:
            assert store.count(parse("listener:plain")) == 0
        finally:
            store.close()
    finally:
        proc.terminate()
        proc.wait(10)


def test_monitor_lines_and_tracking_invalidations_are_pushes(lanner: Any) -> None:
    t = tag()
    host, port = lanner.addr("redis")
    with socket.create_connection((host, port), timeout=10) as monitor:
        monitor.sendall(_resp("MONITOR"))
        assert _read_until(monitor, b"+OK\r\n") == b"+OK\r\n"
        with redis.Redis(*REDIS) as direct:
            direct.set(f"t{t}:watched", "1")
        assert f"t{t}:watched".encode() in _read_until(monitor, b'"1"\r\n')
        monitor.sendall(_resp("RESET"))
        assert _read_until(monitor, b"+RESET\r\n").endswith(b"+RESET\r\n")
    lines = [flow for flow in flows(lanner, 1, "cmd:MONITOR proto:redis") if flow.reason == "push"]
    assert any(f"t{t}:watched".encode() in flow.response_body.data for flow in lines)
    # RESP3 client-side caching: the server pushes an invalidation when a read key changes.
    with socket.create_connection((host, port), timeout=10) as cached:
        cached.sendall(_resp("HELLO", "3") + _resp("CLIENT", "TRACKING", "ON") + _resp("GET", f"t{t}:cached"))
        assert _read_until(cached, b"_\r\n").endswith(b"+OK\r\n_\r\n")
        with redis.Redis(*REDIS) as direct:
            direct.set(f"t{t}:cached", "changed")
        assert f"t{t}:cached".encode() in _read_until(cached, f"t{t}:cached\r\n".encode())
    (invalidation,) = [
        f for f in flows(lanner, 1, "cmd:INVALIDATE") if f"t{t}:cached" in f.response_body.data.decode()
    ]
    assert invalidation.reason == "push"


def test_moved_replies_from_a_cluster_are_recorded_errors(start_lanner: Any, tmp_path: Path) -> None:
    server = require_binary("redis-server")
    ports = [_cluster_port(), _cluster_port()]
    procs = [
        subprocess.Popen(
            [
                server,
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--cluster-enabled",
                "yes",
                "--save",
                "",
                "--cluster-config-file",
                str(tmp_path / f"nodes-{port}.conf"),
                "--appendonly",
                "no",
            ],
            stdout=subprocess.DEVNULL,
            cwd=tmp_path,
        )  # fmt: skip
        for port in ports
    ]
    try:
        for port in ports:
            wait_port(port)
        first, second = (redis.Redis(port=port) for port in ports)
        first.execute_command("CLUSTER", "ADDSLOTSRANGE", "0", "8191")
        second.execute_command("CLUSTER", "ADDSLOTSRANGE", "8192", "16383")
        first.execute_command("CLUSTER", "MEET", "127.0.0.1", str(ports[1]))
        key = next(
            f"k{n}" for n in range(1000) if int(first.execute_command("CLUSTER", "KEYSLOT", f"k{n}")) > 8191
        )
        deadline = time.monotonic() + 20
        while (
            time.monotonic() < deadline
            and first.execute_command("CLUSTER", "INFO").find(b"cluster_state:ok") < 0
        ):
            time.sleep(0.1)
        lanner = start_lanner({"listeners": [{"name": "node", "type": "tcp", "target": f"127.0.0.1:{ports[0]}",
                                              "analyze": "redis"}]})  # fmt: skip
        host, port = lanner.addr("node")
        with socket.create_connection((host, port), timeout=10) as raw:
            raw.sendall(_resp("GET", key))
            answer = _read_until(raw, b"\r\n")
        assert answer.startswith(b"-MOVED ") and str(ports[1]).encode() in answer
        (moved,) = flows(lanner, 1, f"cmd:GET key:{key}")
        assert moved.error == answer[1:-2].decode() and moved.reason == "error"
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(10)


def test_sighup_applies_new_redaction_rules_to_new_connections(start_lanner: Any) -> None:
    require(_redis_up(), "redis-server is not running on 127.0.0.1:6379")
    t = tag()
    lanner = start_lanner({"listeners": [{"name": "redis", "type": "tcp", "target": "127.0.0.1:6379"}]})
    with client(lanner) as r:
        r.set(f"t{t}:token", "visible")
    lanner.config["analysis"] = {"redis": {"redact_keys": [f"t{t}:*"]}}
    lanner.path.write_text(yaml.safe_dump(lanner.config))
    lanner.proc.send_signal(signal.SIGHUP)
    lanner.wait_log("config reloaded")
    with client(lanner) as r:
        r.set(f"t{t}:token", "hidden")
    by_value = {flow.command.split()[-1]: flow for flow in flows(lanner, 2, f"cmd:SET key:t{t}:token")}
    assert set(by_value) == {"visible", "<redacted>"}
    assert by_value["<redacted>"].notes.get("redacted") == "yes"


def test_redis_benchmark_through_lanner_has_no_errors(start_lanner: Any) -> None:
    bench = require_binary("redis-benchmark")
    require(_redis_up(), "redis-server is not running on 127.0.0.1:6379")
    lanner = start_lanner({"listeners": [{"name": "redis", "type": "tcp", "target": "127.0.0.1:6379"}]})
    host, port = lanner.addr("redis")
    before = _calls()
    for pipeline in ("1", "16"):
        out = subprocess.run(
            [bench, "-h", host, "-p", str(port), "-t", "set,get", "-n", "2000", "-c", "20", "-P", pipeline, "-q"],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert out.returncode == 0, out.stderr
        assert "error" not in (out.stdout + out.stderr).lower()
    expected = _calls() - before  # what the server executed: every one must be recorded
    assert expected >= 2 * 2 * 2000
    found = wait_flows(lanner.store_path, 1, "cmd:GET")
    assert found
    deadline = time.monotonic() + 20
    count = 0
    while time.monotonic() < deadline:
        store = SqliteStore(str(lanner.store_path), readonly=True)
        try:
            count = store.count(parse("proto:redis (cmd:GET or cmd:SET)"))
        finally:
            store.close()
        if count >= expected:
            break
        time.sleep(0.2)
    assert count == expected
    assert "dropped" not in lanner.log()


# --- helpers --------------------------------------------------------------------------


def _calls() -> int:
    """GET and SET calls the machine's redis-server has executed (INFO commandstats)."""
    with redis.Redis(*REDIS) as direct:
        stats = direct.info("commandstats")
    return sum(int(stats.get(f"cmdstat_{name}", {}).get("calls", 0)) for name in ("get", "set"))


def _resp(*args: str) -> bytes:
    parts = [f"*{len(args)}\r\n".encode()]
    for arg in args:
        data = arg.encode()
        parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(parts)


def _read_until(sock: socket.socket, ending: bytes, limit: int = 1 << 20) -> bytes:
    sock.settimeout(10)
    data = b""
    while not data.endswith(ending) and len(data) < limit:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


def _cluster_port() -> int:
    """A free port whose cluster bus port (port + 10000) exists too."""
    for _ in range(1000):
        port = free_port()
        if port + 10000 <= 65535:
            with socket.socket() as probe:
                try:
                    probe.bind(("127.0.0.1", port + 10000))
                except OSError:
                    continue
            return port
    raise AssertionError("no free port pair for a cluster node")
