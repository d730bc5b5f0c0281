"""The running gateway over HTTP: listeners, live connections, config, reload, upstreams.

Everything here reads the gateway's own objects on the event loop (no copies
kept, no locks: the loop is the only writer), so an answer is a snapshot of
this process. With `--workers N` the admin API runs in worker 0: listeners,
connections and upstreams are that worker's (each worker has its own
connections and health checks); flows and /metrics cover every worker.
"""

from __future__ import annotations

import asyncio
import os
import re
import time
from collections.abc import Iterator
from typing import Any, Protocol

from fastapi import APIRouter

from lanner.config.model import Config
from lanner.control import views
from lanner.control.errors import ApiError
from lanner.control.schemas import Closed, ConnectionView, Drained, ListenerView, ReloadView, Upstreams
from lanner.errors import Outcome
from lanner.net.conn import Conn
from lanner.net.listener import ListenerRuntime, Services
from lanner.workers import RELOAD_OTHERS

# A key naming any of these (in any case, as any part of it) holds a secret: `password`,
# `session_secret`, `token`, a header rule's `Authorization` or `X-Api-Key`, ...
SECRET_WORDS = (
    "password",
    "passwd",
    "secret",
    "token",
    "authorization",
    "cookie",
    "api_key",
    "api-key",
    "apikey",
    "credential",
    "private",
)
MASK = "********"
_URL_PASSWORD = re.compile(r"(?P<head>[a-z][a-z0-9+.-]*://[^:/@\s]*:)[^@/\s]+@", re.IGNORECASE)
_QUERY_SECRET = re.compile(
    r"(?P<head>[?&](?:password|passwd|pwd|secret|token|api_key|apikey)=)[^&#\s]+", re.IGNORECASE
)


class ReloadOutcome(Protocol):  # lanner.reload.ReloadResult (frozen: read-only members)
    @property
    def ok(self) -> bool: ...
    @property
    def errors(self) -> list[str]: ...
    @property
    def changed(self) -> list[str]: ...
    @property
    def needs_restart(self) -> list[str]: ...


class Target(Protocol):
    """What the control plane needs of a gateway (`lanner.app.Gateway`)."""

    config: Config
    listeners: list[ListenerRuntime]
    services: Services
    stopping: asyncio.Event

    def reload(self, source: str = "signal") -> ReloadOutcome: ...

    def connections(self) -> Iterator[Conn]: ...


def routes(gateway: Target) -> APIRouter:
    router = APIRouter(prefix="/api/v1", tags=["gateway"])
    # Under --workers this process was forked by the supervisor: its parent now.
    supervisor = os.getppid() if gateway.services.worker is not None else None

    @router.get("/listeners", response_model=list[ListenerView], summary="Bound listeners of this process")
    async def listeners() -> list[dict[str, Any]]:
        return [_listener(runtime) for runtime in gateway.listeners]

    @router.get("/connections", response_model=list[ConnectionView], summary="Open client connections")
    async def connections() -> list[dict[str, Any]]:
        now = time.monotonic()
        return [views.live_connection(conn, now) for conn in gateway.connections()]

    @router.delete("/connections/{uid}", response_model=Closed, summary="Close an open connection now")
    async def close(uid: str) -> dict[str, str]:
        for conn in gateway.connections():
            if conn.uid == uid:
                conn.abort(Outcome.CLOSED_BY_ADMIN, "closed through the admin API")
                return {"closed": uid}
        raise ApiError(404, "not_found", f"no open connection {uid[:80]!r} in this process")

    @router.get("/config", summary="The running config (secrets masked)")
    async def config() -> dict[str, Any]:
        masked: dict[str, Any] = mask(gateway.config.model_dump(mode="json"))
        return masked

    @router.post("/config/reload", response_model=ReloadView, summary="Re-read the config file and apply it")
    async def reload() -> dict[str, Any]:
        result = gateway.reload("api")
        if not result.ok:
            raise ApiError(400, "invalid_config", "config not reloaded: " + "; ".join(result.errors))
        if supervisor is not None and os.getppid() == supervisor:  # never a stranger, if it died
            os.kill(supervisor, RELOAD_OTHERS)  # the supervisor passes SIGHUP to the other workers
        return {
            "ok": result.ok,
            "changed": list(result.changed),
            "needs_restart": list(result.needs_restart),
            "errors": list(result.errors),
        }

    @router.get("/upstreams", response_model=Upstreams, summary="Backend pools and upstream proxy vendors")
    async def upstreams() -> dict[str, Any]:
        pools = gateway.services.upstreams
        vendors = gateway.services.vendors
        return {
            "pools": pools.describe() if pools is not None else [],
            "providers": vendors.describe() if vendors is not None else [],
        }

    @router.post(
        "/upstreams/{pool}/{address}/drain", response_model=Drained, summary="Send a backend no new requests"
    )
    async def drain(pool: str, address: str) -> dict[str, Any]:
        return _drain(gateway, pool, address, True)

    @router.post("/upstreams/{pool}/{address}/undrain", response_model=Drained, summary="Undo a drain")
    async def undrain(pool: str, address: str) -> dict[str, Any]:
        return _drain(gateway, pool, address, False)

    return router


def _drain(gateway: Target, pool: str, address: str, on: bool) -> dict[str, Any]:
    upstreams = gateway.services.upstreams
    if upstreams is None or not upstreams.drain(pool, address, on):
        raise ApiError(404, "not_found", f"no backend {address[:80]!r} in pool {pool[:80]!r}")
    return {"pool": pool, "address": address, "drained": on}


def _listener(runtime: ListenerRuntime) -> dict[str, Any]:
    return {
        "name": runtime.name,
        "type": runtime.config.type,
        "bind": runtime.config.bind,
        "addresses": [
            f"[{host}]:{port}" if ":" in host else f"{host}:{port}" for host, port in runtime.addresses()
        ],
        "open": len(runtime.live),
        "refused": runtime.refused,
        "analyze": runtime.analyze,
        "max_connections": runtime.limits.max_connections,
    }


def mask(value: Any, key: str = "") -> Any:
    """The config with secrets replaced: secret-named keys, and passwords inside URLs."""
    if isinstance(value, dict):
        return {name: mask(item, name) for name, item in value.items()}
    if isinstance(value, list):
        return [mask(item, key) for item in value]
    if value and any(word in key.lower() for word in SECRET_WORDS):
        return MASK
    if isinstance(value, str):
        value = _URL_PASSWORD.sub(lambda match: f"{match['head']}{MASK}@", value)
        return _QUERY_SECRET.sub(lambda match: f"{match['head']}{MASK}", value)
    return value
