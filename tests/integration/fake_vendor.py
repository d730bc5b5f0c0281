"""A fake upstream proxy vendor for integration tests, run as its own process so that a test can kill it.

    python tests/integration/fake_vendor.py --protocol http|socks5 --user-re REGEX --password PASSWORD
        [--whitelist] [--host 127.0.0.1] [--port 0] [--control-port 0] [--no-log] [--log-size 10000]
    python tests/integration/fake_vendor.py --config '{"protocol": "socks5", "user_re": "...", ...}'

It plays a commercial "superproxy": a proxy port speaking HTTP CONNECT, or SOCKS5 with
username/password authentication (RFC 1929), where the username must fullmatch REGEX (its
named groups, such as session or country, are captured) and the password must equal
PASSWORD; with --whitelist any client is let in (SOCKS5 then offers method 0x00). It then
tunnels to the target and relays bytes both ways, half-closes included. A control port
answers JSON:

  GET  /log    the handshakes seen, oldest first: {"username", "password", "target" ("host:port",
               null when SOCKS5 failed before the request), "groups", "result", "at"}, where result
               is "ok", a mode, "auth" (bad credentials), "denied" (target off loopback),
               "refused" or "unreachable" (the target did not answer)
  GET  /stats  {"connections": tunnels open now, "handshakes": handshakes since start or reset}
  GET  /mode   the current misbehaviour
  POST /mode   {"mode": MODE, "count": N or null, "delay": SECONDS}: the next N handshakes whose
               credentials pass (null: all of them, until changed) misbehave by MODE (see MODES)
  POST /reset  clears the log, the handshake count and the mode

Every error answer is branded the way real vendors brand theirs (VENDOR_STRINGS), so that
gateway tests can assert that none of it reaches a client. Once both ports listen it prints
`ready PROXY_PORT CONTROL_PORT` (port 0 picks a free one). uvloop is used when importable and
--no-log turns the log off, for benchmarks.

It must never reach beyond loopback: targets other than 127.0.0.1, ::1 and localhost fail.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import json
import re
import signal
import socket
import struct
import sys
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from aiohttp import web

BRAND = "FakeVendor"
VENDOR_HOST = "gw.fakevendor-superproxy.net"
VENDOR_IP = "203.0.113.77"  # TEST-NET-3 (RFC 5737): never anybody's real address
VENDOR_STRINGS: tuple[bytes, ...] = (
    b"fakevendor",
    b"FakeVendor",
    b"superproxy",
    VENDOR_HOST.encode(),
    VENDOR_IP.encode(),
    b"x-brd",
    b"x-brd-error",
    b"x-brd-err-code",
    b"x-luminati-error",
    b"luminati",
    b"scrapoxy",
    b"X-Scrapoxy-Proxyerror",
)
# ok: normal; auth407: 407 although the credentials are good (an expired account);
# forbidden403: bandwidth exceeded; session_gone502: the session's exit IP is gone;
# geo525: no peers in the country; slow: answer only after `delay` seconds, then normally;
# reset: a TCP reset right after the request; html: a 200 page (or, for SOCKS5, an HTML
# blob) instead of a tunnel; refuse_target: as if the target refused the connection.
MODES = (
    "ok",
    "auth407",
    "forbidden403",
    "session_gone502",
    "geo525",
    "slow",
    "reset",
    "html",
    "refuse_target",
)
DEFAULT_DELAY = 30.0
LOOPBACK = {"127.0.0.1": "127.0.0.1", "::1": "::1", "localhost": "127.0.0.1"}
MAX_HANDSHAKE = 16 * 1024  # bytes of request head or SOCKS5 negotiation buffered before giving up


@dataclass(frozen=True, slots=True)
class Page:
    status: int
    reason: str
    error: str
    code: str


PAGES = {
    "auth": Page(407, "Proxy Authentication Required", "bad credentials for zone", "client_10000"),
    "auth407": Page(
        407, "Proxy Authentication Required", "zone has expired: account suspended", "client_10020"
    ),
    "forbidden403": Page(403, "Forbidden", "bandwidth exceeded for zone", "policy_20050"),
    "session_gone502": Page(502, "Bad Gateway", "session ip is no longer available", "target_40001"),
    "geo525": Page(525, "No Peers Available", "no peers available for country {country}", "target_40002"),
    "html": Page(200, "OK", "superproxy status page", "info_00000"),
    "refuse_target": Page(502, "Bad Gateway", "target refused the connection", "target_40003"),
    "refused": Page(502, "Bad Gateway", "target refused the connection", "target_40003"),
    "unreachable": Page(502, "Bad Gateway", "could not connect to target", "target_40004"),
    "denied": Page(403, "Forbidden", "target host is not allowed for zone", "policy_20010"),
    "bad_request": Page(400, "Bad Request", "malformed proxy request", "client_10400"),
    "method": Page(405, "Method Not Allowed", "only CONNECT is served on this port", "client_10405"),
}
# RFC 1928 §6 reply codes for the same outcomes.
SOCKS_REPLIES = {
    "forbidden403": 0x02,
    "session_gone502": 0x01,
    "geo525": 0x04,
    "refuse_target": 0x05,
    "refused": 0x05,
    "unreachable": 0x04,
    "denied": 0x02,
    "bad_request": 0x01,
}
HTTP_ESTABLISHED = b"HTTP/1.1 200 Connection established\r\n\r\n"


def branded_body(page: Page, error: str) -> bytes:
    return (
        f"<!DOCTYPE html>\n<html><head><title>{BRAND} | {page.status} {page.reason}</title></head>\n"
        f"<body><h1>{page.status} {page.reason}</h1>\n"
        f"<p>{BRAND} superproxy {VENDOR_HOST} ({VENDOR_IP}) could not serve your request: {error}.</p>\n"
        f"<p>Error code {page.code}. Contact support at https://{VENDOR_HOST}/support</p></body></html>\n"
    ).encode()


def branded_response(answer: str, groups: dict[str, str | None]) -> bytes:
    """The whole HTTP response a vendor sends for `answer` (a PAGES key), branded head to tail."""
    page = PAGES[answer]
    error = page.error.format(country=groups.get("country") or "any")
    body = branded_body(page, error)
    head = [
        f"HTTP/1.1 {page.status} {page.reason}",
        "Server: fakevendor-superproxy",
        f"x-brd-error: {error}",
        f"x-brd-err-code: {page.code}",
        f"x-luminati-error: {error}",
        "X-Scrapoxy-Proxyerror: fakevendor",
        f"Via: 1.1 {VENDOR_HOST} ({VENDOR_IP})",
        "Content-Type: text/html; charset=utf-8",
        f"Content-Length: {len(body)}",
        "Connection: close",
    ]
    if page.status == 407:
        head.insert(1, f'Proxy-Authenticate: Basic realm="{BRAND}"')
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


# Parsers: bytes in, a request out (or None while more bytes are needed); never I/O.


class HandshakeError(Exception):
    """The client broke the proxy protocol: `answer` names the page (HTTP) or reply (SOCKS5) to send."""

    def __init__(self, answer: str = "bad_request", socks_reply: int = 0x01) -> None:
        super().__init__(answer)
        self.answer = answer
        self.socks_reply = socks_reply


@dataclass(frozen=True, slots=True)
class ConnectRequest:
    host: str
    port: int
    username: str | None
    password: str | None


def parse_connect(head: bytes) -> ConnectRequest:
    """An HTTP CONNECT request head, without its final blank line (RFC 9110 §9.3.6)."""
    lines = head.split(b"\r\n")
    parts = lines[0].split(b" ")
    if len(parts) != 3 or not parts[2].startswith(b"HTTP/1."):
        raise HandshakeError("bad_request")
    if parts[0] != b"CONNECT":
        raise HandshakeError("method")
    host, port = split_authority(parts[1].decode("latin-1"))
    username = password = None
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"proxy-authorization":
            username, password = basic_credentials(value.strip())
    return ConnectRequest(host, port, username, password)


def split_authority(authority: str) -> tuple[str, int]:
    host, colon, port = authority.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not colon or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise HandshakeError("bad_request")
    return host, int(port)


def basic_credentials(value: bytes) -> tuple[str | None, str | None]:
    scheme, _, token = value.partition(b" ")
    if scheme.lower() != b"basic":
        return None, None
    try:
        decoded = base64.b64decode(token.strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None, None
    username, colon, password = decoded.partition(":")
    return (username, password) if colon else (None, None)


def take_greeting(buffer: bytearray) -> tuple[bytes, int] | None:
    """SOCKS5 version/methods (RFC 1928 §3): (methods, bytes used)."""
    if len(buffer) < 2:
        return None
    if buffer[0] != 5:
        raise HandshakeError()
    end = 2 + buffer[1]
    return (bytes(buffer[2:end]), end) if len(buffer) >= end else None


def take_credentials(buffer: bytearray) -> tuple[str, str, int] | None:
    """RFC 1929 §2 username/password request: (username, password, bytes used)."""
    if len(buffer) < 3:
        return None
    if buffer[0] != 1:
        raise HandshakeError()
    user_end = 2 + buffer[1]
    if len(buffer) < user_end + 1:
        return None
    end = user_end + 1 + buffer[user_end]
    if len(buffer) < end:
        return None
    username = buffer[2:user_end].decode(errors="replace")
    return username, buffer[user_end + 1 : end].decode(errors="replace"), end


def take_request(buffer: bytearray) -> tuple[str, int, int] | None:
    """A SOCKS5 CONNECT request (RFC 1928 §4): (host, port, bytes used)."""
    if len(buffer) < 5:
        return None
    version, command, _, address_type = buffer[:4]
    if version != 5:
        raise HandshakeError()
    ends = {1: 10, 4: 22, 3: 7 + buffer[4]}
    if address_type not in ends:
        raise HandshakeError(socks_reply=0x08)
    end = ends[address_type]
    if len(buffer) < end:
        return None
    if command != 1:
        raise HandshakeError(socks_reply=0x07)
    if address_type == 3:
        host = buffer[5 : end - 2].decode(errors="replace")
    else:
        host = socket.inet_ntop(
            socket.AF_INET if address_type == 1 else socket.AF_INET6, bytes(buffer[4 : end - 2])
        )
    return host, struct.unpack("!H", buffer[end - 2 : end])[0], end


def socks_reply(code: int, bound: tuple[Any, ...] = ("0.0.0.0", 0)) -> bytes:
    family, size = (socket.AF_INET6, 4) if ":" in bound[0] else (socket.AF_INET, 1)
    return bytes([5, code, 0, size]) + socket.inet_pton(family, bound[0]) + struct.pack("!H", bound[1])


# The vendor's state, shared by every connection of the process.


@dataclass(frozen=True, slots=True)
class Settings:
    protocol: str
    user_re: re.Pattern[str]
    password: str | None
    whitelist: bool
    host: str
    port: int
    control_port: int
    log_size: int  # 0: no log at all


@dataclass(slots=True)
class Attempt:
    username: str | None = None
    password: str | None = None
    target: str | None = None
    groups: dict[str, str | None] | None = None


class Vendor:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.log: deque[dict[str, Any]] | None = (
            deque(maxlen=settings.log_size) if settings.log_size else None
        )
        self.mode: str = "ok"
        self.remaining: int | None = None  # handshakes left to misbehave; None: all of them
        self.delay = DEFAULT_DELAY
        self.tunnels = 0
        self.handshakes = 0

    def authenticate(self, attempt: Attempt) -> bool:
        username = attempt.username
        match = self.settings.user_re.fullmatch(username) if username is not None else None
        attempt.groups = match.groupdict() if match else {}
        return self.settings.whitelist or (match is not None and attempt.password == self.settings.password)

    def take_mode(self) -> str:
        mode = self.mode
        if self.remaining is not None:
            self.remaining -= 1
            if self.remaining <= 0:
                self.mode, self.remaining = "ok", None
        return mode

    def set_mode(self, mode: str, count: int | None, delay: float) -> None:
        self.mode, self.remaining, self.delay = mode, count, delay

    def clear(self) -> None:
        self.set_mode("ok", None, DEFAULT_DELAY)
        self.handshakes = 0
        if self.log is not None:
            self.log.clear()

    def record(self, attempt: Attempt, result: str) -> None:
        self.handshakes += 1
        if self.log is not None:
            self.log.append(
                {
                    "username": attempt.username,
                    "password": attempt.password,
                    "target": attempt.target,
                    "groups": attempt.groups or {},
                    "result": result,
                    "at": time.time(),
                }
            )


# The driver: one ClientConnection per client of the proxy port, one TargetConnection per tunnel.


def abort_with_reset(transport: asyncio.Transport) -> None:
    sock = transport.get_extra_info("socket")
    if sock is not None:  # linger 0: close sends RST instead of FIN
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


class TargetConnection(asyncio.Protocol):
    def __init__(self, client: ClientConnection) -> None:
        self.client = client

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self.transport.pause_reading()  # until the client has its "connection established"

    def data_received(self, data: bytes) -> None:
        self.client.transport.write(data)

    def eof_received(self) -> bool:
        self.client.target_eof = True
        if self.client.transport.can_write_eof():
            self.client.transport.write_eof()
        return not self.client.client_eof

    def connection_lost(self, exc: Exception | None) -> None:
        self.client.transport.close()

    def pause_writing(self) -> None:
        self.client.transport.pause_reading()

    def resume_writing(self) -> None:
        self.client.transport.resume_reading()


class ClientConnection(asyncio.Protocol):
    """One client of the proxy port: the handshake, then a relay to its target."""

    def __init__(self, vendor: Vendor) -> None:
        self.vendor = vendor
        self.socks = vendor.settings.protocol == "socks5"
        self.stage = "greeting" if self.socks else "head"
        self.buffer = bytearray()
        self.attempt = Attempt()
        self.mode = "ok"
        self.upstream: asyncio.Transport | None = None
        self.task: asyncio.Task[None] | None = None
        self.client_eof = self.target_eof = self.counted = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        if self.upstream is not None:
            self.upstream.write(data)
            return
        self.buffer += data
        try:
            if self.socks:
                self.advance_socks()
            else:
                self.advance_http()
        except HandshakeError as error:
            if not self.socks:
                self.transport.write(branded_response(error.answer, {}))
            elif self.stage == "request":
                self.transport.write(socks_reply(error.socks_reply))
            self.transport.close()
            return
        if len(self.buffer) > MAX_HANDSHAKE:
            self.transport.close()

    def advance_http(self) -> None:
        end = self.buffer.find(b"\r\n\r\n")
        if self.stage != "head" or end < 0:
            return
        request = parse_connect(bytes(self.buffer[:end]))
        del self.buffer[: end + 4]
        target = (
            f"[{request.host}]:{request.port}" if ":" in request.host else f"{request.host}:{request.port}"
        )
        self.attempt = Attempt(request.username, request.password, target)
        if not self.vendor.authenticate(self.attempt):
            self.vendor.record(self.attempt, "auth")
            self.answer("auth")
            return
        self.mode = self.vendor.take_mode()
        self.begin(request.host, request.port)

    def advance_socks(self) -> None:
        if self.stage == "greeting" and (greeting := take_greeting(self.buffer)):
            methods, used = greeting
            del self.buffer[:used]
            self.choose_method(methods)
        if self.stage == "credentials" and (credentials := take_credentials(self.buffer)):
            username, password, used = credentials
            del self.buffer[:used]
            self.attempt = Attempt(username, password)
            self.check_credentials(b"\x01\x00", b"\x01\x01")
        if self.stage == "request" and (request := take_request(self.buffer)):
            host, port, used = request
            del self.buffer[:used]
            self.attempt.target = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
            self.begin(host, port)

    def choose_method(self, methods: bytes) -> None:
        if not self.vendor.settings.whitelist:
            self.stage = "credentials" if 2 in methods else "closed"
            self.transport.write(b"\x05\x02" if 2 in methods else b"\x05\xff")
        elif 0 in methods:
            self.check_credentials(b"\x05\x00", b"\x05\xff")
        else:
            self.stage = "closed"
            self.transport.write(b"\x05\xff")
        if self.stage == "closed":
            self.transport.close()

    def check_credentials(self, accepted: bytes, rejected: bytes) -> None:
        if self.vendor.authenticate(self.attempt):
            self.mode = self.vendor.take_mode()
            if self.mode != "auth407":
                self.stage = "request"
                self.transport.write(accepted)
                return
        self.vendor.record(self.attempt, "auth" if self.mode != "auth407" else "auth407")
        self.stage = "closed"
        self.transport.write(rejected)
        self.transport.close()

    def begin(self, host: str, port: int) -> None:
        self.stage = "busy"
        self.transport.pause_reading()
        self.task = asyncio.get_running_loop().create_task(
            self.settle(host, port), name=f"handshake-{host}:{port}"
        )

    async def settle(self, host: str, port: int) -> None:
        mode = self.mode
        if mode != "ok":
            self.vendor.record(self.attempt, mode)
        if mode == "slow":
            await asyncio.sleep(self.vendor.delay)
        if mode == "reset":
            abort_with_reset(self.transport)
        elif mode not in ("ok", "slow"):
            self.answer(mode)
        elif (address := LOOPBACK.get(host.lower())) is None:
            self.fail(mode, "denied")
        else:
            await self.connect(mode, address, port)

    async def connect(self, mode: str, address: str, port: int) -> None:
        loop = asyncio.get_running_loop()
        try:
            transport, target = await loop.create_connection(lambda: TargetConnection(self), address, port)
        except ConnectionRefusedError:
            self.fail(mode, "refused")
            return
        except OSError:
            self.fail(mode, "unreachable")
            return
        if mode == "ok":
            self.vendor.record(self.attempt, "ok")
        if self.transport.is_closing():
            transport.close()
            return
        self.open_tunnel(target)

    def open_tunnel(self, target: TargetConnection) -> None:
        self.vendor.tunnels += 1
        self.counted, self.stage = True, "tunnel"
        if self.socks:
            self.transport.write(socks_reply(0, target.transport.get_extra_info("sockname")))
        else:
            self.transport.write(HTTP_ESTABLISHED)
        self.upstream = target.transport
        if self.buffer:
            self.upstream.write(bytes(self.buffer))
            self.buffer.clear()
        self.upstream.resume_reading()
        self.transport.resume_reading()

    def fail(self, mode: str, outcome: str) -> None:
        if mode == "ok":  # a misbehaving handshake was recorded under its mode already
            self.vendor.record(self.attempt, outcome)
        self.answer(outcome)

    def answer(self, outcome: str) -> None:
        """Send the vendor's answer for a handshake that does not become a tunnel, and close."""
        if not self.socks:
            self.transport.write(branded_response(outcome, self.attempt.groups or {}))
        elif outcome == "html":
            self.transport.write(branded_body(PAGES["html"], PAGES["html"].error))
        else:
            self.transport.write(socks_reply(SOCKS_REPLIES[outcome]))
        self.stage = "closed"
        self.transport.close()

    def eof_received(self) -> bool:
        if self.upstream is None:
            return False
        self.client_eof = True
        if self.upstream.can_write_eof():
            self.upstream.write_eof()
        return not self.target_eof

    def connection_lost(self, exc: Exception | None) -> None:
        if self.task is not None:
            self.task.cancel()
        if self.upstream is not None:
            self.upstream.close()
        if self.counted:
            self.vendor.tunnels -= 1
            self.counted = False

    def pause_writing(self) -> None:
        if self.upstream is not None:
            self.upstream.pause_reading()

    def resume_writing(self) -> None:
        if self.upstream is not None:
            self.upstream.resume_reading()


