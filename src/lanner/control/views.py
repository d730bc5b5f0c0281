"""Flows and connections as the admin API shows them: plain dicts in the shapes of `control.schemas`.

Pure functions of stored records; they never touch the store, a socket or the loop.
"""

from __future__ import annotations

import json
import time
from typing import Any

from lanner.net.conn import Conn
from lanner.record import bodies
from lanner.record.model import Body, ConnectionRecord, FlowRecord, Headers, header

TEXT_SHOWN = 1024 * 1024  # decoded body text sent in a flow's detail; the raw body link has it whole


def summary(record: FlowRecord) -> dict[str, Any]:
    duration = record.duration
    return {
        "id": record.id,
        "conn_uid": record.conn_uid,
        "proto": record.proto,
        "started": record.started,
        "method": record.method,
        "url": record.url,
        "host": record.host,
        "port": record.port,
        "path": record.path,
        "status": record.status,
        "reason": record.reason,
        "error": record.error,
        "duration_ms": None if duration is None else round(duration * 1000.0, 3),
        "request_size": record.request_body.size,
        "response_size": record.response_body.size,
        "content_type": header(record.response_headers, "content-type"),
        "listener": record.listener,
        "client": record.client,
        "user": record.user,
        "command": record.command,
        "category": record.category,
        "rows": record.rows,
        "sqlstate": record.sqlstate,
    }


def detail(
    record: FlowRecord, connection: ConnectionRecord | None, messages: list[FlowRecord]
) -> dict[str, Any]:
    return {
        **summary(record),
        "scheme": record.scheme,
        "http_version": record.http_version,
        "interim": record.interim,
        "notes": record.notes,
        "keys": record.keys,
        "statement": record.statement,
        "fingerprint": record.fingerprint,
        "timings": {
            "started": record.started,
            "request_ended": record.request_ended,
            "response_started": record.response_started,
            "response_ended": record.response_ended,
        },
        "request": _message(record, "request", record.request_headers, record.request_trailers),
        "response": _message(record, "response", record.response_headers, record.response_trailers),
        "connection": stored_connection(connection) if connection is not None else None,
        "messages": [summary(message) for message in messages],
    }


def _message(record: FlowRecord, side: str, headers: Headers, trailers: Headers) -> dict[str, Any]:
    body: Body = record.request_body if side == "request" else record.response_body
    return {"headers": headers, "trailers": trailers, "body": body_view(record, side, headers, body)}


def body_view(record: FlowRecord, side: str, headers: Headers, body: Body) -> dict[str, Any]:
    content_type = header(headers, "content-type")
    decoded, error = bodies.readable(record, side)
    text: str | None
    try:
        text = decoded[:TEXT_SHOWN].decode("utf-8")
    except UnicodeDecodeError:
        text = decoded[:TEXT_SHOWN].decode("utf-8", "replace") if bodies.is_text(content_type) else None
    if text is not None and content_type and "json" in content_type.lower() and not body.truncated:
        try:
            text = json.dumps(json.loads(text), indent=2, ensure_ascii=False)
        except ValueError:
            pass  # shown as sent
    return {
        "size": body.size,
        "stored": len(body.data),
        "truncated": body.truncated,
        "text": text,
        "binary": text is None,
        "content_type": content_type,
        "decode_error": error,
    }


def stored_connection(connection: ConnectionRecord) -> dict[str, Any]:
    return {
        "uid": connection.uid,
        "listener": connection.listener,
        "client": connection.client,
        "protocol": connection.protocol,
        "user": connection.user,
        "dest": connection.dest,
        "sni": connection.sni,
        "up": connection.up,
        "down": connection.down,
        "requests": connection.requests,
        "started": connection.started,
        "ended": connection.ended,
        "outcome": connection.outcome,
        "detail": connection.detail,
        "worker": connection.worker,
    }


def live_connection(conn: Conn, now: float | None = None) -> dict[str, Any]:
    """An open connection as the API lists it (a snapshot: its counters keep moving)."""
    now = time.monotonic() if now is None else now
    return {
        "uid": conn.uid,
        "listener": conn.listener.name,
        "client": conn.client_text,
        "protocol": conn.protocol,
        "user": conn.user,
        "dest": conn.dest,
        "sni": conn.sni,
        "up": conn.up,
        "down": conn.down,
        "requests": conn.requests,
        "started": time.time() - (now - conn.started),
        "age": round(now - conn.started, 3),
        "idle": round(conn.idle_for(now), 3),
        "in_handshake": conn.in_handshake,
        "worker": conn.listener.services.worker,
    }
