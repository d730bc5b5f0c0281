"""Rewriting HTTP/1.x messages for forwarding (RFC 9110 section 7.6, RFC 9112 section 3.2).

Pure functions over parsed heads: which headers are hop-by-hop, how an
absolute-form target becomes an origin-form request, what the client sees
for a response or for an error of ours.
"""

from __future__ import annotations

from http import HTTPStatus

from lanner.wire.errors import ProtocolError
from lanner.wire.http1 import Headers, RequestHead, ResponseHead

# RFC 9110 section 7.6.1 plus the legacy names every proxy strips.
HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"proxy-connection",
        b"keep-alive",
        b"te",
        b"trailer",
        b"upgrade",
        b"proxy-authorization",
        b"proxy-authenticate",
        b"proxy-authentication-info",
    }
)
_HOP_LENGTHS = frozenset(len(name) for name in HOP_BY_HOP)


def _end_to_end(headers: Headers, named: frozenset[bytes], also: bytes = b"") -> list[bytes]:
    """Header lines without the hop-by-hop ones, those named by Connection and `also`.

    Names are compared by length first: most headers then cost no `lower()`.
    """
    dropped = HOP_BY_HOP | named if named else HOP_BY_HOP
    lengths = _HOP_LENGTHS | {len(name) for name in named} if named else _HOP_LENGTHS
    also_length = len(also)
    lines: list[bytes] = []
    for name, value in headers:
        size = len(name)
        if size in lengths or size == also_length:
            lowered = name.lower()
            if lowered in dropped or lowered == also:
                continue
        lines += (name, b": ", value, b"\r\n")
    return lines


def split_authority(authority: bytes, default_port: int | None) -> tuple[str, int]:
    """'host', 'host:port' or '[v6]:port' into (host, port); ProtocolError(400) if malformed."""
    if authority.startswith(b"["):
        host, sep, rest = authority[1:].partition(b"]")
        if not sep or (rest and not rest.startswith(b":")):
            raise ProtocolError("malformed IPv6 authority", 400)
        port_text = rest[1:]
    else:
        host, _, port_text = authority.partition(b":")
    if port_text:
        if not port_text.isdigit() or not 0 < int(port_text) < 65536:
            raise ProtocolError("invalid port in request target", 400)
        port = int(port_text)
    elif default_port is None:
        raise ProtocolError("CONNECT target needs a port", 400)
    else:
        port = default_port
    if not host or b"@" in host or any(c <= 32 or c >= 127 for c in host):
        raise ProtocolError("invalid host in request target", 400)
    return host.decode("ascii"), port


def split_absolute(target: bytes) -> tuple[bytes, bytes]:
    """An absolute-form http:// (or ws://, as WebSocket clients send it) target into (authority, path)."""
    lowered = target[:7].lower()
    if lowered == b"http://":
        rest = target[7:]
    elif lowered[:5] == b"ws://":
        rest = target[5:]
    elif target.startswith(b"/"):
        raise ProtocolError("origin-form request: this is a proxy, send absolute URLs", 400)
    else:
        raise ProtocolError("only http:// and ws:// targets are proxied (use CONNECT for https)", 400)
    cut = len(rest)
    for stop in (b"/", b"?", b"#"):
        index = rest.find(stop)
        if 0 <= index < cut:
            cut = index
    authority, path = rest[:cut], rest[cut:]
    if b"#" in path:
        path = path[: path.find(b"#")]
    if not path.startswith(b"/"):
        path = b"/" + path
    return authority, path


def request_for_origin(head: RequestHead, authority: bytes, path: bytes, close: bool, via: bool) -> bytes:
    """The request head to send upstream: origin-form, own Host, hop-by-hop removed."""
    version = b"1.0" if head.version == "1.0" else b"1.1"
    lines = [head.method, b" ", path, b" HTTP/", version, b"\r\nHost: ", authority, b"\r\n"]
    lines += _end_to_end(head.headers, head.connection, also=b"host")
    if head.upgrade:
        lines += (b"Connection: upgrade\r\nUpgrade: ", _upgrade_value(head.headers), b"\r\n")
    elif close:
        lines.append(b"Connection: close\r\n")
    if via:
        lines.append(b"Via: " + version + b" lanner\r\n")
    lines.append(b"\r\n")
    return b"".join(lines)


def response_for_client(head: ResponseHead, close: bool, client_version: str, via: bool) -> bytes:
    """The response head to send the client: our version, hop-by-hop removed."""
    reason = head.reason or _reason(head.status).encode()
    lines = [b"HTTP/1.1 ", str(head.status).encode(), b" ", reason, b"\r\n"]
    lines += _end_to_end(head.headers, head.connection)
    if head.status == 101:
        lines += (b"Connection: upgrade\r\nUpgrade: ", _upgrade_value(head.headers), b"\r\n")
    elif close:
        lines.append(b"Connection: close\r\n")
    elif client_version == "1.0":
        lines.append(b"Connection: keep-alive\r\n")
    if via:
        lines.append(b"Via: 1.1 lanner\r\n")
    lines.append(b"\r\n")
    return b"".join(lines)


def error_response(status: int, detail: str, extra: Headers = ()) -> bytes:  # type: ignore[assignment]
    body = f"{status} {_reason(status)}: {detail}\n".encode()
    head = [
        f"HTTP/1.1 {status} {_reason(status)}\r\n".encode(),
        b"Content-Type: text/plain; charset=utf-8\r\n",
        b"Content-Length: " + str(len(body)).encode() + b"\r\n",
        b"Connection: close\r\n",
    ]
    head += [name + b": " + value + b"\r\n" for name, value in extra]
    return b"".join(head) + b"\r\n" + body


def _upgrade_value(headers: Headers) -> bytes:
    return b", ".join(value for name, value in headers if name.lower() == b"upgrade")


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Unknown"
