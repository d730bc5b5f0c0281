"""Recorded traffic over HTTP: flow pages, one flow, raw bodies, HAR export, statistics.

The filter parameter is the CLI's filter language (`lanner.record.filter`);
pages are newest first and continue from an opaque cursor (the last id seen),
so a store of millions of flows is browsed a page at a time. Every store read
runs on the reader threads of `StoreReader`, never on the event loop.
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Iterator
from typing import IO, Annotated, Any, Literal

from fastapi import APIRouter, Query
from fastapi import Path as PathParam
from fastapi.responses import Response, StreamingResponse

from lanner.cli_flows_db import grouping
from lanner.control import views
from lanner.control.errors import ApiError
from lanner.control.schemas import Count, FlowDetail, FlowPage, Stats
from lanner.control.store_reads import StoreReader
from lanner.record.filter import Query as FilterQuery
from lanner.record.filter import parse_optional
from lanner.record.har import write_har
from lanner.record.model import FlowRecord, header
from lanner.record.sqlite import SqliteStore
from lanner.record.store import websocket_messages

EXPORT_PAGE = 500
HAR_MAX = 100_000  # flows one HAR export holds at most (a filter narrows it)
_TOKENS = re.compile(r"[A-Za-z0-9!#$%&'*+.^_`|~-]+(?:\s*,\s*[A-Za-z0-9!#$%&'*+.^_`|~-]+)*")
SQLITE_MAX_ID = 2**63 - 1
HAR_SPOOL = 8 * 1024 * 1024  # a HAR export past this is spooled to a temporary file

FilterParam = Annotated[
    str, Query(description="the CLI's filter syntax, e.g. `status:>=400 host:*.example.com`")
]
FlowId = Annotated[int, PathParam(ge=1, le=SQLITE_MAX_ID)]


def routes(reader: StoreReader, page_max: int) -> APIRouter:
    router = APIRouter(prefix="/api/v1", tags=["flows"])

    @router.get("/flows", response_model=FlowPage, summary="Flows, newest first, a page at a time")
    async def flows(
        filter: FilterParam = "",
        limit: Annotated[int, Query(ge=1, le=100_000)] = 100,
        cursor: Annotated[
            str | None, Query(pattern=r"^[0-9]{1,19}$", description="next_cursor of the previous page")
        ] = None,
    ) -> dict[str, Any]:
        query = parse_optional(filter)
        before = _cursor(cursor)
        size = min(limit, page_max)
        page = await reader.read(lambda store: store.flows(query, limit=size, before_id=before)) or []
        more = len(page) == size and page[-1].id > 1
        return {
            "flows": [views.summary(record) for record in page],
            "next_cursor": str(page[-1].id) if more else None,
        }

    @router.get("/flows/count", response_model=Count, summary="How many flows match a filter")
    async def count(filter: FilterParam = "") -> dict[str, int]:
        query = parse_optional(filter)
        return {"count": await reader.read(lambda store: store.count(query)) or 0}

    @router.get(
        "/flows/{flow_id}", response_model=FlowDetail, summary="One flow with headers and decoded bodies"
    )
    async def flow(flow_id: FlowId) -> dict[str, Any]:
        found = await reader.read(lambda store: _whole(store, flow_id))
        if found is None:
            raise ApiError(404, "not_found", f"no flow {flow_id}")
        return found

    @router.get(
        "/flows/{flow_id}/body/{side}",
        response_class=Response,
        summary="A flow's request or response body, raw as stored (content coding kept)",
        responses={200: {"content": {"application/octet-stream": {}}}},
    )
    async def body(flow_id: FlowId, side: Literal["request", "response"]) -> Response:
        record = await reader.read(lambda store: store.get(flow_id))
        if record is None:
            raise ApiError(404, "not_found", f"no flow {flow_id}")
        data, headers = (
            (record.request_body.data, record.request_headers)
            if side == "request"
            else (record.response_body.data, record.response_headers)
        )
        extra = {
            "Content-Disposition": f'attachment; filename="flow-{flow_id}-{side}.bin"',
            # Recorded bytes are never rendered on the admin origin, whatever they hold.
            "X-Content-Type-Options": "nosniff",
            "Content-Security-Policy": "sandbox",
        }
        encoding = header(headers, "content-encoding")
        if encoding and _TOKENS.fullmatch(encoding):
            extra["X-Content-Encoding"] = encoding  # as stored; not applied to this response
        return Response(data, media_type="application/octet-stream", headers=extra)

    @router.get(
        "/flows.har",
        response_class=StreamingResponse,
        summary="Matching flows as a HAR 1.2 file (HTTP and WebSocket only)",
        responses={200: {"content": {"application/json": {}}}},
    )
    async def har(
        filter: FilterParam = "",
        limit: Annotated[
            int, Query(ge=1, le=HAR_MAX, description="the newest this many matching flows")
        ] = 10_000,
    ) -> StreamingResponse:
        query = parse_optional(filter)
        spooled = await reader.read(lambda store: _har(store, query, limit), export=True)
        headers = {"Content-Disposition": 'attachment; filename="lanner-flows.har"'}
        chunks = _chunks(spooled) if spooled is not None else iter([_EMPTY_HAR])
        return StreamingResponse(chunks, media_type="application/json", headers=headers)

    @router.get("/stats", response_model=Stats, summary="Counts, status classes and latency percentiles")
    async def stats(
        filter: FilterParam = "",
        by: Annotated[
            Literal["command", "fingerprint"] | None, Query(description="group database flows")
        ] = None,
    ) -> dict[str, Any]:
        query = parse_optional(filter)
        grouped = by or grouping(query)
        found = await reader.read(lambda store: _stats(store, query, grouped))
        return found or _stats_of_nothing(grouped)

    return router


def _cursor(text: str | None) -> int | None:
    if text is None or text == "":
        return None
    if not text.isdigit() or not 0 < int(text) <= SQLITE_MAX_ID:
        raise ApiError(400, "bad_cursor", f"cursor {text[:40]!r} is not one this API gave out")
    return int(text)


def _whole(store: SqliteStore, flow_id: int) -> dict[str, Any] | None:
    record = store.get(flow_id)
    if record is None:
        return None
    connection = store.connection(record.conn_uid)
    upgraded = record.notes.get("upgraded") == "101"
    messages = websocket_messages(store, record) if upgraded else []
    return views.detail(record, connection, messages)


def _stats(store: SqliteStore, query: FilterQuery | None, by: str | None) -> dict[str, Any]:
    totals = store.stats(query)
    groups = store.group_stats(query, by) if by else []
    return {
        "flows": totals.flows,
        "connections": totals.connections,
        "store_bytes": totals.db_bytes,
        "status_classes": totals.status_classes,
        "latency": [
            {"host": host, "path": path, "count": n, "p50": p50, "p95": p95, "p99": p99}
            for host, path, n, p50, p95, p99 in totals.latency
        ],
        "by": by,
        "groups": [
            {
                "group": g.group,
                "text": g.text,
                "calls": g.calls,
                "errors": g.errors,
                "rows": g.rows,
                "p50": g.p50,
                "p95": g.p95,
                "p99": g.p99,
            }
            for g in groups
        ],
    }


def _stats_of_nothing(by: str | None) -> dict[str, Any]:
    return {
        "flows": 0,
        "connections": 0,
        "store_bytes": 0,
        "status_classes": {},
        "latency": [],
        "by": by,
        "groups": [],
    }


_EMPTY_HAR = b'{"log": {"version": "1.2", "creator": {"name": "lanner"}, "entries": []}}'


def _har(store: SqliteStore, query: FilterQuery | None, limit: int) -> IO[bytes]:
    """The whole export, written on the reader thread (big ones to a temporary file)."""
    spool = tempfile.SpooledTemporaryFile(max_size=HAR_SPOOL)  # noqa: SIM115 (closed by _chunks)
    text = _TextOut(spool)

    newest = store.flows(query, limit=limit)
    start = newest[-1].id - 1 if newest else 0

    def whole() -> Iterator[FlowRecord]:  # oldest first, as HAR viewers expect
        last, left = start, len(newest)
        while left > 0 and (page := store.flows_after(query, last, min(EXPORT_PAGE, left))):
            for found in page:
                record = store.get(found.id)
                if record is not None:
                    yield record
            last, left = page[-1].id, left - len(page)

    write_har(text, whole(), lambda upgrade: websocket_messages(store, upgrade))  # type: ignore[arg-type]
    spool.seek(0)
    return spool


class _TextOut:
    """The `write(str)` write_har needs, onto a binary spool."""

    def __init__(self, out: Any) -> None:
        self.out = out

    def write(self, text: str) -> int:
        self.out.write(text.encode("utf-8"))
        return len(text)


def _chunks(spool: IO[bytes], size: int = 64 * 1024) -> Iterator[bytes]:
    """Read by Starlette on its thread pool; the spool is closed once sent (or the client left)."""
    try:
        while chunk := spool.read(size):
            yield chunk
    finally:
        spool.close()
