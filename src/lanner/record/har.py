"""HAR 1.2 export and import (http://www.softwareishard.com/blog/har-12-spec/).

Export writes one entry at a time, so exporting a million flows needs the
memory of one. Response `content.text` holds the decoded body, as HAR readers
(Chromium DevTools, mitmproxy, Charles) expect; what only lanner knows (the
body as it crossed the wire when that differs, exact timestamps, truncation,
connection, listener, errors, notes) goes under `_lanner`, the HAR custom-field
prefix, so a lanner -> HAR -> lanner round trip gives back the same flows.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from typing import IO, Any
from urllib.parse import parse_qsl, urlsplit

from lanner import __version__
from lanner.record import bodies
from lanner.record.convert import WS_OPCODES
from lanner.record.model import Body, FlowRecord, Headers, header

WEBSOCKET = "websocket"  # the proto of a WebSocket message's flow
_OPCODE_NUMBERS = {name: number for number, name in WS_OPCODES.items()}


class HarError(ValueError):
    """A file that is not HAR, or an entry lanner cannot read; names where."""


Messages = Callable[[FlowRecord], list[FlowRecord]]


NOT_HTTP = (WEBSOCKET, "redis", "postgres")


def write_har(out: IO[str], flows: Iterable[FlowRecord], messages: Messages | None = None) -> int:
    """Stream a HAR log of `flows` (whole records, with bodies) to `out`; the number of entries.

    Redis and PostgreSQL flows are not HTTP and are left out. WebSocket
    messages are not entries of their own: `messages(upgrade)` gives
    those of an upgrade's connection, written under its entry in the de-facto
    `_webSocketMessages` field (as Chromium DevTools exports them).
    """
    creator = json.dumps({"name": "lanner", "version": __version__})
    out.write(f'{{"log": {{"version": "1.2", "creator": {creator}, "pages": [], "entries": [\n')
    count = 0
    for record in flows:
        if record.proto in NOT_HTTP:
            continue
        item = entry(record)
        if messages is not None and record.notes.get("upgraded") == "101":
            item["_webSocketMessages"] = [ws_message(message) for message in messages(record)]
        if count:
            out.write(",\n")
        out.write(json.dumps(item, ensure_ascii=False))
        count += 1
    out.write("\n]}}\n")
    return count


def entry(record: FlowRecord) -> dict[str, Any]:
    """One HAR entry for one flow."""
    request_text, request_raw = _content(record, "request")
    response_text, response_raw = _content(record, "response")
    request: dict[str, Any] = {
        "method": record.method,
        "url": record.url,
        "httpVersion": f"HTTP/{record.http_version}",
        "cookies": _cookies(record.request_headers, "cookie"),
        "headers": _pairs(record.request_headers),
        "queryString": [{"name": k, "value": v} for k, v in parse_qsl(urlsplit(record.url).query, True)],
        "headersSize": -1,
        "bodySize": record.request_body.size,
    }
    if record.request_body.size or record.request_body.data:
        request["postData"] = {
            "mimeType": header(record.request_headers, "content-type") or "",
            **request_text,
        }
    response = {
        "status": record.status if record.status is not None else 0,
        "statusText": record.reason,
        "httpVersion": f"HTTP/{record.http_version}",
        "cookies": _cookies(record.response_headers, "set-cookie"),
        "headers": _pairs(record.response_headers),
        "content": {
            "size": record.response_body.size,
            "mimeType": header(record.response_headers, "content-type") or "",
            **response_text,
        },
        "redirectURL": header(record.response_headers, "location") or "",
        "headersSize": -1,
        "bodySize": record.response_body.size if record.status is not None else -1,
    }
    send, wait, receive = _timings(record)
    duration = record.duration
    return {
        "startedDateTime": datetime.fromtimestamp(record.started, UTC).isoformat(timespec="milliseconds"),
        "time": round((duration or 0.0) * 1000.0, 3),
        "request": request,
        "response": response,
        "cache": {},
        "timings": {
            "blocked": -1,
            "dns": -1,
            "connect": -1,
            "ssl": -1,
            "send": send,
            "wait": wait,
            "receive": receive,
        },  # fmt: skip
        "connection": record.conn_uid,
        **({"comment": record.error} if record.error else {}),
        "_lanner": {
            "id": record.id,
            "conn": record.conn_uid,
            "proto": record.proto,
            "listener": record.listener,
            "client": record.client,
            "user": record.user,
            "error": record.error,
            "notes": record.notes,
            "interim": record.interim,
            "times": [record.started, record.request_ended, record.response_started, record.response_ended],
            "request": _raw(record.request_body, record.request_trailers, request_raw),
            "response": _raw(record.response_body, record.response_trailers, response_raw),
        },
    }


def ws_message(record: FlowRecord) -> dict[str, Any]:
    """One `_webSocketMessages` item: type, time (epoch seconds), opcode, data (base64 if binary)."""
    sent = record.notes.get("direction") == "send"
    body = record.request_body if sent else record.response_body
    opcode = _OPCODE_NUMBERS.get(record.method, 0)
    item: dict[str, Any] = {"type": "send" if sent else "receive", "time": record.started, "opcode": opcode}
    try:
        item["data"] = body.data.decode("utf-8") if opcode != 2 else None
    except UnicodeDecodeError:
        item["data"] = None
    if item["data"] is None:
        item["data"] = base64.b64encode(body.data).decode("ascii")
        item["_encoding"] = "base64"
    extra = {key: value for key, value in record.notes.items() if key != "direction"}
    item["_lanner"] = {"size": body.size, "truncated": body.truncated, "notes": extra}
    return item


def _content(record: FlowRecord, side: str) -> tuple[dict[str, str], bool]:
    """HAR `text` (+ `encoding`) for a body, and whether the wire bytes differ from it."""
    body = record.request_body if side == "request" else record.response_body
    if not body.data:
        return {"text": ""}, False
    decoded, error = bodies.readable(record, side)
    differs = error is None and decoded != body.data
    data = decoded if error is None else body.data
    try:
        return {"text": data.decode("utf-8")}, differs
    except UnicodeDecodeError:
        return {"text": base64.b64encode(data).decode("ascii"), "encoding": "base64"}, differs


def _raw(body: Body, trailers: Headers, differs: bool) -> dict[str, Any]:
    raw: dict[str, Any] = {"size": body.size, "truncated": body.truncated, "head": body.head_len}
    if trailers:
        raw["trailers"] = _pairs(trailers)
    if differs:  # content-encoded on the wire: keep those bytes too
        raw["wire"] = base64.b64encode(body.data).decode("ascii")
    return raw


def _pairs(headers: Headers) -> list[dict[str, str]]:
    return [{"name": name, "value": value} for name, value in headers]


def _cookies(headers: Headers, name: str) -> list[dict[str, str]]:
    cookies = []
    for key, value in headers:
        if key.lower() != name:
            continue
        pieces = [value.split(";", 1)[0]] if name == "set-cookie" else value.split(";")
        for piece in pieces:
            cookie_name, sep, cookie_value = piece.strip().partition("=")
            if sep:
                cookies.append({"name": cookie_name, "value": cookie_value})
    return cookies


def _timings(record: FlowRecord) -> tuple[float, float, float]:
    def span(start: float | None, end: float | None) -> float:
        return round(max(0.0, (end - start) * 1000.0), 3) if start is not None and end is not None else 0.0

    return (
        span(record.started, record.request_ended),
        span(record.request_ended, record.response_started),
        span(record.response_started, record.response_ended),
    )


# --- import ---------------------------------------------------------------------------


def read_har(source: IO[str]) -> Iterator[FlowRecord]:
    """The flows of a HAR file (from lanner or any other tool); raises HarError on a malformed one."""
    try:
        document = json.load(source)
    except json.JSONDecodeError as exc:
        raise HarError(f"not JSON: {exc}") from exc
    log = document.get("log") if isinstance(document, dict) else None
    if not isinstance(log, dict) or not isinstance(log.get("entries"), list):
        raise HarError("not a HAR file: no log.entries")
    for index, item in enumerate(log["entries"]):
        try:
            upgrade = _flow(item)
            yield upgrade
            for message in item.get("_webSocketMessages") or []:
                yield _ws_flow(message, upgrade)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise HarError(f"log.entries[{index}]: {type(exc).__name__}: {exc}") from exc


def _flow(item: dict[str, Any]) -> FlowRecord:
    request, response = item["request"], item["response"]
    extra = item.get("_lanner") or {}
    url = urlsplit(request["url"])
    scheme = url.scheme or "http"
    started = datetime.fromisoformat(item["startedDateTime"].replace("Z", "+00:00")).timestamp()
    times = extra.get("times")
    if times:
        started, request_ended, response_started, response_ended = times
    else:
        timings = item.get("timings") or {}
        send, wait = max(timings.get("send", 0), 0) / 1000.0, max(timings.get("wait", 0), 0) / 1000.0
        request_ended = started + send
        response_started = request_ended + wait
        response_ended = started + float(item.get("time", 0)) / 1000.0
    status = int(response.get("status", 0)) or None
    record = FlowRecord(
        conn_uid=str(extra.get("conn") or item.get("connection") or "har"),
        proto=str(extra.get("proto") or scheme),
        started=started,
        method=request["method"],
        scheme=scheme,
        host=url.hostname or "",
        port=url.port or (443 if scheme == "https" else 80),
        path=(url.path or "/") + (f"?{url.query}" if url.query else ""),
        http_version=str(request.get("httpVersion", "HTTP/1.1")).upper().removeprefix("HTTP/") or "1.1",
        request_headers=_headers(request.get("headers", [])),
        request_ended=request_ended,
        status=status,
        reason=str(response.get("statusText", "")),
        response_headers=_headers(response.get("headers", [])) if status else [],
        response_started=response_started if status else None,
        response_ended=response_ended if status else None,
        error=extra.get("error") or (None if status else str(item.get("comment") or "no response")),
        listener=str(extra.get("listener") or "har"),
        client=str(extra.get("client") or ""),
        user=extra.get("user"),
        notes=dict(extra.get("notes") or {}),
        interim=list(extra.get("interim") or []),
    )
    record.request_body = _body(request.get("postData") or {}, extra.get("request"))
    record.response_body = _body(response.get("content") or {}, extra.get("response"))
    record.request_trailers = _headers((extra.get("request") or {}).get("trailers", []))
    record.response_trailers = _headers((extra.get("response") or {}).get("trailers", []))
    if not extra and header(record.response_headers, "content-encoding") and record.response_body.data:
        record.notes["response_body"] = "decoded by the HAR producer"
    return record


def _ws_flow(item: dict[str, Any], upgrade: FlowRecord) -> FlowRecord:
    opcode = int(item.get("opcode", 1))
    raw = str(item.get("data", ""))
    binary = item.get("_encoding") == "base64" or (
        opcode == 2 and "_encoding" not in item and "_lanner" not in item
    )
    data = base64.b64decode(raw) if binary else raw.encode("utf-8")
    extra = item.get("_lanner") or {}
    body = Body(data, int(extra.get("size", len(data))), bool(extra.get("truncated", False)), len(data))
    sent = item.get("type") == "send"
    record = FlowRecord(
        conn_uid=upgrade.conn_uid,
        proto=WEBSOCKET,
        started=float(item.get("time", upgrade.started)),
        method=WS_OPCODES.get(opcode, str(opcode)),
        scheme="wss" if upgrade.scheme in ("https", "wss") else "ws",
        host=upgrade.host,
        port=upgrade.port,
        path=upgrade.path,
        listener=upgrade.listener,
        client=upgrade.client,
        user=upgrade.user,
        reason="send" if sent else "receive",
        notes={"direction": "send" if sent else "receive", **dict(extra.get("notes") or {})},
    )
    record.request_ended = record.started
    if sent:
        record.request_body = body
    else:
        record.response_body = body
    return record


def _headers(pairs: list[dict[str, str]]) -> Headers:
    return [(str(pair["name"]), str(pair["value"])) for pair in pairs]


def _body(content: dict[str, Any], raw: dict[str, Any] | None) -> Body:
    if raw and "wire" in raw:
        data = base64.b64decode(raw["wire"])
    elif content.get("encoding") == "base64":
        data = base64.b64decode(content.get("text", ""))
    else:
        data = str(content.get("text", "")).encode("utf-8")
    if raw:
        return Body(data, int(raw["size"]), bool(raw["truncated"]), int(raw["head"]))
    return Body(data, len(data))
