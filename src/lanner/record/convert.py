"""From what an analyzer saw to what a store keeps: `Exchange` -> `FlowRecord`.

Runs on the recorder's writer thread, never on the event loop: header bytes
are decoded here (UTF-8, undecodable bytes escaped), and the URL is split here.
"""

from __future__ import annotations

from dataclasses import dataclass

from lanner.record.model import Body, FlowRecord, Headers
from lanner.wire.http1 import Headers as WireHeaders
from lanner.wire.http_exchange import BodyCapture, Exchange


@dataclass(slots=True, frozen=True)
class Origin:
    """Where a connection's exchanges went, and who sent them (one per connection)."""

    conn_uid: str
    listener: str
    client: str
    user: str | None
    scheme: str = "http"
    host: str = ""  # the fixed target of a tcp listener; "" when requests name their host
    port: int = 0


def text(raw: bytes) -> str:
    return raw.decode("utf-8", "backslashreplace")


def headers(raw: WireHeaders) -> Headers:
    return [(text(name), text(value)) for name, value in raw]


def body(capture: BodyCapture) -> Body:
    if not capture.size:
        return Body()
    return Body(capture.data(), capture.size, capture.truncated, len(capture.head))


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


def flow(exchange: Exchange, origin: Origin) -> FlowRecord:
    request = exchange.request
    request_headers = headers(request.headers)
    host_header = next((value for name, value in request_headers if name.lower() == "host"), None)
    scheme, host, port, path = split_target(text(request.target), origin, host_header)
    record = FlowRecord(
        conn_uid=origin.conn_uid,
        proto=scheme,
        started=exchange.started,
        method=text(request.method),
        scheme=scheme,
        host=host,
        port=port,
        path=path,
        http_version=request.version,
        request_headers=request_headers,
        request_trailers=headers(exchange.request_trailers),
        request_body=body(exchange.request_body),
        request_ended=exchange.request_ended,
        interim=list(exchange.interim),
        response_started=exchange.response_started,
        response_ended=exchange.response_ended,
        error=exchange.error,
        listener=origin.listener,
        client=origin.client,
        user=origin.user,
    )
    response = exchange.response
    if response is not None:
        record.status = response.status
        record.reason = text(response.reason)
        record.response_headers = headers(response.headers)
        record.response_trailers = headers(exchange.response_trailers)
        record.response_body = body(exchange.response_body)
    if exchange.upgraded:
        record.notes["upgraded"] = "tunnel" if request.method == b"CONNECT" else "101"
    return record
