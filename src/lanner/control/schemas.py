"""The admin API's response shapes: what the OpenAPI document promises and every answer is checked against."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class ErrorBody(BaseModel):
    status: int
    code: str = Field(description="stable machine-readable reason, e.g. not_found, bad_filter, unauthorized")
    message: str
    request_id: str


class ErrorResponse(BaseModel):
    error: ErrorBody


class Health(BaseModel):
    status: str


class Ready(BaseModel):
    ready: bool
    checks: dict[str, bool]


class FlowSummary(BaseModel):
    id: int
    conn_uid: str = Field(description="the connection's correlation id, as in its log line")
    proto: str
    started: float = Field(description="seconds since the epoch")
    method: str
    url: str
    host: str
    port: int
    path: str
    status: int | None
    reason: str
    error: str | None
    duration_ms: float | None
    request_size: int
    response_size: int
    content_type: str | None
    listener: str
    client: str
    user: str | None
    command: str
    category: str | None
    rows: int | None
    sqlstate: str | None


class FlowPage(BaseModel):
    flows: list[FlowSummary]
    next_cursor: str | None = Field(description="pass as `cursor` for the next (older) page; null: no more")


class Count(BaseModel):
    count: int


class BodyView(BaseModel):
    size: int = Field(description="bytes on the wire")
    stored: int = Field(description="bytes kept (past record.max_body the middle is cut)")
    truncated: bool
    text: str | None = Field(description="decoded text (pretty JSON); null for binary bodies")
    binary: bool
    content_type: str | None
    decode_error: str | None


class MessageView(BaseModel):
    headers: list[tuple[str, str]]
    trailers: list[tuple[str, str]]
    body: BodyView


class Timings(BaseModel):
    started: float
    request_ended: float | None
    response_started: float | None
    response_ended: float | None


class ConnectionView(BaseModel):
    uid: str
    listener: str
    client: str
    protocol: str
    user: str | None = None
    dest: str | None = None
    sni: str | None = None
    up: int = 0
    down: int = 0
    requests: int = 0
    started: float | None = None
    ended: float | None = None
    age: float | None = Field(None, description="seconds open (live connections)")
    idle: float | None = Field(None, description="seconds since bytes last moved (live connections)")
    in_handshake: bool | None = None
    outcome: str | None = None
    detail: str | None = None
    worker: int | None = None


class FlowDetail(FlowSummary):
    scheme: str
    http_version: str
    interim: list[int]
    notes: dict[str, str]
    keys: list[str]
    statement: str
    fingerprint: str | None
    timings: Timings
    request: MessageView
    response: MessageView
    connection: ConnectionView | None
    messages: list[FlowSummary] = Field(
        description="WebSocket messages of an upgraded exchange, oldest first"
    )


class LatencyRow(BaseModel):
    host: str
    path: str
    count: int
    p50: float | None
    p95: float | None
    p99: float | None


class GroupRow(BaseModel):
    group: str
    text: str
    calls: int
    errors: int
    rows: int
    p50: float | None
    p95: float | None
    p99: float | None


class Stats(BaseModel):
    flows: int
    connections: int
    store_bytes: int
    status_classes: dict[str, int]
    latency: list[LatencyRow]
    by: str | None = Field(description="what `groups` are grouped by: command, fingerprint, or null")
    groups: list[GroupRow]


class ListenerView(BaseModel):
    name: str
    type: str
    bind: str
    addresses: list[str]
    open: int
    refused: int
    analyze: str
    max_connections: int


class Closed(BaseModel):
    closed: str


class ReloadView(BaseModel):
    ok: bool
    changed: list[str]
    needs_restart: list[str]
    errors: list[str]


class Upstreams(BaseModel):
    pools: list[dict[str, Any]] = Field(description="one entry per backend of every reverse-proxy pool")
    providers: list[dict[str, Any]] = Field(description="upstream proxy vendors with breaker state")


class Drained(BaseModel):
    pool: str
    address: str
    drained: bool
