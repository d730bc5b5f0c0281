"""A fast fake proxy vendor (and a plain destination) for bench/vendors.sh.

    fast_vendor.py --terminate PORT   CONNECT with Basic Proxy-Authorization; after
                                      `200 Connection established` it answers the tunnelled
                                      `GET /small` itself and closes: vendor and destination in one
    fast_vendor.py --relay PORT       the same handshake, then a real connection to the CONNECT
                                      target and bytes relayed both ways, as a real vendor does
    fast_vendor.py --plain PORT       a plain HTTP server answering `GET /small` the same way:
                                      the direct destination (--terminate minus the CONNECT)

The vendor accepts only password `vendorpw` and usernames starting with
`customer-bench`, and counts the distinct `-sessid-XXXX` ids it sees. On
SIGTERM or SIGINT it prints one JSON stats line to stderr (connections, tunnels,
distinct sessions, refusals) and exits. Raw `asyncio.Protocol`s on uvloop, so
its CPU per connection stays small and alike in every mode.
"""

from __future__ import annotations

import asyncio
import base64
import json
import signal
import sys

HOST = "127.0.0.1"
MAX_HEAD = 16_384
BODY = b"hello-from-origin\n"
SMALL = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\nConnection: close\r\n\r\n"
    % len(BODY)
) + BODY
NOT_FOUND = b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
ESTABLISHED = b"HTTP/1.1 200 Connection established\r\n\r\n"
REFUSED = (
    b"HTTP/1.1 407 Proxy Authentication Required\r\n"
    b'Proxy-Authenticate: Basic realm="bench"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n'
)
BAD = b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
USER_PREFIX = b"customer-bench"
PASSWORD = b"vendorpw"
SESSION_MARK = b"-sessid-"


class Stats:
    def __init__(self) -> None:
        self.connections = 0
        self.tunnels = 0
        self.answered = 0
        self.refused = 0
        self.bad = 0
        self.relay_failures = 0
        self.sessions: set[bytes] = set()
        # Basic tokens already checked: a sticky session repeats its credentials, so this is the
        # cheap path a real vendor's cache would take too. Bounded: a bench never exceeds it.
        self.tokens: dict[bytes, bytes | None] = {}

    def as_json(self, mode: str) -> str:
        return json.dumps(
            {
                "mode": mode,
                "connections": self.connections,
                "tunnels": self.tunnels,
                "answered": self.answered,
                "distinct_sessions": len(self.sessions),
                "refused": self.refused,
                "bad_requests": self.bad,
                "relay_failures": self.relay_failures,
            }
        )


STATS = Stats()
DIALS: set[asyncio.Task[None]] = set()


def check_token(token: bytes) -> bytes | None:
    """The session id (b"" when none) for a good Basic token, None for a refused one."""
    if token in STATS.tokens:
        return STATS.tokens[token]
    try:
        user, _, password = base64.b64decode(token, validate=True).partition(b":")
    except ValueError:
        user, password = b"", b""
    session: bytes | None = None
    if password == PASSWORD and user.startswith(USER_PREFIX):
        start = user.find(SESSION_MARK)
        session = b""
        if start >= 0:
            start += len(SESSION_MARK)
            end = user.find(b"-", start)
            session = user[start:] if end < 0 else user[start:end]
    if len(STATS.tokens) < 1_000_000:
        STATS.tokens[token] = session
    return session


def proxy_token(head: bytes) -> bytes | None:
    """The Basic token of a request head's Proxy-Authorization header, if any."""
    at = head.find(b"\r\nproxy-authorization:")
    if at < 0:
        at = head.find(b"\r\nProxy-Authorization:")
    if at < 0:
        return None
    end = head.find(b"\r\n", at + 2)
    value = head[at + 22 : end].strip()
    scheme, _, token = value.partition(b" ")
    return token.strip() if scheme.lower() == b"basic" else None


