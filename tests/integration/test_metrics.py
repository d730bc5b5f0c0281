"""GET /metrics from a running lanner: real clients, real servers, exact counts, workers added up.

Each test drives traffic with a real client (httpx through the forward proxy, redis-py and
psycopg through tcp listeners to the machine's servers, raw sockets where only connecting
matters), then scrapes the admin API and parses the answer with prometheus_client's own
parser. Counters of a connection are taken when it ends, the recorder's at its next wake
and the databases' in the writer process: each check polls until the count is reached.
"""

from __future__ import annotations

import re
import socket
import time
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import psycopg
import pytest
import redis
from prometheus_client.parser import text_string_to_metric_families

from lanner.record.convert_db import normalize
from tests.conftest import require
from tests.integration.pg_helpers import conninfo, postgres_up
from tests.integration.raw import connect, recv_until_close
from tests.integration.servers import Origin, free_port

REDIS = ("127.0.0.1", 6379)
WAIT = 15.0

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(lanner: Any) -> Samples:
    response = httpx.get(f"{lanner.admin_url}/metrics", timeout=10)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def get(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def wait_for(lanner: Any, done: Callable[[Samples], bool], what: str) -> Samples:
    """Scrape until `done` holds (values arrive as connections end and batches are written)."""
    deadline = time.monotonic() + WAIT
    while True:
        samples = scrape(lanner)
        if done(samples):
            return samples
        if time.monotonic() > deadline:
            shown = {
                f"{name}{dict(labels)}": value
                for (name, labels), value in samples.items()
                if "lanner_" in name and not name.endswith("_bucket")
            }
            raise AssertionError(f"never: {what}; last scrape: {shown}")
        time.sleep(0.1)


def proxied_get(lanner: Any, url: str) -> httpx.Response:
    """One request on a connection of its own (a new client each time)."""
    with httpx.Client(proxy=lanner.http_proxy, timeout=10) as client:
        return client.get(url, headers={"Connection": "close"})


def test_http_through_the_forward_proxy(start_lanner: Any, origin: Origin) -> None:
    lanner = start_lanner({})
    requests = 12
    for _ in range(requests):
        assert proxied_get(lanner, f"http://127.0.0.1:{origin.port}/small").status_code == 200
    assert proxied_get(lanner, f"http://127.0.0.1:{origin.port}/status?code=503").status_code == 503
    closed = free_port()  # nothing listens there: lanner answers 502 itself
    assert proxied_get(lanner, f"http://127.0.0.1:{closed}/").status_code == 502
    total = requests + 2

    def settled(found: Samples) -> bool:
        ended = sum(
            value for (name, labels), value in found.items()
            if name == "lanner_connections_closed_total" and ("listener", "forward") in labels
        )  # fmt: skip
        return ended == total

    found = wait_for(lanner, settled, f"{total} connections ended")
    forward = {"listener": "forward"}
    assert get(found, "lanner_connections_opened_total", **forward) == total
    assert get(found, "lanner_connections_open", **forward) == 0
    assert get(found, "lanner_connections_closed_total", **forward, outcome="ok") == requests + 1
    assert get(found, "lanner_connections_closed_total", **forward, outcome="refused") == 1
    assert get(found, "lanner_http_responses_total", **forward, **{"class": "2xx"}) == requests
    assert get(found, "lanner_http_responses_total", **forward, **{"class": "5xx"}) == 2
    assert get(found, "lanner_http_upstream_latency_seconds_count", **forward) == requests + 1
    assert get(found, "lanner_handshake_seconds_count", **forward) == total
    assert get(found, "lanner_upstream_connect_seconds_count", **forward) == requests + 1  # not the refused
    assert get(found, "lanner_bytes_total", **forward, direction="up") > 0
    assert get(found, "lanner_bytes_total", **forward, direction="down") >= requests * len(
        b"hello-from-origin\n"
    )
    assert get(found, "lanner_connections_refused_total", **forward) == 0
    assert [value for (name, _), value in found.items() if name == "lanner_build_info"] == [1]


def test_workers_add_up(start_lanner: Any, origin: Origin) -> None:
    lanner = start_lanner({}, "--workers", "2")
    connections = 60
    for _ in range(connections):  # new connections: the kernel spreads them over both workers
        sock = connect(lanner.port)
        sock.sendall(
            f"GET http://127.0.0.1:{origin.port}/small HTTP/1.1\r\nConnection: close\r\n\r\n".encode()
        )
        assert recv_until_close(sock).endswith(b"hello-from-origin\n")
        sock.close()
    forward = {"listener": "forward"}
    found = wait_for(
        lanner,
        lambda found: get(found, "lanner_connections_closed_total", **forward, outcome="ok") == connections,
        f"{connections} connections ended",
    )
    assert get(found, "lanner_connections_opened_total", **forward) == connections
    assert get(found, "lanner_http_responses_total", **forward, **{"class": "2xx"}) == connections
    assert get(found, "lanner_connections_open", **forward) == 0
    served = set(re.findall(r"outcome=ok[^\n]* worker=(\d)", lanner.log()))  # the connection log lines
    assert served == {"0", "1"}, "both workers must have served for the totals to prove anything"


def test_refused_at_capacity(start_lanner: Any) -> None:
    lanner = start_lanner({"limits": {"max_connections": 2}})
    held = [connect(lanner.port) for _ in range(2)]
    wait_for(lanner, lambda found: get(found, "lanner_connections_open", listener="forward") == 2, "2 open")
    for _ in range(3):
        with connect(lanner.port) as extra:
            assert recv_until_close(extra) == b""  # closed at once
    found = wait_for(
        lanner,
        lambda found: get(found, "lanner_connections_refused_total", listener="forward") == 3,
        "3 refused",
    )
    assert get(found, "lanner_connections_opened_total", listener="forward") == 2
    for sock in held:
        sock.close()
    wait_for(
        lanner, lambda found: get(found, "lanner_connections_open", listener="forward") == 0, "none open"
    )


def test_a_full_recorder_queue_counts_its_drops(start_lanner: Any) -> None:
    lanner = start_lanner({"record": {"queue": 1}})
    clients = 50
    socks = [connect(lanner.port) for _ in range(clients)]
    wait_for(
        lanner, lambda found: get(found, "lanner_connections_open", listener="forward") == clients, "open"
    )
    for sock in socks:  # every one ends at once: 50 connection records for a queue of one
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        sock.close()

    def accounted(found: Samples) -> bool:
        stored = get(found, "lanner_store_written_total", kind="connection")
        return get(found, "lanner_recorder_dropped_total") + stored == clients

    found = wait_for(lanner, accounted, "every connection record stored or counted as dropped")
    assert get(found, "lanner_recorder_dropped_total") > 0
    assert get(found, "lanner_store_write_seconds_count") >= 1


def redis_up() -> bool:
    try:
        with socket.create_connection(REDIS, timeout=1):
            return True
    except OSError:
        return False


def test_redis_commands_by_name(start_lanner: Any) -> None:
    require(redis_up(), "redis-server is not running on 127.0.0.1:6379")
    lanner = start_lanner({"listeners": [{"name": "redis", "type": "tcp", "target": "127.0.0.1:6379"}]})
    host, port = lanner.addr("redis")
    client = redis.Redis(host=host, port=port, socket_timeout=10, protocol=2)
    key = f"metrics:{uuid.uuid4().hex[:10]}"
    client.set(key, "not a number")
    gets = 7
    for _ in range(gets):
        assert client.get(key) == b"not a number"
    with pytest.raises(redis.ResponseError):
        client.incr(key)  # redis-py sends INCRBY key 1
    client.delete(key)
    client.close()
    found = wait_for(
        lanner,
        lambda found: (
            get(found, "lanner_redis_command_seconds_count", command="GET") == gets
            and get(found, "lanner_redis_errors_total", command="INCRBY") == 1
        ),
        f"{gets} GETs and one failed INCRBY",
    )
    assert get(found, "lanner_redis_command_seconds_count", command="SET") == 1
    assert get(found, "lanner_redis_errors_total", command="GET") == 0
    assert get(found, "lanner_redis_command_seconds_sum", command="GET") > 0


def test_postgres_statements_by_fingerprint(start_lanner: Any) -> None:
    require(postgres_up(), "PostgreSQL is not running on 127.0.0.1:5432")
    lanner = start_lanner({"listeners": [{"name": "pg", "type": "tcp", "target": "127.0.0.1:5432"}]})
    queries = 5
    # prepare_threshold=None: every execution an unnamed statement, none turned into a PREPARE
    info = conninfo(lanner, sslmode="disable")
    with psycopg.connect(info, autocommit=True, prepare_threshold=None) as conn:
        for number in range(queries):
            assert conn.execute("select %s::int + 1", (number,)).fetchone() == (number + 1,)
        with pytest.raises(psycopg.errors.DivisionByZero):
            conn.execute("select 1 / 0")
    _, fingerprint = normalize("select $1::int + 1")
    statement = {"verb": "SELECT", "fingerprint": fingerprint}
    found = wait_for(
        lanner,
        lambda found: (
            get(found, "lanner_postgres_statement_seconds_count", **statement) == queries
            and get(found, "lanner_postgres_errors_total", verb="SELECT", sqlstate_class="22") == 1
        ),
        f"{queries} statements of one fingerprint and one division by zero",
    )
    assert get(found, "lanner_postgres_statement_seconds_sum", **statement) > 0


def test_backend_health_across_workers(start_lanner: Any, start_backend: Any) -> None:
    alive, dead = start_backend("alive"), start_backend("dead")
    health = {"type": "tcp", "interval": 0.2, "fall": 1, "rise": 1}
    pool = {"name": "p", "backends": [{"address": b.address} for b in (alive, dead)], "health": health}
    config = {"listeners": [{"name": "api", "type": "reverse", "routes": [{"pool": "p"}]}], "pools": [pool]}
    lanner = start_lanner(config, "--workers", "2")
    dead.kill()
    up, down = {"pool": "p", "backend": alive.address}, {"pool": "p", "backend": dead.address}
    wait_for(
        lanner,
        lambda found: (
            get(found, "lanner_backend_healthy", **down) == 0
            and get(found, "lanner_backend_healthy", **up) == 1
        ),
        "the dead backend down in both workers, the other up",
    )
    host, port = lanner.addr("api")
    requests = 10
    for _ in range(requests):
        assert httpx.get(f"http://{host}:{port}/", headers={"Connection": "close"}).status_code == 200
    found = wait_for(
        lanner,
        lambda found: (
            get(found, "lanner_http_responses_total", listener="api", **{"class": "2xx"}) == requests
        ),
        f"{requests} answers",
    )
    assert get(found, "lanner_upstream_connect_seconds_count", listener="api") >= 1
    assert get(found, "lanner_backend_in_flight", **up) == 0
    assert get(found, "lanner_backend_draining", **up) == 0
