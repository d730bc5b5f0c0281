"""Prometheus metrics: every metric lanner exports, and their exposition for `GET /metrics`.

Values are kept by prometheus_client: in memory for a lone process, or, under
`lanner run`, in one memory-mapped file per process (see `metrics_dir`), so
that `exposition` called in any worker adds up every worker's and every
recording writer's values. Labels are bounded: listener, pool, backend and
provider names come from the config; outcomes, status classes, Redis
commands and SQL verbs from fixed tables; SQL fingerprints are capped
(`metrics_db`). Never a path, a host or a client address.

The data path pays per connection a handful of increments on label children
resolved once per listener (`ListenerMetrics`), never per chunk; queue depth
and upstream state are sampled by timers that exist anyway; database
latencies are observed in the writer process, where flows are built.
This module must never block, raise into its callers or import asyncio.
"""

from __future__ import annotations

import asyncio
import os
from bisect import bisect_left
from typing import Final

from prometheus_client import (
    CONTENT_TYPE_PLAIN_0_0_4,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
    values,
)
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

from lanner import __version__
from lanner.control.metrics_dir import ENV

# *_created series are not kept across processes: a lone process does not show them either.
disable_created_metrics()  # type: ignore[no-untyped-call]

REGISTRY: Final = CollectorRegistry()  # lanner's own: a lone process exposes exactly these

_FAST: Final = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_SLOW: Final = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
_DB: Final = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0)


def _counter(name: str, doc: str, labels: tuple[str, ...] = ()) -> Counter:
    return Counter(name, doc, labels, registry=REGISTRY)


def _gauge(name: str, doc: str, labels: tuple[str, ...], mode: str) -> Gauge:
    return Gauge(name, doc, labels, registry=REGISTRY, multiprocess_mode=mode)  # type: ignore[arg-type]


def _histogram(name: str, doc: str, labels: tuple[str, ...], buckets: tuple[float, ...]) -> Histogram:
    return Histogram(name, doc, labels, registry=REGISTRY, buckets=buckets)


# --- connections (proxy processes) ------------------------------------------------------

CONNECTIONS_OPENED = _counter(
    "lanner_connections_opened_total", "Client connections admitted.", ("listener",)
)
CONNECTIONS_CLOSED = _counter(
    "lanner_connections_closed_total", "Client connections ended, by outcome.", ("listener", "outcome")
)
CONNECTIONS_OPEN = _gauge("lanner_connections_open", "Client connections open now.", ("listener",), "livesum")
CONNECTIONS_REFUSED = _counter(
    "lanner_connections_refused_total",
    "Connections closed at once: the listener was at capacity.",
    ("listener",),
)
BYTES = _counter(
    "lanner_bytes_total",
    "Bytes relayed, up (client to upstream) or down; counted when a connection ends.",
    ("listener", "direction"),
)
HANDSHAKE_SECONDS = _histogram(
    "lanner_handshake_seconds",
    "From accept to the client's request read (SOCKS, HTTP, CONNECT, SNI); TLS listeners: after TLS.",
    ("listener",),
    _FAST,
)
CONNECT_SECONDS = _histogram(
    "lanner_upstream_connect_seconds",
    "Opening an upstream connection: resolution, connect, and a vendor's handshake or a backend's TLS.",
    ("listener",),
    _FAST,
)
HTTP_LATENCY_SECONDS = _histogram(
    "lanner_http_upstream_latency_seconds",
    "From an HTTP request sent upstream to its response head (analyzed tunnels: its first byte).",
    ("listener",),
    _SLOW,
)
HTTP_RESPONSES = _counter(
    "lanner_http_responses_total",
    "HTTP responses sent to clients (lanner's own included) by status class; none: the exchange ended first.",
    ("listener", "class"),
)

# --- databases (writer processes: what was recorded, after sampling and drops) ----------

REDIS_SECONDS = _histogram(
    "lanner_redis_command_seconds",
    "Redis command to its reply, as recorded (record.sample applies); unknown commands: other.",
    ("command",),
    _DB,
)
REDIS_ERRORS = _counter("lanner_redis_errors_total", "Redis commands answered with an error.", ("command",))
POSTGRES_SECONDS = _histogram(
    "lanner_postgres_statement_seconds",
    "PostgreSQL statement to its result, as recorded; fingerprints past the first few per writer: other.",
    ("verb", "fingerprint"),
    _DB,
)
POSTGRES_ERRORS = _counter(
    "lanner_postgres_errors_total", "PostgreSQL errors by SQLSTATE class.", ("verb", "sqlstate_class")
)

# --- recording ---------------------------------------------------------------------------

