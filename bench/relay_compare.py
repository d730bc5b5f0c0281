"""Measure two ways of relaying a bulk TCP stream in Python: asyncio transports vs os.splice.

Usage: relay_compare.py ORIGIN_PORT [SIZE_PATH]   (origin: an HTTP server with /big)

Starts a one-target TCP relay on 127.0.0.1 in each mode, downloads ORIGIN/big through
it with curl three times, and prints the median MB/s per mode next to a direct
download. This decides which relay lanner uses for bypassed bulk tunnels
(docs/BENCHMARKS.md, "Relay: transports vs splice").
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import socket
import statistics
import subprocess
import sys

import uvloop

PIPE_SIZE = 1 << 20
F_SETPIPE_SZ = 1031
SPLICE_FLAGS = os.SPLICE_F_MOVE | os.SPLICE_F_NONBLOCK


class _End(asyncio.Protocol):
    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.peer: _End | None = None
        self.pending: list[bytes] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.transport.set_write_buffer_limits(1 << 20)

    def data_received(self, data: bytes) -> None:
        if self.peer is None or self.peer.transport is None:
            self.pending.append(data)
            return
        self.peer.transport.write(data)

    def eof_received(self) -> bool:
        if self.peer and self.peer.transport:
            self.peer.transport.write_eof()
        return True

    def pause_writing(self) -> None:
        if self.peer and self.peer.transport:
            self.peer.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.peer and self.peer.transport:
            self.peer.transport.resume_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.peer and self.peer.transport:
            self.peer.transport.close()


async def transport_relay(port: int, target: int) -> asyncio.Server:
    loop = asyncio.get_running_loop()

    class Client(_End):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            super().connection_made(transport)
            upstream = _End()
            upstream.peer, self.peer = self, upstream
            loop.create_task(self.connect(upstream))

        async def connect(self, upstream: _End) -> None:
            await loop.create_connection(lambda: upstream, "127.0.0.1", target)
            for chunk in self.pending:
                upstream.transport.write(chunk)  # type: ignore[union-attr]

    return await loop.create_server(Client, "127.0.0.1", port)


class _SpliceDirection:
    """src fd -> pipe -> dst fd, driven by readiness callbacks."""

    def __init__(self, loop: asyncio.AbstractEventLoop, src: int, dst: int, done: asyncio.Future[None]) -> None:
        self.loop, self.src, self.dst, self.done = loop, src, dst, done
        self.read_pipe, self.write_pipe = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        fcntl.fcntl(self.write_pipe, F_SETPIPE_SZ, PIPE_SIZE)
        self.buffered = 0
        loop.add_reader(src, self.readable)

    def readable(self) -> None:
        try:
            moved = os.splice(self.src, self.write_pipe, PIPE_SIZE, flags=SPLICE_FLAGS)
        except BlockingIOError:
            return
        if moved == 0:
            self.loop.remove_reader(self.src)
            socket.socket(fileno=os.dup(self.dst)).shutdown(socket.SHUT_WR)
            self.finish()
            return
        self.buffered += moved
        self.flush()

    def flush(self) -> None:
        while self.buffered:
            try:
                sent = os.splice(self.read_pipe, self.dst, self.buffered, flags=SPLICE_FLAGS)
            except BlockingIOError:
                self.loop.remove_reader(self.src)
                self.loop.add_writer(self.dst, self.writable)
                return
            self.buffered -= sent

    def writable(self) -> None:
        self.flush()
        if not self.buffered:
            self.loop.remove_writer(self.dst)
            self.loop.add_reader(self.src, self.readable)

    def finish(self) -> None:
        os.close(self.read_pipe)
        os.close(self.write_pipe)
        if not self.done.done():
            self.done.set_result(None)


async def splice_relay(port: int, target: int) -> asyncio.Server:
    loop = asyncio.get_running_loop()

    async def serve(client: socket.socket) -> None:
        upstream = socket.socket()
        upstream.setblocking(False)
        await loop.sock_connect(upstream, ("127.0.0.1", target))
        up_done: asyncio.Future[None] = loop.create_future()
        down_done: asyncio.Future[None] = loop.create_future()
        _SpliceDirection(loop, client.fileno(), upstream.fileno(), up_done)
        _SpliceDirection(loop, upstream.fileno(), client.fileno(), down_done)
        await asyncio.gather(up_done, down_done)
        client.close()
        upstream.close()

    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", port))
    listener.listen(128)
    listener.setblocking(False)

    async def accept_loop() -> None:
        while True:
            client, _ = await loop.sock_accept(listener)
            client.setblocking(False)
            loop.create_task(serve(client))

    task = loop.create_task(accept_loop())
    return task  # type: ignore[return-value]


def download(port: int, path: str) -> float:
    speeds = []
    for _ in range(3):
        out = subprocess.run(
            ["curl", "-s", "-o", "/dev/null", "-w", "%{speed_download}", f"http://127.0.0.1:{port}{path}"],
            capture_output=True, text=True, timeout=120, check=True,
        ).stdout
        speeds.append(float(out) / 1e6)
    return statistics.median(speeds)


async def main(origin: int, path: str) -> None:
    loop = asyncio.get_running_loop()
    print(f"direct: {await loop.run_in_executor(None, download, origin, path):.0f} MB/s")
    for name, start in (("transports", transport_relay), ("splice", splice_relay)):
        port = origin + 7 if name == "transports" else origin + 8
        server = await start(port, origin)
        speed = await loop.run_in_executor(None, download, port, path)
        print(f"{name}: {speed:.0f} MB/s")
        server.close() if hasattr(server, "close") else None


if __name__ == "__main__":
    uvloop.run(main(int(sys.argv[1]), sys.argv[2] if len(sys.argv) > 2 else "/big"))
