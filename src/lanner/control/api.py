"""The control plane's ASGI app: the admin API, /health, /ready, /metrics, the live stream, the web UI.

`build` assembles it from the route modules; this module owns what every
request goes through: its request id (echoed as X-Request-Id, written to the
audit log and to error bodies), the access check of `control.access`, and the
audit line of a state-changing call.
"""

from __future__ import annotations

import asyncio
import os
import re
import uuid
from collections.abc import Awaitable, Callable
from importlib import resources
from typing import Any

from fastapi import FastAPI, Request, Response, WebSocket
from fastapi.responses import JSONResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles

from lanner import __version__
from lanner.control import api_flows, api_runtime, errors
from lanner.control.access import CHANGES, Access
from lanner.control.errors import ApiError, error_response
from lanner.control.schemas import Health, Ready
from lanner.control.store_reads import StoreReader
from lanner.control.stream import StreamHub
from lanner.record.filter import FilterError, parse_optional

PUBLIC = ("/health", "/ready", "/ui")
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")


def build(gateway: api_runtime.Target, reader: StoreReader | None, hub: StreamHub) -> FastAPI:
    admin = gateway.config.admin
    access = Access(admin.token, gateway.config.audit_path)
    app = FastAPI(
        title="lanner admin API",
        version=__version__,
        openapi_url="/api/v1/openapi.json",
        docs_url=None,  # FastAPI's page loads Swagger UI from a CDN: never on the admin origin
        redoc_url=None,
        responses=errors.ERROR_RESPONSES,
    )
    errors.install(app)
    app.middleware("http")(_gatekeeper(access))
    app.include_router(_probes(gateway))
    if reader is not None:
        app.include_router(api_flows.routes(reader, admin.page_max))
    app.include_router(api_runtime.routes(gateway))
    _stream(app, access, hub)
    if admin.ui:
        ui = resources.files("lanner.control") / "ui"
        app.mount("/ui", StaticFiles(directory=str(ui), html=True, check_dir=False), name="ui")

        @app.get("/", include_in_schema=False)
        async def home() -> RedirectResponse:
            return RedirectResponse("/ui/")

    return app


def _gatekeeper(
    access: Access,
) -> Callable[[Request, Callable[[Request], Awaitable[Response]]], Awaitable[Response]]:
    async def gate(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        offered = request.headers.get("x-request-id", "")
        request.state.request_id = offered if _REQUEST_ID.fullmatch(offered) else uuid.uuid4().hex[:16]
        path = request.url.path
        if path != "/" and not path.startswith(PUBLIC):
            try:
                access.check(request, request.method)
            except ApiError as exc:
                extra = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else {}
                response: Response = error_response(request, exc.status, exc.code, exc.message, **extra)
                response.headers["X-Request-Id"] = request.state.request_id
                return response
        try:
            response = await call_next(request)
        except Exception as exc:  # past every handler: still one JSON shape, still audited
            response = errors.crashed(request, exc)
        response.headers["X-Request-Id"] = request.state.request_id
        if request.method in CHANGES:
            await access.audit(request, request.method, response.status_code, request.state.request_id)
        return response

    return gate


def _probes(gateway: api_runtime.Target) -> Any:
    from fastapi import APIRouter

    router = APIRouter(tags=["probes"])

    @router.get("/health", response_model=Health, summary="The process is up")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @router.get(
        "/ready",
        response_model=Ready,
        summary="Listeners accepting and not shutting down (the store's state is shown, not required)",
        responses={503: {"model": Ready, "description": "not ready"}},
    )
    async def ready() -> JSONResponse:
        checks = readiness(gateway)
        # Recording is not proxying (DESIGN principle 5): the store's state is shown, never fatal.
        ok = all(passed for name, passed in checks.items() if name != "store")
        return JSONResponse({"ready": ok, "checks": checks}, status_code=200 if ok else 503)

    @router.get(
        "/metrics",
        summary="Prometheus metrics of every process of this lanner",
        response_class=Response,
        responses={200: {"content": {"text/plain": {}}}},
        tags=["metrics"],
    )
    async def metrics() -> Response:
        from lanner.control import metrics as registry

        registry.flush()  # this process's pending data-path counts, on the loop that counts them
        body, content_type = await asyncio.to_thread(registry.exposition)  # files of every process
        return Response(body, media_type=content_type)

    return router


def readiness(gateway: api_runtime.Target) -> dict[str, bool]:
    listeners = all(runtime.is_serving() for runtime in gateway.listeners)
    store = True
    if gateway.services.recorder is not None:
        store = _writable(os.path.abspath(gateway.config.store_path))
    return {
        "listeners": listeners,
        "config": True,
        "store": store,
        "accepting": not gateway.stopping.is_set(),
    }


def _writable(path: str) -> bool:
    """Whether `path` can be written, or created (the writer makes missing directories)."""
    while not os.path.exists(path):
        parent = os.path.dirname(path)
        if parent == path:
            return False
        path = parent
    return os.access(path, os.W_OK)


def _stream(app: FastAPI, access: Access, hub: StreamHub) -> None:
    @app.websocket("/api/v1/stream")
    async def stream(socket: WebSocket, filter: str = "") -> None:
        try:
            access.check(socket, "GET")
        except ApiError as exc:
            await socket.close(1008, exc.message[:120])
            return
        try:
            query = parse_optional(filter)
        except FilterError as exc:
            await socket.accept()
            await socket.send_json({"type": "error", "code": "bad_filter", "message": str(exc)})
            await socket.close(1008, "bad filter")
            return
        await socket.accept()
        await hub.serve(socket, query, filter)
