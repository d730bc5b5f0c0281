"""Zero-copy relay for bulk tunnels: `os.splice` through one kernel pipe per direction.

A tunnel starts on the transport relay (`relay.py`), which is cheapest to set
up and what most tunnels need. Once it has moved `splice_after_bytes` and
neither transport holds unsent bytes, it hands its sockets to a
`SpliceRelay`: bytes then go socket → pipe → socket inside the kernel and
never become Python objects. Measured on this project's machine: about 10%
more bulk throughput than the transport relay (docs/BENCHMARKS.md). Where
`os.splice` is missing (not Linux, or Python < 3.10) tunnels stay on the
transport relay.

The transports stay alive but paused while the splice relay works on
duplicates of their descriptors; closing the relay closes those duplicates
and then the transports, so the connection ends through the usual path.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import socket
from typing import TYPE_CHECKING

from lanner.errors import Outcome

if TYPE_CHECKING:
    from lanner.net.conn import Conn

AVAILABLE = hasattr(os, "splice")
PIPE_SIZE = 1 << 20
_F_SETPIPE_SZ = 1031  # fcntl.F_SETPIPE_SZ, named in the fcntl module only from Python 3.10 on Linux
_FLAGS = getattr(os, "SPLICE_F_MOVE", 1) | getattr(os, "SPLICE_F_NONBLOCK", 2)


class SpliceRelay:
    def __init__(self, conn: Conn, client: asyncio.Transport, upstream: asyncio.Transport) -> None:
        self.conn = conn
        self.transports = (client, upstream)
        self.loop = asyncio.get_running_loop()
        self.sockets = [_duplicate(client), _duplicate(upstream)]
        self.closed = False
        client_fd, upstream_fd = (sock.fileno() for sock in self.sockets)
        self.directions = [
            _Direction(self, client_fd, self.sockets[1], upward=True),
            _Direction(self, upstream_fd, self.sockets[0], upward=False),
        ]
        conn.splice = self
        conn.note("relay", "splice")

    def direction_done(self) -> None:
        if all(direction.finished for direction in self.directions):
            self.close()

    def fail(self, exc: OSError) -> None:
        self.conn.set_outcome(Outcome.RESET, f"connection lost: {exc}")
        self.close(abort=True)

    def close(self, abort: bool = False) -> None:
        if self.closed:
            return
        self.closed = True
        for direction in self.directions:
            direction.stop()
        for sock in self.sockets:
            sock.close()
        for transport in self.transports:
            transport.abort() if abort else transport.close()


class _Direction:
    """src descriptor → pipe → dst socket, driven by readiness callbacks."""

    def __init__(self, relay: SpliceRelay, src: int, dst: socket.socket, upward: bool) -> None:
        self.relay = relay
        self.loop = relay.loop
        self.src = src
        self.dst = dst
        self.dst_fd = dst.fileno()
        self.upward = upward
        self.read_pipe, self.write_pipe = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        try:
            fcntl.fcntl(self.write_pipe, _F_SETPIPE_SZ, PIPE_SIZE)
        except OSError:
            pass  # over /proc/sys/fs/pipe-max-size: the default pipe size still works
        self.in_pipe = 0
        self.finished = False
        self.reading = True
        self.loop.add_reader(src, self.readable)

    def readable(self) -> None:
        try:
            moved = os.splice(self.src, self.write_pipe, PIPE_SIZE, flags=_FLAGS)
        except BlockingIOError:
            return
        except OSError as exc:
            self.relay.fail(exc)
            return
        if moved == 0:
            self.end_of_stream()
            return
        if self.upward:
            self.relay.conn.up += moved
        else:
            self.relay.conn.down += moved
        self.in_pipe += moved
        self.flush()

    def flush(self) -> None:
        while self.in_pipe:
            try:
                sent = os.splice(self.read_pipe, self.dst_fd, self.in_pipe, flags=_FLAGS)
            except BlockingIOError:
                if self.reading:  # the destination is full: stop reading until it drains
                    self.loop.remove_reader(self.src)
                    self.reading = False
                    self.loop.add_writer(self.dst_fd, self.writable)
                return
            except OSError as exc:
                self.relay.fail(exc)
                return
            self.in_pipe -= sent

    def writable(self) -> None:
        self.flush()
        if not self.in_pipe and not self.relay.closed:
            self.loop.remove_writer(self.dst_fd)
            self.reading = True
            self.loop.add_reader(self.src, self.readable)

    def end_of_stream(self) -> None:
        """EOF from src: pass a half-close on (RFC 9293 section 3.6); the other way keeps flowing."""
        self.stop()
        try:
            self.dst.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # the peer is already gone; the other direction will see it
        self.finished = True
        self.relay.direction_done()

    def stop(self) -> None:
        if self.read_pipe < 0:
            return
        self.loop.remove_reader(self.src)
        self.loop.remove_writer(self.dst_fd)
        os.close(self.read_pipe)
        os.close(self.write_pipe)
        self.read_pipe = self.write_pipe = -1


def _duplicate(transport: asyncio.Transport) -> socket.socket:
    """A socket object on a duplicate of the transport's descriptor (the loop keeps the original)."""
    original = transport.get_extra_info("socket")
    return socket.socket(fileno=os.dup(original.fileno()))
