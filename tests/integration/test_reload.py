"""Hot reload: SIGHUP, the admin API and the file watcher, against real clients and servers.

An invalid file keeps the running config; listeners come and go while their
open connections finish; changed rules and routes hold for new connections
only; and a reload under continuous load fails no request.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import ssl
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import trustme
import yaml

from tests.integration.backends import served_by, write_certificate
from tests.integration.raw import connect, recv_exact, recv_head
from tests.integration.servers import TcpEcho, free_port

RELOADED = "config reloaded"
WAIT = 10.0


def rewrite(lanner: Any, change: Callable[[dict[str, Any]], None]) -> None:
    """Change the config the test holds and write it to lanner's file (in place, as `>` would)."""
    change(lanner.config)
    lanner.path.write_text(yaml.safe_dump(lanner.config))


def count(lanner: Any, pattern: str) -> int:
    return len(re.findall(pattern, lanner.log()))


def wait_count(lanner: Any, pattern: str, at_least: int) -> None:
    deadline = time.monotonic() + WAIT
    while count(lanner, pattern) < at_least:
        assert time.monotonic() < deadline, f"{pattern!r} < {at_least} times:\n{lanner.log()[-3000:]}"
        time.sleep(0.05)


def sighup(lanner: Any) -> None:
    """Reload through SIGHUP and wait until lanner has answered it (either way)."""
    done = count(lanner, f"{RELOADED}|config not reloaded")
    lanner.proc.send_signal(signal.SIGHUP)
    wait_count(lanner, f"{RELOADED}|config not reloaded", done + 1)


def tcp_front(target: str, **settings: Any) -> dict[str, Any]:
    return {"name": "front", "type": "tcp", "target": target, "analyze": "none", **settings}


def get(port: int, path: str = "/") -> httpx.Response:
    return httpx.get(f"http://127.0.0.1:{port}{path}", timeout=10)


