"""From what an analyzer saw to what a store keeps: `Exchange` -> `Packed` -> `FlowRecord`.

`pack` runs in the proxy process on the recorder's feeder thread: it only
gathers what an Exchange holds into plain tuples (cheap to pickle). `flow`
runs in the writer process: header bytes are decoded there (UTF-8,
undecodable bytes escaped), and the URL is split there. Neither runs on the
event loop.
"""

from __future__ import annotations

from itertools import chain
from typing import Any, NamedTuple

from lanner.record.model import Body, FlowRecord, Headers
from lanner.wire.http1 import Headers as WireHeaders
from lanner.wire.http_exchange import BodyCapture, Exchange


class Origin(NamedTuple):
    """Where a connection's exchanges went, and who sent them (one per connection)."""

    conn_uid: str
    listener: str
    client: str
    user: str | None
    scheme: str = "http"
    host: str = ""  # the fixed target of a tcp listener; "" when requests name their host
    port: int = 0


PackedBody = tuple[bytes, int, bool, int] | None
# A header list as (count, b"name\x00value\x00name\x00value"), a NUL inside a header escaped:
# one object to pickle instead of a tuple and two bytes per header.
PackedHeaders = tuple[int, bytes]
# An exchange as plain tuples, bytes and numbers: cheap to pickle to the writer process.
Packed = tuple[
    Origin, bytes, bytes, str, PackedHeaders, PackedHeaders, PackedBody, float, float | None, list[int],
    int | None, bytes, PackedHeaders, PackedHeaders, PackedBody, float | None, float | None, str | None, bool,
]  # fmt: skip


def pack(exchange: Exchange, origin: Origin) -> Packed:
    """Runs in the proxy process (off the loop): an Exchange as a Packed tuple."""
    request, response = exchange.request, exchange.response
    return (
        origin, request.method, request.target, request.version, _pack_headers(request.headers),
        _pack_headers(exchange.request_trailers), _pack_body(exchange.request_body), exchange.started,
        exchange.request_ended, exchange.interim,
        response.status if response is not None else None, response.reason if response is not None else b"",
        _pack_headers(response.headers if response is not None else []),
        _pack_headers(exchange.response_trailers),
        _pack_body(exchange.response_body), exchange.response_started, exchange.response_ended,
        exchange.error, exchange.upgraded,
    )  # fmt: skip


def _pack_headers(raw: WireHeaders) -> PackedHeaders:
    if not raw:
        return (0, b"")
    joined = b"\x00".join(chain.from_iterable(raw))
    if joined.count(b"\x00") != 2 * len(raw) - 1:  # a NUL inside a header: escape it, keep the pairs
        joined = b"\x00".join(part.replace(b"\x00", b"\\x00") for part in chain.from_iterable(raw))
    return (len(raw), joined)


def _pack_body(capture: BodyCapture) -> PackedBody:
    if not capture.size:
        return None
    return (capture.data(), capture.size, capture.truncated, len(capture.head))


def text(raw: bytes) -> str:
    return raw.decode("utf-8", "backslashreplace")


def headers(packed: PackedHeaders) -> Headers:
    count, joined = packed
    if not count:
        return []
    flat = joined.decode("utf-8", "backslashreplace").split("\x00")  # one decode for the whole list
    if len(flat) != 2 * count:
        raise ValueError(f"packed headers: {len(flat)} parts for {count} headers")
    return list(zip(flat[::2], flat[1::2], strict=True))


def body(packed: PackedBody) -> Body:
    return Body() if packed is None else Body(*packed)


def split_target(target: str, origin: Origin, host_header: str | None) -> tuple[str, str, int, str]:
    """(scheme, host, port, path) from an absolute-form or origin-form request target."""
    scheme = origin.scheme
    if "://" in target:
        scheme, _, rest = target.partition("://")
        authority, slash, path = rest.partition("/")
        path = slash + path if slash else "/"
        scheme = scheme.lower()
    elif host_header:
        authority, path = host_header, target
    else:  # origin-form without Host (HTTP/1.0): where the listener sent it
        return scheme, origin.host, origin.port or 80, target
    host, port = _split_authority(authority, 443 if scheme == "https" else 80)
    return scheme, host, port, path


