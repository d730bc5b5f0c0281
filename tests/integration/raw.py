"""Raw-socket helpers for tests that need byte-exact control of a client."""

from __future__ import annotations

import socket
import struct


def connect(port: int, timeout: float = 10.0) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    return sock


def recv_exact(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            break
        data += chunk
    return data


def recv_until_close(sock: socket.socket, limit: int = 1 << 24) -> bytes:
    data = b""
    while len(data) < limit:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            break
        if not chunk:
            break
        data += chunk
    return data


def recv_head(sock: socket.socket) -> bytes:
    """What arrives up to the end of an HTTP head (everything, if the peer closes first)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


def exchange(port: int, data: bytes) -> bytes:
    """Send `data` on a new connection and read everything until the far side closes."""
    with connect(port) as sock:
        sock.sendall(data)
        return recv_until_close(sock)


def recv_http_response(sock: socket.socket) -> tuple[bytes, bytes]:
    """One response with a Content-Length body: (head, body).

    The head is read a byte at a time so that a pipelined response arriving in the same
    segment stays in the socket for the next call.
    """
    data = b""
    while not data.endswith(b"\r\n\r\n"):
        byte = sock.recv(1)
        if not byte:
            raise ConnectionError(f"closed before a full head: {data!r}")
        data += byte
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    body += recv_exact(sock, length - len(body))
    return head, body


def socks5_greet(sock: socket.socket, methods: bytes = b"\x00") -> bytes:
    sock.sendall(b"\x05" + bytes([len(methods)]) + methods)
    return recv_exact(sock, 2)


def socks5_request(sock: socket.socket, command: int, host: str, port: int) -> bytes:
    """Send a SOCKS5 request; return the reply (version, code, rsv, address...)."""
    try:
        packed = socket.inet_pton(socket.AF_INET, host)
        address = b"\x01" + packed
    except OSError:
        try:
            address = b"\x04" + socket.inet_pton(socket.AF_INET6, host)
        except OSError:
            name = host.encode()
            address = b"\x03" + bytes([len(name)]) + name
    sock.sendall(b"\x05" + bytes([command]) + b"\x00" + address + struct.pack("!H", port))
    return read_socks5_reply(sock)


def read_socks5_reply(sock: socket.socket) -> bytes:
    head = recv_exact(sock, 4)
    if len(head) < 4:
        return head
    atyp = head[3]
    if atyp == 1:
        rest = recv_exact(sock, 6)
    elif atyp == 4:
        rest = recv_exact(sock, 18)
    else:
        size = recv_exact(sock, 1)
        rest = size + recv_exact(sock, size[0] + 2)
    return head + rest


def socks5_connect(port: int, host: str, dest_port: int) -> tuple[socket.socket, int]:
    """Open a SOCKS5 CONNECT (no auth) through lanner; (socket, reply code)."""
    sock = connect(port)
    assert socks5_greet(sock) == b"\x05\x00"
    reply = socks5_request(sock, 1, host, dest_port)
    return sock, reply[1]


def socks4_request(port: int, host: str, dest_port: int, userid: bytes = b"") -> tuple[socket.socket, bytes]:
    sock = connect(port)
    try:
        ip = socket.inet_aton(host)
        tail = b""
    except OSError:
        ip = b"\x00\x00\x00\x01"
        tail = host.encode() + b"\x00"
    sock.sendall(b"\x04\x01" + struct.pack("!H", dest_port) + ip + userid + b"\x00" + tail)
    return sock, recv_exact(sock, 8)
