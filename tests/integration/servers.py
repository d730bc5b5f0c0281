"""Real servers on 127.0.0.1 for integration tests: HTTP(S) origin, TCP echo, UDP echo."""

from __future__ import annotations

import gzip
import json
import socket
import socketserver
import ssl
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


class OriginHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "origin"

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass

    def do_HEAD(self) -> None:
        self._respond(b"hello-from-origin\n", send_body=False)

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        query = parse_qs(url.query)
        route = url.path
        if route == "/small":
            self._respond(b"hello-from-origin\n")
        elif route == "/headers":
            headers = {k.lower(): v for k, v in self.headers.items()}
            body = json.dumps({"path": self.path, "headers": headers}).encode()
            self._respond(body, "application/json")
        elif route == "/chunked":
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.send_header("Trailer", "X-Checksum")
            self.end_headers()
            for part in (b"first,", b"second,", b"third"):
                self.wfile.write(b"%x;ext=1\r\n%s\r\n" % (len(part), part))
                self.wfile.flush()
            self.wfile.write(b"0\r\nX-Checksum: 42\r\n\r\n")
        elif route == "/close":
            self.send_response(200)
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(b"delimited-by-close")
            self.close_connection = True
        elif route == "/big":
            size = int(query.get("n", ["1000000"])[0])
            self.send_response(200)
            self.send_header("Content-Length", str(size))
            self.end_headers()
            block = b"x" * 65536
            remaining = size
            while remaining:
                part = block[: min(remaining, len(block))]
                self.wfile.write(part)
                remaining -= len(part)
        elif route == "/gzip":
            body = gzip.compress(json.dumps({"packed": True, "word": "zebracorn"}).encode())
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Encoding", "gzip")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Set-Cookie", "session=topsecret; Path=/")
            self.end_headers()
            self.wfile.write(body)
        elif route == "/status":
            code = int(query.get("code", ["200"])[0])
            self._respond(f"status {code}\n".encode(), status=code)
        elif route == "/slow":
            time.sleep(float(query.get("s", ["1"])[0]))
            self._respond(b"slow\n")
        else:
            self._respond(b"not found\n", status=404)

    def do_POST(self) -> None:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            body = self._read_chunked()
        else:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self._respond(body, "application/octet-stream")

    def _read_chunked(self) -> bytes:
        parts = []
        while True:
            size = int(self.rfile.readline().split(b";")[0], 16)
            if size == 0:
                while self.rfile.readline() not in (b"\r\n", b""):
                    pass
                return b"".join(parts)
            parts.append(self.rfile.read(size))
            self.rfile.readline()

    def _respond(
        self,
        body: bytes,
        content_type: str = "text/plain",
        status: int = 200,
        send_body: bool = True,
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        if status not in (204, 304):
            self.send_header("Content-Length", str(len(body)))
        if self.headers.get("Connection", "").lower() != "close":
            self.send_header("Connection", "keep-alive")
            self.send_header("Keep-Alive", "timeout=5")
        self.end_headers()
        if send_body and status not in (204, 304):
            self.wfile.write(body)


class Origin:
    """A threaded HTTP/1.1 origin (optionally HTTPS) on 127.0.0.1."""

    def __init__(self, tls: ssl.SSLContext | None = None, host: str = "127.0.0.1") -> None:
        server_class = ThreadingHTTPServer
        if ":" in host:
            server_class = type("V6Server", (ThreadingHTTPServer,), {"address_family": socket.AF_INET6})
        self.server = server_class((host, 0), OriginHandler)
        self.server.daemon_threads = True
        if tls is not None:
            self.server.socket = tls.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class _EchoHandler(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        while True:
            data = self.request.recv(65536)
            if not data:
                self.request.shutdown(socket.SHUT_WR)
                return
            self.request.sendall(data)


class _ThreadingTCP(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


class TcpEcho:
    def __init__(self, host: str = "127.0.0.1") -> None:
        server_class = _ThreadingTCP
        if ":" in host:
            server_class = type("V6Echo", (_ThreadingTCP,), {"address_family": socket.AF_INET6})
        self.server = server_class((host, 0), _EchoHandler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class UdpEcho:
    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.sock.settimeout(0.2)
        self.running = True
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while self.running:
            try:
                data, addr = self.sock.recvfrom(65536)
            except TimeoutError:
                continue
            except OSError:
                return
            self.sock.sendto(b"echo:" + data, addr)

    def close(self) -> None:
        self.running = False
        self.sock.close()


class UpgradeServer:
    """Answers one Upgrade request with 101, then echoes raw bytes (a stand-in for WebSocket)."""

    def __init__(self) -> None:
        self.server = _ThreadingTCP(("127.0.0.1", 0), _UpgradeHandler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class _UpgradeHandler(socketserver.StreamRequestHandler):
    def handle(self) -> None:
        head = b""
        while not head.endswith(b"\r\n\r\n"):
            line = self.rfile.readline()
            if not line:
                return
            head += line
        if b"upgrade: echo" not in head.lower():
            self.wfile.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
            return
        self.wfile.write(b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
        while True:
            data = self.request.recv(65536)
            if not data:
                return
            self.request.sendall(data)


class BulkServer:
    """Answers every GET with `Content-Length: n` (from `?n=`) bytes sent as fast as sendall goes."""

    def __init__(self) -> None:
        self.server = _ThreadingTCP(("127.0.0.1", 0), _BulkHandler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class _BulkHandler(socketserver.StreamRequestHandler):
    block = b"\xa5" * (1 << 20)

    def handle(self) -> None:
        request_line = self.rfile.readline()
        while self.rfile.readline() not in (b"\r\n", b""):
            pass
        query = parse_qs(urlsplit(request_line.split(b" ")[1].decode()).query)
        size = int(query.get("n", ["1000000"])[0])
        self.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n" % size)
        sent = 0
        try:
            while sent < size:
                part = self.block[: min(len(self.block), size - sent)]
                self.request.sendall(part)
                sent += len(part)
        except OSError:
            return


class SilentServer:
    """A listening socket that never accepts and whose backlog is full: connects hang."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(0)
        self.port = self.sock.getsockname()[1]
        self.fillers = []
        for _ in range(4):  # fill the accept queue so further SYNs are dropped
            filler = socket.socket()
            filler.setblocking(False)
            try:
                filler.connect(("127.0.0.1", self.port))
            except BlockingIOError:
                pass
            self.fillers.append(filler)
        time.sleep(0.2)

    def close(self) -> None:
        for filler in self.fillers:
            filler.close()
        self.sock.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_port(port: int) -> None:
    """Until something accepts connections on 127.0.0.1:`port` (at most 10 s)."""
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def refused_port() -> int:
    """A port on 127.0.0.1 with nothing listening."""
    return free_port()


class WsEcho:
    """A WebSocket echo server (the `websockets` library) on 127.0.0.1, optionally over TLS.

    It echoes every message; to the text "fragment-me" it answers with a
    message sent in three fragments.
    """

    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        from websockets.sync.server import serve

        self.server = serve(self._echo, "127.0.0.1", 0, ssl=tls, compression="deflate")
        self.port = self.server.socket.getsockname()[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @staticmethod
    def _echo(websocket: Any) -> None:
        for message in websocket:
            if message == "fragment-me":
                websocket.send(["frag1-", "frag2-", "frag3"])
            else:
                websocket.send(message)

    def close(self) -> None:
        self.server.shutdown()


RawHandler = Callable[[socket.socket, bytes], None]


class RawBackend:
    """A backend whose answer to each request head is a function of the test (thread per connection)."""

    def __init__(self, answer: RawHandler) -> None:
        self.heads: list[bytes] = []
        outer = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                sock: socket.socket = self.request
                buffered = b""
                while True:
                    while b"\r\n\r\n" not in buffered:
                        chunk = sock.recv(65536)
                        if not chunk:
                            return
                        buffered += chunk
                    head, _, buffered = buffered.partition(b"\r\n\r\n")
                    outer.heads.append(head)
                    answer(sock, head)

        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
