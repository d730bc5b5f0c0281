"""The recorded-traffic model: connection rows and the flows under them.

These are plain data. The proxy builds them on the event loop (cheaply: no
copying of bodies beyond the bounded capture), the recorder's writer thread
redacts, compresses and stores them, and every reader (CLI, HAR, admin API)
gets them back from a store in the same shape.

Times are wall-clock seconds since the epoch (float); durations derived from
them are shown in milliseconds.
"""

from __future__ import annotations

from dataclasses import dataclass, field

Headers = list[tuple[str, str]]


def header(headers: Headers, name: str) -> str | None:
    """The first value of header `name` (lower-case), or None."""
    for key, value in headers:
        if key.lower() == name:
            return value
    return None


@dataclass(slots=True)
class Body:
    """A message body as it crossed the wire: content-coding kept, transfer-coding removed.

    When the body was larger than the capture limit, `data` holds its first
    `head_len` bytes followed by its last `len(data) - head_len` bytes, and
    `truncated` is set; `size` is always the full payload size.
    """

    data: bytes = b""
    size: int = 0
    truncated: bool = False
    head_len: int = 0


@dataclass(slots=True)
class ConnectionRecord:
    """One client connection, tunnelled or analyzed, written when it ends."""

    uid: str  # unique across processes and restarts: "<process tag>.<connection number>"
    listener: str
    client: str  # "host:port"
    protocol: str  # http | connect | socks5 | socks4 | tcp | http-upgrade | ...
    started: float
    ended: float
    user: str | None = None
    dest: str | None = None  # "host:port"
    sni: str | None = None
    up: int = 0  # bytes client -> upstream
    down: int = 0  # bytes upstream -> client
    requests: int = 0
    outcome: str = "ok"
    detail: str | None = None
    worker: int | None = None


@dataclass(slots=True)
class FlowRecord:
    """One HTTP exchange, WebSocket message, Redis command or PostgreSQL statement.

    A WebSocket message has proto "websocket", its opcode's name as `method`,
    its direction ("send" or "receive") as `reason`, and its payload as the
    request body (sent by the client) or the response body (by the server).

    A Redis command (proto "redis") or SQL statement (proto "postgres") has its
    command name or SQL verb as `method`, its database as `path` ("/0",
    "/orders"), the command line or SQL text as `command` (and request body),
    its reply or result summary as `reason` and response body, and `error`
    when the server refused it. PostgreSQL adds the normalized SQL as
    `statement`, its `fingerprint`, `sqlstate` and `rows`; both add `keys`
    (Redis keys) and `category`; everything else is in `notes`.

    `id` is assigned by the store when the flow is written (0 before).
    """

    conn_uid: str
    proto: str  # "http" (and "https" once TLS interception lands)
    started: float  # first byte of the request
    method: str = ""
    scheme: str = "http"
    host: str = ""
    port: int = 0
    path: str = ""  # origin-form target: path and query
    http_version: str = "1.1"
    request_headers: Headers = field(default_factory=list)
    request_trailers: Headers = field(default_factory=list)
    request_body: Body = field(default_factory=Body)
    request_ended: float | None = None
    status: int | None = None  # None: no response (failed or cut short)
    reason: str = ""
    interim: list[int] = field(default_factory=list)  # 1xx statuses seen before the final one
    response_headers: Headers = field(default_factory=list)
    response_trailers: Headers = field(default_factory=list)
    response_body: Body = field(default_factory=Body)
    response_started: float | None = None  # first byte of the response
    response_ended: float | None = None
    error: str | None = None  # why the exchange did not complete normally
    listener: str = ""
    client: str = ""
    user: str | None = None
    notes: dict[str, str] = field(default_factory=dict)  # e.g. decode errors, "upgraded"
    command: str = ""  # Redis command line or SQL text
    statement: str = ""  # normalized SQL (literals as $n), or the Redis command name
    fingerprint: str | None = None  # of the normalized SQL: the same query with other literals groups with it
    sqlstate: str | None = None
    rows: int | None = None  # rows returned or affected
    category: str | None = None  # read, write, admin, pubsub, transaction, scripting, connection, ...
    keys: list[str] = field(default_factory=list)
    # Decoded text of both bodies (capped), set by the recorder for the store's full-text
    # index; not stored as such and empty on flows read back.
    search_text: str = ""
    id: int = 0

    @property
    def url(self) -> str:
        default = {"https": 443, "redis": 6379, "postgres": 5432}.get(self.scheme, 80)
        authority = self.host if self.port in (0, default) else f"{self.host}:{self.port}"
        if ":" in self.host and not self.host.startswith("["):
            authority = f"[{self.host}]" if self.port in (0, default) else f"[{self.host}]:{self.port}"
        return f"{self.scheme}://{authority}{self.path}"

    @property
    def duration(self) -> float | None:
        """Seconds from the request's first byte to the response's last (None while incomplete)."""
        if self.response_ended is None:
            return None
        return self.response_ended - self.started


@dataclass(slots=True)
class StoreStats:
    """What `lanner flows stats` prints, computed by the store."""

    flows: int
    connections: int
    status_classes: dict[str, int]  # "2xx" -> count, "none" for no response
    # (host, path group) -> count, p50, p95, p99 durations in ms
    latency: list[tuple[str, str, int, float | None, float | None, float | None]]
    db_bytes: int = 0


@dataclass(slots=True)
class GroupStats:
    """One line of `lanner flows stats` for Redis (by command) or PostgreSQL (by fingerprint)."""

    group: str  # the command name, or the fingerprint
    text: str  # the command name, or the normalized SQL
    calls: int
    errors: int
    rows: int
    p50: float | None  # milliseconds
    p95: float | None
    p99: float | None