class Plain(asyncio.Protocol):
    """One connection to the destination: read a request head, answer /small, close."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buf = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        STATS.connections += 1

    def data_received(self, data: bytes) -> None:
        self.buf += data
        if self.buf.find(b"\r\n\r\n") >= 0:
            self.answer_get(self.buf)
        elif len(self.buf) > MAX_HEAD:
            self.finish(BAD)

    def answer_get(self, head: bytes) -> None:
        if head.startswith(b"GET /small "):
            STATS.answered += 1
            self.finish(SMALL)
        else:
            self.finish(NOT_FOUND)

    def finish(self, answer: bytes) -> None:
        assert self.transport is not None
        self.transport.write(answer)
        self.transport.close()
        self.buf = b""


class Vendor(Plain):
    """A vendor's side of one tunnel: CONNECT, check the account, then terminate or relay."""

    def __init__(self, relay: bool) -> None:
        super().__init__()
        self.relay = relay
        self.state = "connect"  # connect -> tunnel (terminate) | dialing -> relaying (relay)
        self.to_upstream: asyncio.Transport | None = None

    def data_received(self, data: bytes) -> None:
        if self.state == "relaying":
            self.to_upstream.write(data)  # type: ignore[union-attr]
            return
        self.buf += data
        if self.state == "connect":
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                if len(self.buf) > MAX_HEAD:
                    self.finish(BAD)
                return
            head, self.buf = self.buf[: end + 4], self.buf[end + 4 :]
            self.connect(head)
        if self.state == "tunnel" and self.buf.find(b"\r\n\r\n") >= 0:
            self.answer_get(self.buf)

    def connect(self, head: bytes) -> None:
        if not head.startswith(b"CONNECT "):
            STATS.bad += 1
            return self.finish(BAD)
        token = proxy_token(head)
        session = None if token is None else check_token(token)
        if session is None:
            STATS.refused += 1
            return self.finish(REFUSED)
        if session:
            STATS.sessions.add(session)
        STATS.tunnels += 1
        if not self.relay:
            self.transport.write(ESTABLISHED)  # type: ignore[union-attr]
            self.state = "tunnel"
            return
        target = head[8 : head.find(b" ", 8)]
        host, _, port = target.rpartition(b":")
        self.state = "dialing"
        self.transport.pause_reading()  # type: ignore[union-attr]
        task = asyncio.get_running_loop().create_task(self.dial(host.strip(b"[]").decode(), int(port)))
        DIALS.add(task)  # a reference until it ends, so it is not collected mid-dial
        task.add_done_callback(DIALS.discard)

    async def dial(self, host: str, port: int) -> None:
        loop = asyncio.get_running_loop()
        try:
            upstream, _ = await loop.create_connection(lambda: Upstream(self), host, port)
        except OSError:
            STATS.relay_failures += 1
            if self.transport is None:
                return None
            return self.finish(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
        if self.transport is None or self.transport.is_closing():
            upstream.close()
            return
        self.to_upstream = upstream  # type: ignore[assignment]
        self.transport.write(ESTABLISHED)
        if self.buf:
            upstream.write(self.buf)
            self.buf = b""
        self.state = "relaying"
        self.transport.resume_reading()

    def eof_received(self) -> bool:
        if self.to_upstream is not None and self.to_upstream.can_write_eof():
            self.to_upstream.write_eof()
            return True  # half-close: the answer may still be on its way back
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        if self.to_upstream is not None:
            self.to_upstream.close()
        self.transport = None

    # flow control: the client is slow, so stop reading the upstream
    def pause_writing(self) -> None:
        if self.to_upstream is not None:
            self.to_upstream.pause_reading()

    def resume_writing(self) -> None:
        if self.to_upstream is not None:
            self.to_upstream.resume_reading()


class Upstream(asyncio.Protocol):
    """The relay's connection to the destination: bytes back to the vendor's client."""

    def __init__(self, client: Vendor) -> None:
        self.client = client
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        if self.client.transport is not None:
            self.client.transport.write(data)

    def eof_received(self) -> bool:
        if self.client.transport is not None:
            self.client.transport.close()  # the destination finished: so does the tunnel
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        if self.client.transport is not None:
            self.client.transport.close()

    def pause_writing(self) -> None:
        if self.client.transport is not None:
            self.client.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.client.transport is not None:
            self.client.transport.resume_reading()


async def serve(mode: str, port: int) -> None:
    loop = asyncio.get_running_loop()
    factory = {
        "--plain": Plain,
        "--terminate": lambda: Vendor(relay=False),
        "--relay": lambda: Vendor(relay=True),
    }[mode]
    server = await loop.create_server(factory, HOST, port, backlog=4096, reuse_address=True)
    stopped = loop.create_future()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, lambda: stopped.done() or stopped.set_result(None))
    await stopped
    server.close()
    print(STATS.as_json(mode), file=sys.stderr, flush=True)


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in ("--terminate", "--relay", "--plain"):
        sys.exit(__doc__)
    try:
        import uvloop
    except ImportError:
        sys.exit("fast_vendor.py wants uvloop (lanner's venv has it)")
    uvloop.run(serve(sys.argv[1], int(sys.argv[2])))