RECORDER_QUEUE = _gauge(
    "lanner_recorder_queue_depth",
    "Records waiting for the writer (sampled ten times a second).",
    (),
    "livesum",
)
RECORDER_DROPPED = _counter(
    "lanner_recorder_dropped_total", "Records dropped: the recorder's queue was full."
)
RECORDER_SAMPLED_OUT = _counter(
    "lanner_recorder_sampled_out_total", "Exchanges and database events not recorded by record.sample."
)
RECORDER_LOST = _counter(
    "lanner_recorder_lost_total",
    "Records lost after the queue: writer_exit (its child died), convert (a bug), store (failing at stop).",
    ("stage",),
)
WRITER_RESTARTS = _counter("lanner_recorder_writer_restarts_total", "Writer child processes started again.")
STORE_WRITE_SECONDS = _histogram(
    "lanner_store_write_seconds", "One batch's store transaction.", (), (*_FAST[1:], 30.0)
)
STORE_WRITTEN = _counter("lanner_store_written_total", "Records stored.", ("kind",))
STORE_FAILURES = _counter("lanner_store_failures_total", "Failed store writes (each retried).")

# --- upstreams (sampled once a second) ------------------------------------------------------

BACKEND_HEALTHY = _gauge(
    "lanner_backend_healthy",
    "1 when active checks find the backend up (in every worker).",
    ("pool", "backend"),
    "livemin",
)
BACKEND_EJECTED = _gauge(
    "lanner_backend_ejected",
    "1 while outlier detection keeps it out (in any worker).",
    ("pool", "backend"),
    "livemax",
)
BACKEND_DRAINING = _gauge(
    "lanner_backend_draining", "1 while drained (config or admin API).", ("pool", "backend"), "livemax"
)
BACKEND_IN_FLIGHT = _gauge(
    "lanner_backend_in_flight", "Requests in flight to the backend.", ("pool", "backend"), "livesum"
)
BACKEND_EJECTIONS = _counter("lanner_backend_ejections_total", "Outlier ejections.", ("pool", "backend"))
PROVIDER_BREAKER = _gauge(
    "lanner_provider_breaker_state",
    "Worker processes whose breaker for the vendor provider is in this state.",
    ("provider", "state"),
    "livesum",
)
PROVIDER_HANDSHAKES = _counter(
    "lanner_provider_handshakes_total", "Tunnels tried through a provider.", ("provider",)
)
PROVIDER_FAILURES = _counter(
    "lanner_provider_failures_total", "Tunnels a provider failed (counted toward its breaker).", ("provider",)
)

# --- control -------------------------------------------------------------------------------

CONFIG_RELOADS = _counter("lanner_config_reloads_total", "Config reloads, ok or failed.", ("result",))
BUILD_INFO = _gauge("lanner_build_info", "Always 1; the version is the label.", ("version",), "max")
BUILD_INFO.labels(__version__).set(1)
for _result in ("ok", "failed"):
    CONFIG_RELOADS.labels(_result)


_STATUS_CLASSES: Final = {n: f"{n}xx" for n in range(1, 6)}


class _Tally:
    """A histogram's observations since the last flush, kept in plain Python (see ListenerMetrics)."""

    __slots__ = ("histogram", "bounds", "counts", "total")

    def __init__(self, histogram: Histogram) -> None:
        self.histogram = histogram
        self.bounds: list[float] = list(histogram._upper_bounds)  # noqa: SLF001 (see flush)
        self.counts = [0] * len(self.bounds)
        self.total = 0.0

    def observe(self, seconds: float) -> None:
        self.counts[bisect_left(self.bounds, seconds)] += 1
        self.total += seconds

    def flush(self) -> None:
        # prometheus_client has no "observe n times"; its histogram is a sum and one
        # cumulative-free counter per bucket (`_sum`, `_buckets`), which this adds to directly.
        histogram = self.histogram
        if any(self.counts):
            histogram._sum.inc(self.total)  # noqa: SLF001
            for index, count in enumerate(self.counts):
                if count:
                    histogram._buckets[index].inc(count)  # noqa: SLF001
                    self.counts[index] = 0
            self.total = 0.0


