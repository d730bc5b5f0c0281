"""Load for an intercepting proxy: HTTPS through CONNECT, with the TLS opened by the proxy.

    tls_load.py newconn|keepalive PROXY_PORT ORIGIN_PORT CONCURRENCY SECONDS
                [--warmup S] [--sni NAME] [--path /small] [--expect BYTES]

newconn:   CONCURRENCY workers, each repeating one cycle: connect to the proxy,
           `CONNECT 127.0.0.1:ORIGIN_PORT`, read the 200, TLS handshake (SNI
           NAME, ALPN http/1.1, no session resumption), one `GET PATH` with
           `Connection: close`, read the whole response (Content-Length or
           chunked), close (close_notify, then FIN).
keepalive: CONCURRENCY connections, each opened once (CONNECT + TLS), then
           sequential keep-alive GETs on it; a connection that fails is
           counted as an error and opened again.

PROXY_PORT 0 skips the proxy and the CONNECT: TLS straight to the origin (the
client's and the origin's own ceiling, to show the client is not the limit).
The client does not verify the certificate it is shown (throughput only).

The first --warmup seconds (2) are not counted: they open the connections and
let the proxy issue and cache its certificate for NAME. Then SECONDS are
measured: a cycle or a request counts when it ends inside that window. Every
wait has a 10 s timeout and the run stops by itself after warmup + SECONDS
(+ the in-flight operations' timeouts at worst).

Prints one JSON object: rate (cycles or requests per second), done, p50_ms and
p99_ms (one cycle or one request), errors and the first error seen (in the
window; warm-up errors apart), total (every cycle or request completed,
warm-up included), client_cpu (this process's CPU in the window, in cores)
and, with --watch PID, proxy_cpu_ticks: CPU clock ticks used in the window by
PID and its descendants (report.py's accounting). One process on uvloop:
asyncio protocols, uvloop's TLS.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import ssl
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from report import cpu_ticks  # noqa: E402  (bench/report.py, standard library only)

HOST = "127.0.0.1"
TIMEOUT = 10.0


class Stream(asyncio.Protocol):
    """One client connection: bytes in a buffer, one waiter for 'enough bytes arrived'."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.eof = False
        self.lost: BaseException | None = None
        self.waiter: asyncio.Future[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buf += data
        self._wake()

    def eof_received(self) -> bool:
        self.eof = True
        self._wake()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.eof = True
        self.lost = exc or ConnectionError("connection closed")
        self._wake()

    def _wake(self) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    async def more(self) -> None:
        """Wait for more bytes (or the end); raise if the stream had already ended."""
        if self.eof:
            raise self.lost or ConnectionError("unexpected end of stream")
        self.waiter = asyncio.get_running_loop().create_future()
        await self.waiter
        self.waiter = None

    async def read_head(self) -> bytes:
        while True:
            end = self.buf.find(b"\r\n\r\n")
            if end >= 0:
                head = bytes(self.buf[: end + 4])
                del self.buf[: end + 4]
                return head
            if len(self.buf) > 65536:
                raise RuntimeError("response head over 64 KiB")
            await self.more()

    async def read_response(self) -> bytes:
        """One whole response to a GET; returns its body."""
        head = await self.read_head()
        status = head[: head.find(b"\r\n")]
        if status.split(b" ")[1:2] != [b"200"]:
            raise RuntimeError(f"answered {status[:80]!r}")
        lower = head.lower()
        at = lower.find(b"\r\ncontent-length:")
        if at >= 0:
            length = int(lower[at + 17 : lower.find(b"\r\n", at + 2)])
            while len(self.buf) < length:
                await self.more()
            body = bytes(self.buf[:length])
            del self.buf[:length]
            return body
        if b"\r\ntransfer-encoding:" in lower and b"chunked" in lower:
            return await self.read_chunked()
        while not self.eof:  # no framing: the body runs to the end of the stream
            self.waiter = asyncio.get_running_loop().create_future()
            await self.waiter
        body = bytes(self.buf)
        self.buf.clear()
        return body

    async def read_chunked(self) -> bytes:
        body = bytearray()
        while True:
            while (eol := self.buf.find(b"\r\n")) < 0:
                await self.more()
            size = int(bytes(self.buf[:eol]).split(b";")[0], 16)
            while len(self.buf) < eol + 2 + size + 2:
                await self.more()
            body += self.buf[eol + 2 : eol + 2 + size]
            del self.buf[: eol + 2 + size + 2]
            if size == 0:  # no trailers expected from these origins
                return bytes(body)


def client_context() -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.set_alpn_protocols(["http/1.1"])
    return context


async def open_tls(proxy_port: int, origin_port: int, sni: str, context: ssl.SSLContext) -> Stream:
    """A TLS connection to the origin, through the proxy's CONNECT unless proxy_port is 0."""
    loop = asyncio.get_running_loop()
    transport, stream = await loop.create_connection(Stream, HOST, proxy_port or origin_port)
    try:
        if proxy_port:
            target = b"%s:%d" % (HOST.encode(), origin_port)
            transport.write(b"CONNECT " + target + b" HTTP/1.1\r\nHost: " + target + b"\r\n\r\n")
            head = await stream.read_head()
            status = head[: head.find(b"\r\n")]
            if status.split(b" ")[1:2] != [b"200"]:
                raise RuntimeError(f"CONNECT answered {status[:80]!r}")
            if stream.buf:
                raise RuntimeError("bytes after the CONNECT reply, before TLS")
        tls = await loop.start_tls(
            transport,
            stream,
            context,
            server_hostname=sni,
            ssl_handshake_timeout=TIMEOUT,
            ssl_shutdown_timeout=5.0,
        )
    except BaseException:
        transport.abort()
        raise
    stream.transport = tls  # type: ignore[assignment]
    return stream


class Run:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.context = client_context()
        now = time.monotonic()
        self.start = now + args.warmup
        self.end = self.start + args.seconds
        self.request = (
            f"GET {args.path} HTTP/1.1\r\nHost: {args.sni}:{args.origin_port}\r\n"
            f"User-Agent: tls_load\r\n%s\r\n"
        )
        self.latencies: list[float] = []
        self.errors = 0
        self.first_error = ""
        self.warmup_done = 0
        self.warmup_errors = 0
        self.total = 0

    def check(self, body: bytes) -> None:
        if self.args.expect is not None and len(body) != self.args.expect:
            raise RuntimeError(f"body of {len(body)} bytes, expected {self.args.expect}")

    def done(self, began: float) -> None:
        self.total += 1
        ended = time.monotonic()
        if self.start <= ended < self.end:
            self.latencies.append(ended - began)
        elif ended < self.start:
            self.warmup_done += 1

    def failed(self, exc: BaseException) -> None:
        if time.monotonic() < self.start:
            self.warmup_errors += 1
            return
        self.errors += 1
        self.first_error = self.first_error or f"{type(exc).__name__}: {exc}"[:160]

    async def newconn_worker(self) -> None:
        a = self.args
        request = (self.request % "Connection: close\r\n").encode()
        while time.monotonic() < self.end:
            began = time.monotonic()
            try:
                async with asyncio.timeout(TIMEOUT):
                    stream = await open_tls(a.proxy_port, a.origin_port, a.sni, self.context)
                    try:
                        stream.transport.write(request)  # type: ignore[union-attr]
                        self.check(await stream.read_response())
                    finally:
                        stream.transport.close()  # type: ignore[union-attr]
            except Exception as exc:
                self.failed(exc)
                await asyncio.sleep(0.01)
                continue
            self.done(began)

    async def keepalive_worker(self) -> None:
        a = self.args
        request = (self.request % "").encode()
        while time.monotonic() < self.end:
            try:
                async with asyncio.timeout(TIMEOUT):
                    stream = await open_tls(a.proxy_port, a.origin_port, a.sni, self.context)
            except Exception as exc:
                self.failed(exc)
                await asyncio.sleep(0.01)
                continue
            try:
                while time.monotonic() < self.end:
                    began = time.monotonic()
                    async with asyncio.timeout(TIMEOUT):
                        stream.transport.write(request)  # type: ignore[union-attr]
                        self.check(await stream.read_response())
                    self.done(began)
            except Exception as exc:
                self.failed(exc)
            finally:
                stream.transport.abort()  # type: ignore[union-attr]

    async def main(self) -> dict:
        a = self.args
        worker = self.newconn_worker if a.mode == "newconn" else self.keepalive_worker
        tasks = [asyncio.ensure_future(worker()) for _ in range(a.concurrency)]
        await asyncio.sleep(max(0.0, self.start - time.monotonic()))
        cpu_before = resource.getrusage(resource.RUSAGE_SELF)
        watched_before = cpu_ticks(a.watch) if a.watch else 0
        await asyncio.sleep(max(0.0, self.end - time.monotonic()))
        watched = cpu_ticks(a.watch) - watched_before if a.watch else None
        cpu_after = resource.getrusage(resource.RUSAGE_SELF)
        await asyncio.gather(*tasks)
        self.latencies.sort()

        def quantile(q: float) -> float | None:
            if not self.latencies:
                return None
            return round(self.latencies[int(q * (len(self.latencies) - 1))] * 1000, 2)

        cpu = (cpu_after.ru_utime - cpu_before.ru_utime) + (cpu_after.ru_stime - cpu_before.ru_stime)
        return {
            "rate": round(len(self.latencies) / a.seconds, 1),
            "done": len(self.latencies),
            "seconds": a.seconds,
            "p50_ms": quantile(0.5),
            "p99_ms": quantile(0.99),
            "errors": self.errors,
            "first_error": self.first_error or None,
            "warmup_done": self.warmup_done,
            "warmup_errors": self.warmup_errors,
            "total": self.total,
            "client_cpu": round(cpu / a.seconds, 2),
            "proxy_cpu_ticks": watched,
        }


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("mode", choices=("newconn", "keepalive"))
    parser.add_argument("proxy_port", type=int, help="0: straight to the origin")
    parser.add_argument("origin_port", type=int)
    parser.add_argument("concurrency", type=int)
    parser.add_argument("seconds", type=float)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--sni", default="origin.test", help="server name sent in the ClientHello and Host")
    parser.add_argument("--path", default="/small")
    parser.add_argument("--expect", type=int, default=None, help="the body's length in bytes")
    parser.add_argument("--watch", type=int, default=0, help="a PID whose process tree's CPU is sampled")
    args = parser.parse_args(argv)
    if not (0 < args.concurrency <= 1000 and 0 < args.seconds <= 600 and 0 <= args.warmup <= 60):
        parser.error("concurrency 1..1000, seconds 0..600, warmup 0..60")
    return args


if __name__ == "__main__":
    arguments = parse()
    try:
        import uvloop
    except ImportError:
        uvloop = None  # type: ignore[assignment]
    run = Run(arguments)
    result = uvloop.run(run.main()) if uvloop is not None else asyncio.run(run.main())
    result["loop"] = "uvloop" if uvloop is not None else "asyncio"
    print(json.dumps(result))
