"""The recorder: from the event loop to the store, without ever blocking the loop.

On the loop (`exchange`, `connection`): a sampling decision and an append to a
bounded queue, nothing else. When the queue is full the record is dropped and
counted, with one warning line per `REPORT_INTERVAL` (and one at stop); the
connection is never touched. A feeder thread packs batches into plain tuples
and hands them to a sink: the writer process (`record/writer.py`, so that
conversion, redaction, indexing and SQLite never take the proxy's interpreter
lock) or, in tests, a `StoreWriter` on the feeder thread itself.

`StoreWriter` is the other end: conversion, redaction, text for the search
index, then one store transaction per batch. When the store fails
(unwritable, full, locked, corrupted), the failure is logged once with its
reason, the batch in hand is retried every `RETRY_INTERVAL` on a freshly
opened store (the sink blocks meanwhile, so the queue fills and drops past its
bound), and a line says when recording resumes. Proxying never notices.

Metrics: the loop only counts in plain ints; the feeder thread hands drops,
sampled-out records and the queue's depth to `control.metrics` at each wake.
`StoreWriter` times store writes and observes database latencies and errors
(`control.metrics_db`) from the events it converts.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from lanner.config.model import RecordConfig
from lanner.control import metrics
from lanner.control.metrics_db import DbMetrics
from lanner.record import bodies
from lanner.record.convert import DbItem, Origin, Packed, WsItem, flow, pack, ws_flow
from lanner.record.convert_db import db_flow, db_search_text
from lanner.record.model import ConnectionRecord, FlowRecord
from lanner.record.redact import Redactor
from lanner.record.store import Store, StoreError
from lanner.wire.http_exchange import Exchange

if TYPE_CHECKING:
    from lanner.net.conn import Conn

log = logging.getLogger("lanner.record")

REPORT_INTERVAL = 10.0
RETRY_INTERVAL = 1.0
WAKE_INTERVAL = 0.1
SEARCH_TEXT_LIMIT = 16 * 1024

StoreFactory = Callable[[], Store]
Item = Packed | WsItem | DbItem | ConnectionRecord  # what a sink receives
_Queued = tuple[Exchange, Origin] | WsItem | DbItem | ConnectionRecord


class Sampler:
    """Which exchanges are kept: errors always, else by the longest matching path prefix."""

    def __init__(self, config: RecordConfig) -> None:
        self.rate = config.sample
        self.prefixes = sorted(config.sample_paths.items(), key=lambda item: -len(item[0]))
        self.everything = self.rate >= 1.0 and all(rate >= 1.0 for _, rate in self.prefixes)

    def keep(self, exchange: Exchange) -> bool:
        if self.everything:
            return True
        response = exchange.response
        if response is None or response.status >= 500 or exchange.error is not None:
            return True
        rate = self.rate
        if self.prefixes:
            path = exchange.request.target.decode("latin-1")
            if "://" in path:
                path = "/" + path.partition("://")[2].partition("/")[2]
            rate = next((r for prefix, r in self.prefixes if path.startswith(prefix)), rate)
        return random.random() < rate


class Sink(Protocol):
    """Where the feeder thread sends packed batches. `send` may block (the queue absorbs it)."""

    def send(self, items: list[Item]) -> None: ...

    def stop(self) -> None:
        """Stop retrying a failing store: the next failure drops the batch."""

    def close(self, timeout: float) -> None: ...


class Recorder:
    def __init__(self, config: RecordConfig, sink: Sink, tag: str | None = None) -> None:
        self.config = config
        self.sink = sink
        self.tag = tag or secrets.token_hex(3)  # tells connection numbers of processes apart
        self.sampler = Sampler(config)
        self.queue: deque[_Queued] = deque()
        self.capacity = config.queue
        self.max_body = int(config.max_body)
        self.dropped = 0
        self.sampled_out = 0
        self._reported = 0
        self._report: asyncio.TimerHandle | None = None
        self._wake = threading.Event()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._published = (0, 0, -1)  # dropped, sampled out, queue depth: as the metrics last saw them

    # -- on the event loop --

    def uid(self, conn: Conn) -> str:
        return conn.uid

    def exchange(self, exchange: Exchange, origin: Origin) -> None:
        if not self.sampler.keep(exchange):
            self.sampled_out += 1
            return
        self._put((exchange, origin))

    def message(self, item: WsItem) -> None:
        """A WebSocket message (always kept: its upgrade exchange was)."""
        self._put(item)

    def db_event(self, item: DbItem) -> None:
        """A Redis or PostgreSQL event; `record.sample` applies (errors are always kept)."""
        if not self.sampler.everything and random.random() >= self.sampler.rate and not _failed(item):
            self.sampled_out += 1
            return
        self._put(item)

    def connection(self, conn: Conn) -> None:
        now = time.time()
        self._put(
            ConnectionRecord(
                uid=conn.uid,
                listener=conn.listener.name,
                client=conn.client_text,
                protocol=conn.protocol,
                started=now - (time.monotonic() - conn.started),
                ended=now,
                user=conn.user,
                dest=conn.dest,
                sni=conn.sni,
                up=conn.up,
                down=conn.down,
                requests=conn.requests,
                outcome=conn.outcome.value if conn.outcome is not None else "ok",
                detail=_detail(conn),
                worker=conn.listener.services.worker,
            )
        )

    def _put(self, item: _Queued) -> None:
        if len(self.queue) >= self.capacity:
            self.dropped += 1
            if self._report is None:
                self._report = asyncio.get_running_loop().call_later(REPORT_INTERVAL, self._report_drops)
            return
        self.queue.append(item)

    def _report_drops(self) -> None:
        self._report = None
        count = self.dropped - self._reported
        if not count:
            return
        self._reported = self.dropped
        log.warning(
            "recorder queue full: records dropped",
            extra={"fields": {"dropped": count, "dropped_total": self.dropped, "queue": self.capacity}},
        )

    # -- lifecycle --

    def start(self) -> None:
        self._thread = threading.Thread(target=self._feed, name="lanner-recorder", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Hand over what is queued and let the writer store it (for at most `timeout` seconds)."""
        deadline = time.monotonic() + timeout
        self._stopping = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
        self.sink.stop()
        self.sink.close(max(1.0, deadline - time.monotonic()))
        if self._report is not None:
            self._report.cancel()
        self._report_drops()  # drops since the last report are not left unsaid
        if self._thread is None or not self._thread.is_alive():
            self._publish()
        if self.queue:
            lost = len(self.queue)
            log.warning("recorder stopped with records unwritten", extra={"fields": {"lost": lost}})

    # -- on the feeder thread --

    def _feed(self) -> None:
        while True:
            self._wake.wait(WAKE_INTERVAL)
            self._wake.clear()
            self._publish()
            batch = self._take_batch()
            if not batch:
                if self._stopping:
                    return
                continue
            # Exchanges are packed here, off the loop; messages and connections are plain already.
            self.sink.send([pack(*item) if type(item) is tuple else item for item in batch])  # type: ignore[misc]

    def _publish(self) -> None:
        """Hand the loop's plain counters and the queue's depth to the metrics, off the loop."""
        dropped, sampled_out, depth = self.dropped, self.sampled_out, len(self.queue)
        was_dropped, was_sampled_out, was_depth = self._published
        if dropped != was_dropped:
            metrics.RECORDER_DROPPED.inc(dropped - was_dropped)
        if sampled_out != was_sampled_out:
            metrics.RECORDER_SAMPLED_OUT.inc(sampled_out - was_sampled_out)
        if depth != was_depth:
            metrics.RECORDER_QUEUE.set(depth)
        self._published = (dropped, sampled_out, depth)

    def _take_batch(self) -> list[_Queued]:
        queue, size = self.queue, min(len(self.queue), self.config.batch)
        return [queue.popleft() for _ in range(size)]