def open_tunnel(proxy_port: int, port: int) -> tuple[bytes, socket.socket]:
    """CONNECT through the forward listener; (the answer's status line, the socket)."""
    sock = connect(proxy_port)
    sock.sendall(f"CONNECT 127.0.0.1:{port} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
    return recv_head(sock).split(b"\r\n", 1)[0], sock


def echo(sock: socket.socket, payload: bytes) -> bytes:
    sock.sendall(payload)
    return recv_exact(sock, len(payload))


def test_an_invalid_file_keeps_the_running_config_and_says_where(
    start_lanner: Any, start_backend: Any
) -> None:
    blue, green = start_backend("blue"), start_backend("green")
    lanner = start_lanner({"listeners": [tcp_front(blue.address)], "config_watch_interval": 0})
    port = lanner.addr("front")[1]
    assert served_by(get(port)) == "blue"
    good = lanner.path.read_text()

    lanner.path.write_text(good + "rules: [\n")  # unclosed flow sequence: a YAML error
    sighup(lanner)
    lanner.wait_log(rf"config not reloaded.*{re.escape(str(lanner.path))}:\d+: YAML")
    assert served_by(get(port)) == "blue"

    rewrite(
        lanner,
        lambda config: config["listeners"][0].update(target=green.address, limits={"idle_timeout": -1}),
    )
    sighup(lanner)
    text = lanner.path.read_text().splitlines()
    line = next(index for index, row in enumerate(text, 1) if "idle_timeout" in row)
    lanner.wait_log(
        rf"{re.escape(str(lanner.path))}:{line}: listeners\.0\.limits\.idle_timeout: Input should be"
    )
    assert served_by(get(port)) == "blue"  # not even the valid part (the target) was applied

    rewrite(lanner, lambda config: config["listeners"][0].pop("limits"))
    answer = httpx.post(f"{lanner.admin_url}/api/v1/config/reload", timeout=10).json()
    assert answer["ok"] and answer["changed"] == ["listeners.front"] and answer["needs_restart"] == []
    assert served_by(get(port)) == "green"
    lanner.wait_log(rf"{RELOADED} source=api changed=listeners.front")

    rewrite(lanner, lambda config: config.update(workers=2))  # applied by a restart only
    sighup(lanner)
    lanner.wait_log(rf"{RELOADED} source=signal changed=- needs_restart=workers")


def test_a_listener_added_then_removed(start_lanner: Any, start_backend: Any) -> None:
    blue = start_backend("blue")
    lanner = start_lanner(
        {"listeners": [{"name": "forward"}], "config_watch_interval": 0, "shutdown_grace": 60}
    )
    extra_port = free_port()
    added = tcp_front(blue.address, bind=f"127.0.0.1:{extra_port}")
    rewrite(lanner, lambda config: config["listeners"].append(added))
    sighup(lanner)
    lanner.wait_log(r"listener added listener=\"tcp listener 'front' on 127\.0\.0\.1:\d+ forwards to")
    assert served_by(get(extra_port)) == "blue"

    with httpx.Client(timeout=10) as client:  # one kept-alive connection, opened before the removal
        assert served_by(client.get(f"http://127.0.0.1:{extra_port}/before")) == "blue"
        rewrite(lanner, lambda config: config["listeners"].pop())
        sighup(lanner)
        lanner.wait_log(r"listener removed: no new connections; open ones may finish listener=front")
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", extra_port), timeout=5)
        for _ in range(3):
            assert served_by(client.get(f"http://127.0.0.1:{extra_port}/after")) == "blue"

    rewrite(lanner, lambda config: config["listeners"].append(added))  # the same address once more
    sighup(lanner)
    assert served_by(get(extra_port)) == "blue"


def test_new_rules_hold_for_new_tunnels_while_an_open_one_keeps_its_own(
    start_lanner: Any, tcp_echo: TcpEcho
) -> None:
    lanner = start_lanner({"config_watch_interval": 0})
    status, tunnel = open_tunnel(lanner.port, tcp_echo.port)
    assert status.startswith(b"HTTP/1.1 200"), status
    assert echo(tunnel, b"before") == b"before"

    rewrite(lanner, lambda config: config.update(rules=[{"action": "deny", "ports": [tcp_echo.port]}]))
    sighup(lanner)
    lanner.wait_log(rf"{RELOADED} source=signal changed=rules")
    refused, other = open_tunnel(lanner.port, tcp_echo.port)
    other.close()
    assert refused.startswith(b"HTTP/1.1 403"), refused
    assert echo(tunnel, b"after the reload") == b"after the reload"
    tunnel.close()

    rewrite(lanner, lambda config: config.update(rules=[]))
    sighup(lanner)
    status, again = open_tunnel(lanner.port, tcp_echo.port)
    assert status.startswith(b"HTTP/1.1 200") and echo(again, b"again") == b"again"
    again.close()


def test_the_config_file_is_watched(start_lanner: Any, start_backend: Any) -> None:
    blue, green = start_backend("blue"), start_backend("green")
    lanner = start_lanner({"listeners": [tcp_front(blue.address)], "config_watch_interval": 0.1})
    port = lanner.addr("front")[1]
    assert served_by(get(port)) == "blue"

    # An editor's way: write a new file, then rename it over the old one.
    lanner.config["listeners"][0]["target"] = green.address
    staged = lanner.path.with_suffix(".new")
    staged.write_text(yaml.safe_dump(lanner.config))
    os.replace(staged, lanner.path)
    lanner.wait_log(rf"{RELOADED} source=file changed=listeners.front")
    assert served_by(get(port)) == "green"

    lanner.path.write_text("listeners: {")
    lanner.wait_log(r"config not reloaded: the running config stays source=file errors=.*:\d+: YAML")
    rewrite(lanner, lambda config: config["listeners"][0].update(target=blue.address))
    wait_count(lanner, RELOADED, 2)
    assert served_by(get(port)) == "blue"
    # Each change was read once: looking again at an unchanged file reloads nothing.
    deadline = time.monotonic() + 1.0
    while time.monotonic() < deadline:
        time.sleep(0.1)
    assert count(lanner, RELOADED) == 2 and count(lanner, "config not reloaded") == 1


def test_pools_and_a_reverse_listener_added_to_a_lanner_started_without_them(
    start_lanner: Any, start_backend: Any
) -> None:
    blue = start_backend("blue")
    lanner = start_lanner({"config_watch_interval": 0})
    port = free_port()
    reverse = {"name": "api", "type": "reverse", "bind": f"127.0.0.1:{port}", "routes": [{"pool": "p"}]}

    def add(config: dict[str, Any]) -> None:
        config["pools"] = [{"name": "p", "backends": [{"address": blue.address}]}]
        config["listeners"].append(reverse)

    rewrite(lanner, add)
    sighup(lanner)
    lanner.wait_log(rf"{RELOADED} source=signal changed=\"pools, listeners.api\"")
    assert served_by(get(port, "/through-the-new-pool")) == "blue"


def certificate_names(port: int, ca_file: Path) -> list[str]:
    """The DNS names of the certificate a new TLS connection to `port` is shown."""
    context = ssl.create_default_context(cafile=str(ca_file))
    context.check_hostname = False  # the names are what this test looks at
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw, context.wrap_socket(raw) as tls:
        certificate = tls.getpeercert()
    assert certificate is not None
    return [value for kind, value in certificate.get("subjectAltName", ()) if kind == "DNS"]


def test_a_tls_listener_shows_a_renewed_certificate_to_new_connections(
    start_lanner: Any, start_backend: Any, test_ca: trustme.CA, tmp_path: Path
) -> None:
    blue = start_backend("blue")
    cert, key, ca_file = write_certificate(test_ca, tmp_path, "one.test")
    certificates = [{"cert": str(cert), "key": str(key)}]
    lanner = start_lanner(
        {
            "listeners": [
                {"name": "tls", "type": "tls", "target": blue.address, "certificates": certificates}
            ],
            "config_watch_interval": 0,
        }
    )
    port = lanner.addr("tls")[1]
    assert certificate_names(port, ca_file) == ["one.test"]
    context = ssl.create_default_context(cafile=str(ca_file))
    context.check_hostname = False
    with httpx.Client(verify=context, timeout=10) as client:  # a TLS connection opened before the renewal
        assert served_by(client.get(f"https://127.0.0.1:{port}/before")) == "blue"
        write_certificate(test_ca, tmp_path, "two.test")  # the same files, renewed: the config is unchanged
        sighup(lanner)
        lanner.wait_log(rf"{RELOADED} source=signal changed=- ")
        assert certificate_names(port, ca_file) == ["two.test"]
        assert served_by(client.get(f"https://127.0.0.1:{port}/after")) == "blue"

    key.write_text("not a key")
    sighup(lanner)
    lanner.wait_log(r"config not reloaded.*listeners\.0\.certificates: cannot load certificate")
    assert certificate_names(port, ca_file) == ["two.test"]  # the running generation keeps its own


def test_each_worker_watches_and_reloads_itself(start_lanner: Any, start_backend: Any) -> None:
    blue, green = start_backend("blue"), start_backend("green")
    lanner = start_lanner(
        {"listeners": [tcp_front(blue.address)], "config_watch_interval": 0.1}, "--workers", "2"
    )
    port = lanner.addr("front")[1]
    rewrite(lanner, lambda config: config["listeners"][0].update(target=green.address))
    wait_count(lanner, rf"{RELOADED} source=file", 2)  # one line per worker
    assert {served_by(get(port)) for _ in range(20)} == {"green"}


class Load:
    """Client threads sending requests back to back until stopped; every failure is kept."""

    def __init__(self) -> None:
        self.stop = threading.Event()
        self.failures: list[str] = []
        self.done: dict[str, int] = {}
        self.threads: list[threading.Thread] = []

    def run(self, name: str, request: Callable[[httpx.Client], None], proxy: str | None = None) -> None:
        """`name` ending in "fresh": a new connection per request (Connection: close), else one kept alive."""
        headers = {"Connection": "close"} if name.endswith("fresh") else {}

        def loop() -> None:
            with httpx.Client(proxy=proxy, timeout=10, headers=headers) as client:
                while not self.stop.is_set():
                    try:
                        request(client)
                        self.done[name] = self.done.get(name, 0) + 1
                    except Exception as exc:  # every kind of failure counts, and none may happen
                        self.failures.append(f"{name}: {exc!r}")

        thread = threading.Thread(target=loop, name=name, daemon=True)
        thread.start()
        self.threads.append(thread)

    def finish(self) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(30)


def test_twenty_reloads_under_load_fail_no_request(
    start_lanner: Any, start_backend: Any, tcp_echo: TcpEcho
) -> None:
    blue, green = start_backend("blue"), start_backend("green")
    targets = [blue.address, green.address]
    lanner = start_lanner(
        {"listeners": [{"name": "proxy"}, tcp_front(blue.address)], "config_watch_interval": 0}
    )
    proxy = f"http://127.0.0.1:{lanner.addr('proxy')[1]}"
    front = lanner.addr("front")[1]
    extra_port = free_port()

    def through_proxy(client: httpx.Client) -> None:
        response = client.get(f"http://{blue.address}/via-proxy")
        assert response.status_code == 200 and served_by(response) == "blue"

    def to_front(client: httpx.Client) -> None:
        response = client.get(f"http://127.0.0.1:{front}/")
        assert response.status_code == 200 and served_by(response) in ("blue", "green")

    load = Load()
    load.run("proxy-kept", through_proxy, proxy)
    load.run("proxy-fresh", through_proxy, proxy)
    load.run("front-kept", to_front)
    load.run("front-fresh", to_front)
    try:
        for index in range(20):

            def change(config: dict[str, Any], index: int = index) -> None:
                config["listeners"][1]["target"] = targets[(index + 1) % 2]
                config["rules"] = [{"action": "deny", "ports": [tcp_echo.port]}] if index % 2 == 0 else []
                if index == 5:
                    config["listeners"].append({**tcp_front(green.address), "name": "extra",
                                                "bind": f"127.0.0.1:{extra_port}"})  # fmt: skip
                if index == 15:
                    config["listeners"].pop()

            rewrite(lanner, change)
            if index % 2:
                answer = httpx.post(f"{lanner.admin_url}/api/v1/config/reload", timeout=10).json()
                assert answer["ok"], answer
            else:
                sighup(lanner)
            wait_count(lanner, RELOADED, index + 1)
            if index == 5:
                assert served_by(get(extra_port)) == "green"
            if index == 15:
                with pytest.raises(ConnectionRefusedError):
                    socket.create_connection(("127.0.0.1", extra_port), timeout=5)
            if index == 18:  # this generation's rules deny tunnels to the echo port
                status, refused = open_tunnel(lanner.addr("proxy")[1], tcp_echo.port)
                refused.close()
                assert status.startswith(b"HTTP/1.1 403"), status
            time.sleep(0.05)  # let some requests through between reloads
    finally:
        load.finish()
    assert load.failures == [], load.failures[:10]
    assert all(
        load.done.get(name, 0) > 20 for name in ("proxy-kept", "proxy-fresh", "front-kept", "front-fresh")
    )
    assert count(lanner, "config not reloaded") == 0
    # The last reload's routes and rules (index 19: blue, no rules) hold for new connections.
    assert {served_by(get(front)) for _ in range(5)} == {"blue"}
    status, tunnel = open_tunnel(lanner.addr("proxy")[1], tcp_echo.port)
    assert status.startswith(b"HTTP/1.1 200") and echo(tunnel, b"allowed") == b"allowed"
    tunnel.close()