# The control port.


def control_app(vendor: Vendor) -> web.Application:
    def mode_state() -> web.Response:
        return web.json_response({"mode": vendor.mode, "count": vendor.remaining, "delay": vendor.delay})

    async def get_log(request: web.Request) -> web.Response:
        return web.json_response(list(vendor.log or ()))

    async def get_stats(request: web.Request) -> web.Response:
        return web.json_response({"connections": vendor.tunnels, "handshakes": vendor.handshakes})

    async def get_mode(request: web.Request) -> web.Response:
        return mode_state()

    async def post_mode(request: web.Request) -> web.Response:
        try:
            body = await request.json()
        except json.JSONDecodeError as error:
            raise web.HTTPBadRequest(text=f"not JSON: {error}") from error
        if not isinstance(body, dict):
            raise web.HTTPBadRequest(text="expected a JSON object")
        mode, count, delay = body.get("mode"), body.get("count"), body.get("delay")
        if mode not in MODES:
            raise web.HTTPBadRequest(text=f"mode must be one of {', '.join(MODES)}")
        if count is not None and (type(count) is not int or count < 1):
            raise web.HTTPBadRequest(text="count must be a positive integer or null")
        if delay is not None and (type(delay) not in (int, float) or delay < 0):
            raise web.HTTPBadRequest(text="delay must be a number of seconds")
        vendor.set_mode(mode, count, DEFAULT_DELAY if delay is None else float(delay))
        return mode_state()

    async def post_reset(request: web.Request) -> web.Response:
        vendor.clear()
        return mode_state()

    app = web.Application()
    app.router.add_get("/log", get_log)
    app.router.add_get("/stats", get_stats)
    app.router.add_get("/mode", get_mode)
    app.router.add_post("/mode", post_mode)
    app.router.add_post("/reset", post_reset)
    return app


