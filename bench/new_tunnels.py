"""New tunnels per second through a proxy, with a fixed number of clients in flight.

Each tunnel: connect to the proxy, handshake (HTTP CONNECT or SOCKS5 with no
authentication, IPv4 address), send one `GET /small` with `Connection: close`,
read the answer until the end of the stream, check it is a 200, close. Mode
`direct` skips the proxy and the handshake (the origin's own ceiling).

    new_tunnels.py connect|socks5|direct PROXY_PORT ORIGIN_PORT CONCURRENCY SECONDS

Prints one JSON object: tunnels_per_s, p50_ms, p99_ms (one tunnel, start to
close), done, errors and the first error seen. The client is a plain
`asyncio.Protocol` on uvloop, so it spends as little of the shared CPU as it can.
"""

from __future__ import annotations

import asyncio
import json
import struct
import sys
import time

HOST = "127.0.0.1"


class Tunnel(asyncio.Protocol):
    """One tunnel's client side: a small state machine fed by data_received."""

    def __init__(self, mode: str, origin_port: int, finished: asyncio.Future[None]) -> None:
        self.mode = mode
        self.origin_port = origin_port
        self.finished = finished
        self.transport: asyncio.Transport | None = None
        self.buf = b""
        self.state = "greeting" if mode == "socks5" else "connect" if mode == "connect" else "response"

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        if self.mode == "socks5":
            self.transport.write(b"\x05\x01\x00")
        elif self.mode == "connect":
            target = b"%s:%d" % (HOST.encode(), self.origin_port)
            self.transport.write(b"CONNECT " + target + b" HTTP/1.1\r\nHost: " + target + b"\r\n\r\n")
        else:
            self.send_get()

    def send_get(self) -> None:
        assert self.transport is not None
        self.transport.write(b"GET /small HTTP/1.1\r\nHost: %s:%d\r\nConnection: close\r\n\r\n" % (
            HOST.encode(), self.origin_port))
        self.state = "response"

    def fail(self, why: str) -> None:
        if not self.finished.done():
            self.finished.set_exception(RuntimeError(why))
        if self.transport is not None:
            self.transport.abort()

    def data_received(self, data: bytes) -> None:
        self.buf += data
        if self.state == "greeting":
            if len(self.buf) < 2:
                return
            if self.buf[:2] != b"\x05\x00":
                return self.fail(f"socks5 greeting answered {self.buf[:2]!r}")
            self.buf = self.buf[2:]
            request = b"\x05\x01\x00\x01" + bytes([127, 0, 0, 1]) + struct.pack("!H", self.origin_port)
            self.transport.write(request)  # type: ignore[union-attr]
            self.state = "reply"
        if self.state == "reply":
            if len(self.buf) < 10:  # IPv4 bound address: 10 bytes
                return
            if self.buf[1] != 0:
                return self.fail(f"socks5 reply code {self.buf[1]}")
            self.buf = self.buf[10:]
            self.send_get()
        elif self.state == "connect":
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            status = self.buf[: self.buf.find(b"\r\n")]
            if status.split(b" ")[1:2] != [b"200"]:
                return self.fail(f"CONNECT answered {status[:60]!r}")
            self.buf = self.buf[end + 4 :]
            self.send_get()

    def eof_received(self) -> bool:
        if self.state != "response" or not self.buf.startswith(b"HTTP/1.1 200"):
            self.fail(f"stream ended in state {self.state} with {self.buf[:40]!r}")
        elif not self.buf.endswith(b"hello-from-origin\n"):
            self.fail("response body incomplete")
        elif not self.finished.done():
            self.finished.set_result(None)
        return False  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.finished.done():
            self.finished.set_exception(exc or RuntimeError("closed before the answer ended"))


async def main(mode: str, proxy_port: int, origin_port: int, concurrency: int, seconds: float) -> dict:
    loop = asyncio.get_running_loop()
    port = origin_port if mode == "direct" else proxy_port
    latencies: list[float] = []
    errors = 0
    first_error = ""

    async def one() -> None:
        finished: asyncio.Future[None] = loop.create_future()
        transport, _ = await loop.create_connection(lambda: Tunnel(mode, origin_port, finished), HOST, port)
        try:
            await asyncio.wait_for(finished, 10)
        finally:
            transport.close()

    async def client(deadline: float) -> None:
        nonlocal errors, first_error
        while time.monotonic() < deadline:
            started = time.perf_counter()
            try:
                await one()
            except Exception as exc:  # counted, reported once, and the client backs off a little
                errors += 1
                first_error = first_error or repr(exc)[:120]
                await asyncio.sleep(0.01)
                continue
            latencies.append(time.perf_counter() - started)

    begin = time.monotonic()
    await asyncio.gather(*(client(begin + seconds) for _ in range(concurrency)))
    elapsed = time.monotonic() - begin
    latencies.sort()

    def quantile(q: float) -> float | None:
        return round(latencies[int(q * (len(latencies) - 1))] * 1000, 1) if latencies else None

    return {
        "tunnels_per_s": round(len(latencies) / elapsed, 1),
        "seconds": round(elapsed, 2),
        "p50_ms": quantile(0.5),
        "p99_ms": quantile(0.99),
        "done": len(latencies),
        "errors": errors,
        "first_error": first_error or None,
    }


if __name__ == "__main__":
    if len(sys.argv) != 6 or sys.argv[1] not in ("connect", "socks5", "direct"):
        sys.exit(__doc__)
    try:
        import uvloop
    except ImportError:
        sys.exit("new_tunnels.py wants uvloop (run.sh installs it in its load venv)")
    args = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
    print(json.dumps(uvloop.run(main(*args))))
