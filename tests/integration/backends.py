"""Backend processes for reverse-proxy tests (see backend_server.py), which a test may kill."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import trustme

from tests.integration.servers import free_port

SERVER = Path(__file__).with_name("backend_server.py")


class BackendProcess:
    def __init__(self, name: str, port: int | None = None) -> None:
        self.name = name
        self.port = port or free_port()
        self.proc: subprocess.Popen[str] | None = None
        self.start()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(SERVER), str(self.port), self.name],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        assert self.proc.stdout is not None
        assert self.proc.stdout.readline().strip() == "ready"
        deadline = time.monotonic() + 10
        while True:
            try:
                httpx.get(f"http://{self.address}/health", timeout=1)
                return
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def control(self, **settings: Any) -> dict[str, Any]:
        response = httpx.post(f"http://{self.address}/control", params=settings, timeout=5)
        response.raise_for_status()
        result: dict[str, Any] = response.json()
        return result

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def stop(self) -> None:
        self.kill()
        if self.proc is not None and self.proc.stdout is not None:
            self.proc.stdout.close()


def write_certificate(ca: trustme.CA, directory: Path, name: str = "127.0.0.1") -> tuple[Path, Path, Path]:
    """A certificate for `name` issued by the test CA: (cert, key, CA certificate) PEM files."""
    cert, key, ca_file = directory / "cert.pem", directory / "key.pem", directory / "ca.pem"
    issued = ca.issue_cert(name)
    issued.cert_chain_pems[0].write_to_path(str(cert))
    issued.private_key_pem.write_to_path(str(key))
    ca.cert_pem.write_to_path(str(ca_file))
    return cert, key, ca_file


def served_by(response: httpx.Response) -> str:
    name: str = json.loads(response.text)["backend"]
    return name


def echoed_headers(response: httpx.Response) -> dict[str, list[str]]:
    headers: dict[str, list[str]] = {}
    for name, value in json.loads(response.text)["headers"]:
        headers.setdefault(name.lower(), []).append(value)
    return headers