async def serve(settings: Settings) -> None:
    vendor = Vendor(settings)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: ClientConnection(vendor), settings.host, settings.port, backlog=4096, reuse_address=True
    )
    runner = web.AppRunner(control_app(vendor), access_log=None, handle_signals=False)
    await runner.setup()
    await web.TCPSite(runner, settings.host, settings.control_port).start()
    print(f"ready {server.sockets[0].getsockname()[1]} {runner.addresses[0][1]}", flush=True)
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
    server.close()
    await runner.cleanup()


DEFAULTS: dict[str, Any] = {
    "protocol": "http",
    "user_re": ".+",
    "password": None,
    "whitelist": False,
    "host": "127.0.0.1",
    "port": 0,
    "control_port": 0,
    "no_log": False,
    "log_size": 10_000,
}


def parse_settings(argv: list[str]) -> Settings:
    parser = argparse.ArgumentParser(description="A fake upstream proxy vendor for lanner's tests.")
    parser.add_argument("--config", help="a JSON object, or a file holding one, with any option below")
    parser.add_argument("--protocol", choices=("http", "socks5"))
    parser.add_argument("--user-re", help="usernames must fullmatch it; named groups are logged")
    parser.add_argument("--password")
    parser.add_argument("--whitelist", action="store_true", default=None, help="require no credentials")
    parser.add_argument("--host", help="address both ports listen on")
    parser.add_argument("--port", type=int, help="proxy port (0: any free one)")
    parser.add_argument("--control-port", type=int, help="control port (0: any free one)")
    parser.add_argument("--no-log", action="store_true", default=None, help="keep no handshake log")
    parser.add_argument("--log-size", type=int, help="handshakes the log keeps")
    args = parser.parse_args(argv)
    options = dict(DEFAULTS)
    if args.config:
        text = args.config if args.config.lstrip().startswith("{") else Path(args.config).read_text()
        options.update(json.loads(text))
    options.update({key: value for key, value in vars(args).items() if value is not None and key != "config"})
    if unknown := set(options) - set(DEFAULTS) - {"config"}:
        parser.error(f"unknown options in --config: {', '.join(sorted(unknown))}")
    if options["protocol"] not in ("http", "socks5"):
        parser.error("protocol must be http or socks5")
    if options["password"] is None and not options["whitelist"]:
        parser.error("--password is required unless --whitelist is given")
    return Settings(
        protocol=options["protocol"],
        user_re=re.compile(options["user_re"]),
        password=options["password"],
        whitelist=bool(options["whitelist"]),
        host=options["host"],
        port=int(options["port"]),
        control_port=int(options["control_port"]),
        log_size=0 if options["no_log"] else int(options["log_size"]),
    )


def main(argv: list[str] | None = None) -> None:
    settings = parse_settings(sys.argv[1:] if argv is None else argv)
    try:
        import uvloop
    except ImportError:
        asyncio.run(serve(settings))
    else:
        uvloop.run(serve(settings))


if __name__ == "__main__":
    main()