class ListenerMetrics:
    """One listener's metrics, counted in plain ints on the data path and flushed once a second.

    prometheus_client's multiprocess values cost a lock and an mmap write per update
    (several per histogram observation): about 20% of small keep-alive requests' throughput
    in `bench/control.sh`. Here the data path only adds to ints; `flush` (at most a second
    later, at each scrape of this process, and at shutdown) hands the sums over.
    """

    __slots__ = (
        "name", "_opened", "_open", "_refused", "_up", "_down", "_handshake", "_connect", "_latency",
        "_closed", "_responses", "_counts",
    )  # fmt: skip

    def __init__(self, name: str) -> None:
        self.name = name
        self._opened = CONNECTIONS_OPENED.labels(name)
        self._open = CONNECTIONS_OPEN.labels(name)
        self._refused = CONNECTIONS_REFUSED.labels(name)
        self._up = BYTES.labels(name, "up")
        self._down = BYTES.labels(name, "down")
        self._handshake = _Tally(HANDSHAKE_SECONDS.labels(name))
        self._connect = _Tally(CONNECT_SECONDS.labels(name))
        self._latency = _Tally(HTTP_LATENCY_SECONDS.labels(name))
        self._closed: dict[str, Counter] = {}  # by outcome: at most lanner.errors.Outcome's members
        self._responses: dict[int | None, Counter] = {}  # by status // 100 (None: no response)
        # Pending increments: a counter or gauge child -> amount (a gauge's may be negative).
        self._counts: dict[Counter | Gauge, float] = {}

    def _add(self, child: Counter | Gauge, amount: float = 1) -> None:
        counts = self._counts
        counts[child] = counts.get(child, 0) + amount
        _schedule(self)

    def opened(self) -> None:
        self._add(self._opened)
        self._add(self._open)

    def refused(self) -> None:
        self._add(self._refused)

    def handshake(self, seconds: float) -> None:
        self._handshake.observe(seconds)
        _schedule(self)

    def connected(self, seconds: float) -> None:
        self._connect.observe(seconds)
        _schedule(self)

    def closed(self, outcome: str, up: int, down: int) -> None:
        counter = self._closed.get(outcome)
        if counter is None:
            counter = self._closed[outcome] = CONNECTIONS_CLOSED.labels(self.name, outcome)
        self._add(counter)
        self._add(self._open, -1)
        if up:
            self._add(self._up, up)
        if down:
            self._add(self._down, down)

    def answered(self, status: int | None, latency: float | None = None) -> None:
        """An HTTP exchange ended: its final status (None: it got no response) and its latency."""
        key = None if status is None else status // 100
        counter = self._responses.get(key)
        if counter is None:
            label = "none" if key is None else _STATUS_CLASSES.get(key, "other")
            counter = self._responses[key] = HTTP_RESPONSES.labels(self.name, label)
        self._add(counter)
        if latency is not None:
            self._latency.observe(max(latency, 0.0))

    def flush(self) -> None:
        counts, self._counts = self._counts, {}
        for child, amount in counts.items():
            if amount:  # an open-connections gauge may net to 0: nothing to hand over
                child.inc(amount)
        for tally in (self._handshake, self._connect, self._latency):
            tally.flush()


FLUSH_INTERVAL: Final = 1.0
_pending: set[ListenerMetrics] = set()
_timer: list[asyncio.TimerHandle] = []


def _schedule(listener: ListenerMetrics) -> None:
    _pending.add(listener)
    if not _timer:
        try:
            _timer.append(asyncio.get_running_loop().call_later(FLUSH_INTERVAL, flush))
        except RuntimeError:  # no loop (a unit test, a script): hand it over now
            flush()


def flush() -> None:
    """Hand every listener's pending counts to prometheus_client (timer, scrape, shutdown)."""
    if _timer:
        _timer.pop().cancel()
    while _pending:
        _pending.pop().flush()


_LISTENERS: dict[str, ListenerMetrics] = {}


def for_listener(name: str) -> ListenerMetrics:
    """The same object for every runtime of one listener name (a reload keeps counting on)."""
    found = _LISTENERS.get(name)
    if found is None:
        found = _LISTENERS[name] = ListenerMetrics(name)
    return found


def reload_counted(ok: bool) -> None:
    CONFIG_RELOADS.labels("ok" if ok else "failed").inc()


def multiprocess() -> bool:
    """Whether values live in the per-run directory (`lanner run`) rather than in this process."""
    return bool(getattr(values.ValueClass, "_multiprocess", False)) and os.path.isdir(os.environ.get(ENV, ""))


def exposition() -> tuple[bytes, str]:
    """(body, content type) of `GET /metrics`: every process's values under `lanner run`.

    Reads every process's files: call it off the event loop. Data-path counts reach the
    files within `FLUSH_INTERVAL` seconds (`flush` first, on the loop, for this process's).
    """
    if multiprocess():
        registry = CollectorRegistry()
        MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry), CONTENT_TYPE_PLAIN_0_0_4
    return generate_latest(REGISTRY), CONTENT_TYPE_PLAIN_0_0_4


def process_gone(pid: int) -> None:
    """A child process (a writer) exited: its live gauges no longer count; its counters stay."""
    if multiprocess():
        mark_process_dead(pid)  # type: ignore[no-untyped-call]