def _failed(item: DbItem) -> bool:
    event = item.event
    if getattr(event, "error", None) is not None:
        return True
    reply = getattr(event, "reply", None)
    return reply is not None and reply.error is not None


def _detail(conn: Conn) -> str | None:
    """The connection's outcome detail, and why its analysis stopped (a mismatch, an encrypted session)."""
    notes = conn.notes
    if notes and "analysis" in notes:
        note = f"analysis: {notes['analysis']}"
        return f"{conn.detail}; {note}" if conn.detail else note
    return conn.detail or None


class StoreWriter:
    """The writing end: packed items -> records -> one store transaction per batch."""

    def __init__(self, config: RecordConfig, open_store: StoreFactory) -> None:
        self.open_store = open_store
        self.redactor = Redactor(config.redact)
        self.store: Store | None = None
        self.written = 0
        self.lost = 0
        self.store_failures = 0
        self.stopping = False
        self._failing: str | None = None
        self.db_metrics = DbMetrics()  # latencies and errors, from the events converted here

    def send(self, items: list[Item]) -> None:
        connections, flows = self.prepare(items)
        self._write(connections, flows)

    def stop(self) -> None:
        self.stopping = True

    def close(self, timeout: float = 0.0) -> None:
        if self.store is not None:
            try:
                self.store.close()
            except StoreError:
                pass
            self.store = None

    def prepare(self, items: list[Item]) -> tuple[list[ConnectionRecord], list[FlowRecord]]:
        connections: list[ConnectionRecord] = []
        flows: list[FlowRecord] = []
        for item in items:
            if type(item) is ConnectionRecord:
                connections.append(item)
                continue
            try:
                kind = type(item)
                if kind is DbItem:  # bodies are plain text already: no content coding to undo
                    record = db_flow(item)  # type: ignore[arg-type]
                    self.db_metrics.observe(item.event, record)  # type: ignore[union-attr]
                    self.redactor.apply_database(record)
                    record.search_text = db_search_text(record, SEARCH_TEXT_LIMIT)
                    flows.append(record)
                    continue
                record = ws_flow(item) if kind is WsItem else flow(item)  # type: ignore[arg-type]
                self.redactor.apply(record)
                record.search_text = bodies.flow_search_text(record, SEARCH_TEXT_LIMIT)
            except Exception:  # a bug here must cost one flow, not the batch or the writer
                self.lost += 1
                metrics.RECORDER_LOST.labels("convert").inc()
                log.exception("recorder could not convert an exchange", extra={"fields": {"lost": self.lost}})
                continue
            flows.append(record)
        return connections, flows

    def _write(self, connections: list[ConnectionRecord], flows: list[FlowRecord]) -> None:
        """Write one batch, retrying while the store fails (until `stopping`: then the batch is lost)."""
        while True:
            try:
                if self.store is None:
                    self.store = self.open_store()
                started = time.monotonic()
                self.store.write(connections, flows)
            except StoreError as exc:
                self._failed(exc)
                if self.stopping:
                    self.lost += len(connections) + len(flows)
                    metrics.RECORDER_LOST.labels("store").inc(len(connections) + len(flows))
                    fields = {"lost": self.lost}
                    log.warning("recorder stopped with records unwritten", extra={"fields": fields})
                    return
                time.sleep(RETRY_INTERVAL)
                continue
            self.written += len(connections) + len(flows)
            _written(time.monotonic() - started, len(connections), len(flows))
            if self._failing is not None:
                log.warning("recording resumed", extra={"fields": {"after": self._failing}})
                self._failing = None
            return

    def _failed(self, exc: StoreError) -> None:
        """Log the first failure of a run of them; drop the store so the next try reopens it."""
        self.store_failures += 1
        metrics.STORE_FAILURES.inc()
        if self._failing is None:
            self._failing = str(exc)
            log.error(
                "recording paused: the store failed; proxying continues",
                extra={"fields": {"reason": str(exc), "pid": os.getpid()}},
            )
        self.close()


def _written(seconds: float, connections: int, flows: int) -> None:
    metrics.STORE_WRITE_SECONDS.observe(seconds)
    if connections:
        metrics.STORE_WRITTEN.labels("connection").inc(connections)
    if flows:
        metrics.STORE_WRITTEN.labels("flow").inc(flows)
