"""Who may call the admin API, and the audit log of what they changed.

With `admin.token` set, every call but /health, /ready and the UI's files
needs `Authorization: Bearer <token>` (the live stream also takes `?token=`,
which browsers' WebSocket API cannot send as a header). Without a token the API
listens on loopback only (the config refuses anything else), and requests whose
Host is not a loopback name are refused, so a web page the operator opens
cannot reach the API by DNS rebinding; state-changing calls carrying a foreign
Origin header are refused too (cross-site requests).

Every state-changing call (POST, PUT, PATCH, DELETE) is appended to the audit
log as one JSON line: when, who (client address and token fingerprint), what
(method, path), the answer's status and the request id.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import ipaddress
import json
import logging
import os
import time
from urllib.parse import urlsplit

from starlette.requests import HTTPConnection

from lanner.control.errors import ApiError

log = logging.getLogger("lanner.admin")

CHANGES = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class Access:
    def __init__(self, token: str | None, audit_path: str) -> None:
        self.token = token
        self.audit_path = audit_path
        self._lock = asyncio.Lock()

    def check(self, conn: HTTPConnection, method: str) -> None:
        """Raise ApiError unless this request may proceed."""
        if self.token is None:
            self._check_local(conn, method)
            return
        offered = _bearer(conn.headers.get("authorization"))
        if offered is None and conn.scope["type"] == "websocket":
            offered = conn.query_params.get("token")
        if offered is None or not hmac.compare_digest(offered.encode(), self.token.encode()):
            raise ApiError(401, "unauthorized", "a valid bearer token is required (Authorization: Bearer …)")

    def _check_local(self, conn: HTTPConnection, method: str) -> None:
        host = conn.headers.get("host", "")
        if not is_loopback_host(host):
            shown = host[:80]
            raise ApiError(
                403, "forbidden", f"Host {shown!r} is not a loopback name (set admin.token to use others)"
            )
        origin = conn.headers.get("origin")
        # A page of another origin (or an opaque one: "null") may send simple requests and open
        # WebSockets without a preflight; only the UI's own origin, or no browser at all, may.
        if (method in CHANGES or conn.scope["type"] == "websocket") and origin is not None:
            if origin == "null" or _netloc(origin) != host:
                raise ApiError(403, "forbidden", f"cross-origin request from {origin[:80]} refused")

    def who(self, conn: HTTPConnection) -> dict[str, str | None]:
        client = conn.client
        offered = _bearer(conn.headers.get("authorization"))
        return {
            "client": f"{client.host}:{client.port}" if client else None,
            # A fingerprint tells tokens apart in the log without writing them down.
            "token": hashlib.sha256(offered.encode()).hexdigest()[:12] if offered else None,
            "user_agent": conn.headers.get("user-agent"),
        }

    async def audit(self, conn: HTTPConnection, method: str, status: int, request_id: str) -> None:
        entry = {
            "time": round(time.time(), 3),
            **self.who(conn),
            "method": method,
            "path": conn.url.path,
            "query": conn.url.query or None,
            "status": status,
            "request_id": request_id,
        }
        line = json.dumps(entry) + "\n"
        async with self._lock:  # lines from concurrent calls never interleave
            try:
                await asyncio.to_thread(_append, self.audit_path, line)
            except OSError as exc:
                log.error(
                    "audit log not written", extra={"fields": {"path": self.audit_path, "error": str(exc)}}
                )
        log.info("admin change", extra={"fields": {k: v for k, v in entry.items() if k != "time"}})


def is_loopback_host(host: str) -> bool:
    """Whether a Host header names this machine by a loopback address or as `localhost`."""
    try:
        name = urlsplit(f"//{host}").hostname or ""
    except ValueError:
        return False
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:  # any other name: it could be rebound to 127.0.0.1 by its owner
        return False


def _netloc(url: str) -> str | None:
    try:
        return urlsplit(url).netloc
    except ValueError:
        return None


def _bearer(value: str | None) -> str | None:
    if not value:
        return None
    scheme, _, credentials = value.partition(" ")
    return credentials.strip() or None if scheme.lower() == "bearer" else None


def _append(path: str, line: str) -> None:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "a", encoding="utf-8") as out:
        out.write(line)
