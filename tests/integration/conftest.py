"""Fixtures that start lanner from its CLI and real servers for it to reach."""

from __future__ import annotations

import copy
import os
import queue
import re
import signal as signals
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trustme
import yaml

from tests.integration.backends import BackendProcess
from tests.integration.servers import Origin, TcpEcho, UdpEcho, WsEcho, free_port
from tests.integration.vendors import FakeVendor

STARTUP_TIMEOUT = 20.0


class LannerProcess:
    """`lanner run -c FILE` as a subprocess, the way a user starts it."""

    def __init__(
        self,
        workdir: Path,
        config: dict[str, Any],
        args: tuple[str, ...] = (),
        env: dict[str, str] | None = None,
    ) -> None:
        config = copy.deepcopy(config)  # the caller may start several nodes from one dict
        self.config = config
        # Each lanner records into a store of its own inside the test's directory.
        config.setdefault("data_dir", str(workdir / f"data-{id(self)}"))
        for listener in config.setdefault("listeners", [{"name": "forward"}]):
            listener.setdefault("bind", f"127.0.0.1:{free_port()}")
        config.setdefault("admin", {}).setdefault("bind", f"127.0.0.1:{free_port()}")
        self.path = workdir / f"lanner-{id(self)}.yaml"
        self.path.write_text(yaml.safe_dump(config))
        self.log_path = workdir / f"lanner-{id(self)}.log"
        self._log = self.log_path.open("wb")
        full_env = {**os.environ, **(env or {})}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "lanner", "run", "-c", str(self.path), *args],
            stdout=subprocess.PIPE,
            stderr=self._log,
            env=full_env,
            text=True,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read_stdout, daemon=True).start()
        self.announced = [self._next_line() for _ in config["listeners"]]
        if config["admin"].get("enabled", True):
            self.announced.append(self._next_line())  # the admin API's line, once it listens

    def _read_stdout(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))

    def _next_line(self) -> str:
        try:
            return self.lines.get(timeout=STARTUP_TIMEOUT)
        except queue.Empty:
            self.proc.kill()
            raise AssertionError(f"lanner did not start; log:\n{self.log()}") from None

    @property
    def admin_url(self) -> str:
        """The admin API's base URL, e.g. http://127.0.0.1:40123."""
        return f"http://{self.config['admin']['bind']}"

    def addr(self, name: str | None = None) -> tuple[str, int]:
        for listener in self.config["listeners"]:
            if name is None or listener["name"] == name:
                host, _, port = listener["bind"].rpartition(":")
                return host.strip("[]"), int(port)
        raise KeyError(name)

    @property
    def store_path(self) -> Path:
        record = self.config.get("record") or {}
        return Path(record.get("path") or Path(self.config["data_dir"]) / "lanner.db")

    @property
    def port(self) -> int:
        return self.addr()[1]

    @property
    def http_proxy(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")

    def wait_log(self, pattern: str, timeout: float = 10.0) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while True:
            match = re.search(pattern, self.log())
            if match:
                return match
            if time.monotonic() > deadline:
                raise AssertionError(f"log never matched {pattern!r}:\n{self.log()[-4000:]}")
            time.sleep(0.05)

    def signal(self, sig: int = signals.SIGTERM) -> None:
        """Signal lanner from the test: its exit is then expected, not a failure."""
        self.exiting = True
        self.proc.send_signal(sig)

    exiting = False

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, sig: int = signals.SIGTERM, timeout: float = 30.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError(f"lanner did not stop on signal {sig}") from None
        self._log.close()
        return self.proc.returncode


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """Keep each phase's report on the test, so that fixtures can tell a failed test at teardown."""
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"report_{report.when}", report)


def _lanners(workdir: Path, request: pytest.FixtureRequest) -> Iterator[Any]:
    """Start lanner processes; each must still be alive at the end and exit 0 on SIGTERM.

    When the test failed, each lanner's log tail is printed at teardown (pytest shows it
    with the failure): a flaky failure in CI then says what lanner saw.
    """
    started: list[LannerProcess] = []

    def start(config: dict[str, Any], *args: str, env: dict[str, str] | None = None) -> LannerProcess:
        process = LannerProcess(workdir, config, args, env)
        started.append(process)
        return process

    yield start
    call = getattr(request.node, "report_call", None)
    if call is not None and call.failed:
        for process in started:
            print(f"--- lanner log ({process.path.name}) ---\n{process.log()[-6000:]}")
    for process in started:
        was_alive = process.alive() or process.exiting
        code = process.stop()
        assert was_alive, f"lanner exited during the test; log:\n{process.log()[-4000:]}"
        assert code == 0, f"lanner exited {code}; log:\n{process.log()[-4000:]}"


@pytest.fixture
def start_lanner(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Any]:
    yield from _lanners(tmp_path, request)


@pytest.fixture(scope="module")
def module_lanner(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Iterator[Any]:
    yield from _lanners(tmp_path_factory.mktemp("lanner"), request)


@pytest.fixture(scope="session")
def origin() -> Iterator[Origin]:
    server = Origin()
    yield server
    server.close()


@pytest.fixture(scope="session")
def test_ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="session")
def ca_file(test_ca: trustme.CA, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("ca") / "ca.pem"
    test_ca.cert_pem.write_to_path(str(path))
    return path


@pytest.fixture(scope="session")
def tls_origin(test_ca: trustme.CA) -> Iterator[Origin]:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    test_ca.issue_cert("localhost", "127.0.0.1").configure_cert(context)
    server = Origin(tls=context)
    yield server
    server.close()


@pytest.fixture(scope="session")
def tcp_echo() -> Iterator[TcpEcho]:
    server = TcpEcho()
    yield server
    server.close()


@pytest.fixture(scope="session")
def udp_echo() -> Iterator[UdpEcho]:
    server = UdpEcho()
    yield server
    server.close()


@pytest.fixture(scope="session")
def ws_echo() -> Iterator[WsEcho]:
    server = WsEcho()
    yield server
    server.close()


@pytest.fixture(scope="session")
def wss_echo(test_ca: trustme.CA) -> Iterator[WsEcho]:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    test_ca.issue_cert("localhost", "127.0.0.1").configure_cert(context)
    server = WsEcho(tls=context)
    yield server
    server.close()


@pytest.fixture
def start_backend() -> Iterator[Any]:
    """Start backend processes (tests/integration/backend_server.py); all are stopped at the end."""
    started: list[BackendProcess] = []

    def start(name: str) -> BackendProcess:
        backend = BackendProcess(name)
        started.append(backend)
        return backend

    yield start
    for backend in started:
        backend.stop()


@pytest.fixture
def start_vendor() -> Iterator[Any]:
    """Start fake upstream proxy vendors (tests/integration/fake_vendor.py); stopped after the test."""
    started: list[FakeVendor] = []

    def start(name: str = "fakevendor", **settings: Any) -> FakeVendor:
        vendor = FakeVendor(name, **settings)
        started.append(vendor)
        return vendor

    yield start
    for vendor in started:
        vendor.stop()
