"""New sticky-session CONNECT tunnels per second through a proxy, a fixed number in flight.

Each tunnel: connect to the proxy, `CONNECT 127.0.0.1:TARGET_PORT` with
`Proxy-Authorization: Basic alice_session-{i % SESSIONS}:secret` (i counts tunnels,
so every session comes round again after SESSIONS tunnels), read the 200, send
`GET /small` with `Connection: close`, read to the end of the stream, check the 200
and the body, close. The same load serves lanner's direct and vendor listeners:
only the proxy port differs.

    vendor_load.py PROXY_PORT TARGET_PORT CONCURRENCY SECONDS SESSIONS [WINDOW_SECONDS=10]

Prints one JSON object: tunnels_per_s, p50_ms, p99_ms (one tunnel, start to close),
done, errors, the first error, the sessions used, and `windows`: per WINDOW_SECONDS
of the run (by completion time), the rate, p50 and p99, so growth in latency over a
long run shows. Raw `asyncio.Protocol`s on uvloop, so it spends as little of the
shared CPU as it can.
"""

from __future__ import annotations

import asyncio
import base64
import json
import sys
import time

HOST = "127.0.0.1"
USER, PASSWORD = "alice", "secret"
BODY_END = b"hello-from-origin\n"


def connect_requests(target_port: int, sessions: int) -> list[bytes]:
    """One CONNECT request per session, built once so the client does no per-tunnel encoding."""
    target = b"%s:%d" % (HOST.encode(), target_port)
    requests = []
    for session in range(sessions):
        token = base64.b64encode(f"{USER}_session-{session}:{PASSWORD}".encode())
        requests.append(
            b"CONNECT "
            + target
            + b" HTTP/1.1\r\nHost: "
            + target
            + b"\r\nProxy-Authorization: Basic "
            + token
            + b"\r\n\r\n"
        )
    return requests


class Tunnel(asyncio.Protocol):
    """One tunnel's client side: CONNECT, then one GET, fed by data_received."""

    def __init__(self, connect: bytes, get: bytes, finished: asyncio.Future[None]) -> None:
        self.connect = connect
        self.get = get
        self.finished = finished
        self.transport: asyncio.Transport | None = None
        self.buf = b""
        self.state = "connect"

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.transport.write(self.connect)  # type: ignore[union-attr]

    def fail(self, why: str) -> None:
        if not self.finished.done():
            self.finished.set_exception(RuntimeError(why))
        if self.transport is not None:
            self.transport.abort()

    def data_received(self, data: bytes) -> None:
        self.buf += data
        if self.state != "connect":
            return
        end = self.buf.find(b"\r\n\r\n")
        if end < 0:
            return
        status = self.buf[: self.buf.find(b"\r\n")]
        if status.split(b" ")[1:2] != [b"200"]:
            return self.fail(f"CONNECT answered {status[:80]!r}")
        self.buf = self.buf[end + 4 :]
        self.transport.write(self.get)  # type: ignore[union-attr]
        self.state = "response"

    def eof_received(self) -> bool:
        if self.state != "response" or not self.buf.startswith(b"HTTP/1.1 200"):
            self.fail(f"stream ended in state {self.state} with {self.buf[:60]!r}")
        elif not self.buf.endswith(BODY_END):
            self.fail("response body incomplete")
        elif not self.finished.done():
            self.finished.set_result(None)
        return False  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.finished.done():
            self.finished.set_exception(exc or RuntimeError("closed before the answer ended"))


def quantile(sorted_seconds: list[float], q: float) -> float | None:
    if not sorted_seconds:
        return None
    return round(sorted_seconds[int(q * (len(sorted_seconds) - 1))] * 1000, 1)


async def main(
    proxy_port: int, target_port: int, concurrency: int, seconds: float, sessions: int, window: float
) -> dict:
    loop = asyncio.get_running_loop()
    requests = connect_requests(target_port, sessions)
    get = b"GET /small HTTP/1.1\r\nHost: %s:%d\r\nConnection: close\r\n\r\n" % (HOST.encode(), target_port)
    done: list[tuple[float, float]] = []  # (completed at, seconds since begin; latency seconds)
    errors = 0
    first_error = ""
    counter = 0

    async def one(connect: bytes) -> None:
        finished: asyncio.Future[None] = loop.create_future()
        transport, _ = await loop.create_connection(lambda: Tunnel(connect, get, finished), HOST, proxy_port)
        try:
            await asyncio.wait_for(finished, 10)
        finally:
            transport.close()

    async def client(begin: float, deadline: float) -> None:
        nonlocal errors, first_error, counter
        while time.perf_counter() < deadline:
            connect = requests[counter % sessions]
            counter += 1
            started = time.perf_counter()
            try:
                await one(connect)
            except Exception as exc:  # counted, reported once, and the client backs off a little
                errors += 1
                first_error = first_error or repr(exc)[:160]
                await asyncio.sleep(0.01)
                continue
            ended = time.perf_counter()
            done.append((ended - begin, ended - started))

    begin = time.perf_counter()
    await asyncio.gather(*(client(begin, begin + seconds) for _ in range(concurrency)))
    elapsed = time.perf_counter() - begin
    latencies = sorted(latency for _, latency in done)
    windows = []
    start = 0.0
    while start < seconds:
        span = min(window, seconds - start)
        inside = sorted(latency for at, latency in done if start <= at < start + span)
        windows.append(
            {
                "from_s": round(start, 1),
                "tunnels_per_s": round(len(inside) / span, 1),
                "p50_ms": quantile(inside, 0.5),
                "p99_ms": quantile(inside, 0.99),
            }
        )
        start += window
    return {
        "tunnels_per_s": round(len(latencies) / elapsed, 1),
        "seconds": round(elapsed, 2),
        "p50_ms": quantile(latencies, 0.5),
        "p99_ms": quantile(latencies, 0.99),
        "done": len(latencies),
        "errors": errors,
        "first_error": first_error or None,
        "sessions": min(sessions, counter),
        "concurrency": concurrency,
        "windows": windows,
    }


if __name__ == "__main__":
    if len(sys.argv) not in (6, 7):
        sys.exit(__doc__)
    try:
        import uvloop
    except ImportError:
        sys.exit("vendor_load.py wants uvloop (lanner's venv has it)")
    ports_and_load = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    seconds, sessions = float(sys.argv[4]), int(sys.argv[5])
    window = float(sys.argv[6]) if len(sys.argv) == 7 else 10.0
    print(json.dumps(uvloop.run(main(*ports_and_load, seconds, sessions, window))))
