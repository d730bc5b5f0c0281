"""Fake upstream proxy vendors (see fake_vendor.py), each its own process, which a test may kill."""

from __future__ import annotations

import select
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

from tests.integration.fake_vendor import VENDOR_STRINGS

SERVER = Path(__file__).with_name("fake_vendor.py")
STARTUP_TIMEOUT = 10.0

__all__ = ["VENDOR_STRINGS", "FakeVendor", "leaked_vendor_strings"]


def leaked_vendor_strings(data: bytes) -> list[bytes]:
    """The vendor strings found in `data`, compared without case (headers are case-insensitive)."""
    folded = data.lower()
    return [marker for marker in VENDOR_STRINGS if marker.lower() in folded]


class FakeVendor:
    """`fake_vendor.py` as a subprocess: a proxy port and its control port, both on 127.0.0.1.

    The ports are picked by the process itself (port 0) the first time, so two vendors never
    race for a port; a restart after kill() takes the same ones again.
    """

    def __init__(
        self,
        name: str = "fakevendor",
        protocol: str = "http",
        user_re: str = ".+",
        password: str = "password",
        whitelist: bool = False,
        log: bool = True,
    ) -> None:
        self.name = name
        self.protocol = protocol
        self.user_re = user_re
        self.password = password
        self.whitelist = whitelist
        self.logging = log
        self.port = 0
        self.control_port = 0
        self.proc: subprocess.Popen[str] | None = None
        self.control: httpx.Client | None = None
        self.start()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def proxy_url(self, username: str, password: str | None = None) -> str:
        """A URL for clients, e.g. `socks5://USER:PASSWORD@127.0.0.1:PORT` (the vendor's password by default)."""
        scheme = "socks5" if self.protocol == "socks5" else "http"
        return f"{scheme}://{username}:{self.password if password is None else password}@{self.address}"

    def start(self) -> None:
        args = [
            sys.executable,
            str(SERVER),
            f"--protocol={self.protocol}",
            f"--user-re={self.user_re}",
            f"--password={self.password}",
            f"--port={self.port}",
            f"--control-port={self.control_port}",
        ]
        args += ["--whitelist"] if self.whitelist else []
        args += [] if self.logging else ["--no-log"]
        with tempfile.TemporaryFile("w+") as errors:
            self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=errors, text=True)
            line = self._first_line()
            if not line.startswith("ready "):
                self.kill()
                errors.seek(0)
                raise AssertionError(f"fake vendor {self.name} did not start: {line!r}\n{errors.read()}")
        _, proxy_port, control_port = line.split()
        self.port, self.control_port = int(proxy_port), int(control_port)
        if self.control is not None:
            self.control.close()
        self.control = httpx.Client(
            base_url=f"http://127.0.0.1:{self.control_port}", timeout=5, trust_env=False
        )

    def _first_line(self) -> str:
        assert self.proc is not None and self.proc.stdout is not None
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while self.proc.poll() is None and time.monotonic() < deadline:
            ready, _, _ = select.select([self.proc.stdout], [], [], 0.1)
            if ready:
                return self.proc.stdout.readline().strip()
        return ""

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        assert self.control is not None
        response = self.control.request(method, path, json=body)
        response.raise_for_status()
        return response.json()

    def log(self) -> list[dict[str, Any]]:
        """Every handshake seen since start or reset(), oldest first."""
        entries: list[dict[str, Any]] = self._call("GET", "/log")
        return entries

    def reset(self) -> None:
        self._call("POST", "/reset")

    def mode(self, mode: str, count: int | None = None, delay: float | None = None) -> dict[str, Any]:
        """Make the next `count` handshakes (None: all, until changed) misbehave by `mode`."""
        state: dict[str, Any] = self._call("POST", "/mode", {"mode": mode, "count": count, "delay": delay})
        return state

    def stats(self) -> dict[str, int]:
        """{"connections": tunnels open now, "handshakes": handshakes since start or reset()}."""
        stats: dict[str, int] = self._call("GET", "/stats")
        return stats

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.kill()
        if self.proc is not None and self.proc.stdout is not None:
            self.proc.stdout.close()
        if self.control is not None:
            self.control.close()
            self.control = None

    def __enter__(self) -> FakeVendor:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.stop()