def _split_authority(authority: str, default_port: int) -> tuple[str, int]:
    authority = authority.rpartition("@")[2]
    if authority.startswith("["):
        host, _, rest = authority[1:].partition("]")
        port_text = rest[1:] if rest.startswith(":") else ""
    else:
        host, _, port_text = authority.partition(":")
    return host.lower(), int(port_text) if port_text.isdigit() else default_port


class WsItem(NamedTuple):
    """One WebSocket message as queued for the writer (already plain data: nothing to pack)."""

    origin: Origin
    target: bytes  # the upgrade request's target and Host: where the messages went
    host_header: bytes | None
    from_client: bool
    opcode: int
    data: bytes
    size: int
    compressed: bool
    truncated: bool
    time: float
    close_code: int | None
    close_reason: str


class DbItem(NamedTuple):
    """A Redis or PostgreSQL analyzer event as queued for the writer (plain, picklable data)."""

    origin: Origin
    event: Any  # a wire.resp or wire.postgres event
    database: str | None = None  # PostgreSQL: the session's database
    cancels: str | None = None  # a CancelRequest: the uid of the connection whose session it cancels


WS_OPCODES = {0: "CONT", 1: "TEXT", 2: "BINARY", 8: "CLOSE", 9: "PING", 10: "PONG"}


def ws_flow(item: WsItem) -> FlowRecord:
    """Runs in the writer: a WebSocket message as a flow (proto websocket) on its connection.

    The payload is the request body of a message the client sent and the
    response body of one the server sent; `reason` (a column every listing
    has) and `notes` say which: "send" or "receive".
    """
    host_header = text(item.host_header) if item.host_header is not None else None
    scheme, host, port, path = split_target(text(item.target), item.origin, host_header)
    payload = Body(item.data, item.size, item.truncated, len(item.data))
    origin = item.origin
    record = FlowRecord(
        conn_uid=origin.conn_uid,
        proto="websocket",
        started=item.time,
        method=WS_OPCODES.get(item.opcode, str(item.opcode)),
        scheme="wss" if scheme == "https" else "ws",
        host=host,
        port=port,
        path=path,
        request_ended=item.time,
        listener=origin.listener,
        client=origin.client,
        user=origin.user,
    )
    record.notes["direction"] = record.reason = "send" if item.from_client else "receive"
    if item.from_client:
        record.request_body = payload
    else:
        record.response_body = payload
    if item.compressed:
        record.notes["compressed"] = "permessage-deflate"
    if item.close_code is not None:
        record.notes["close"] = f"{item.close_code} {item.close_reason}".strip()
    return record


def flow(packed: Packed) -> FlowRecord:
    """Runs in the writer: a Packed exchange as the FlowRecord the store keeps."""
    (
        origin, method, target, version, raw_request_headers, request_trailers, request_body, started,
        request_ended, interim, status, reason, raw_response_headers, response_trailers, response_body,
        response_started, response_ended, error, upgraded,
    ) = packed  # fmt: skip
    request_headers = headers(raw_request_headers)
    host_header = next((value for name, value in request_headers if name.lower() == "host"), None)
    scheme, host, port, path = split_target(text(target), origin, host_header)
    record = FlowRecord(
        conn_uid=origin.conn_uid,
        proto=scheme,
        started=started,
        method=text(method),
        scheme=scheme,
        host=host,
        port=port,
        path=path,
        http_version=version,
        request_headers=request_headers,
        request_trailers=headers(request_trailers),
        request_body=body(request_body),
        request_ended=request_ended,
        interim=list(interim),
        response_started=response_started,
        response_ended=response_ended,
        error=error,
        listener=origin.listener,
        client=origin.client,
        user=origin.user,
    )
    if status is not None:
        record.status = status
        record.reason = text(reason)
        record.response_headers = headers(raw_response_headers)
        record.response_trailers = headers(response_trailers)
        record.response_body = body(response_body)
    if upgraded:
        record.notes["upgraded"] = "tunnel" if method == b"CONNECT" else "101"
    return record
