"""The recorder: from the event loop to the store, without ever blocking the loop.

On the loop (`exchange`, `connection`): a sampling decision and an append to a
bounded queue, nothing else. When the queue is full the record is dropped and
counted, with one warning line per `REPORT_INTERVAL`; the connection is never
touched. On the writer thread: conversion, redaction, text for the search
index, then one store transaction per batch. When the store fails (unwritable,
full, locked, corrupted), the failure is logged once with its reason, the
batch in hand is retried every `RETRY_INTERVAL` on a freshly opened store, the
queue keeps its bound (dropping and counting past it), and a line says when
recording resumes. Proxying never notices.
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
from typing import TYPE_CHECKING

from lanner.config.model import RecordConfig
from lanner.record import bodies
from lanner.record.convert import Origin, flow
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
_Item = tuple[Exchange, Origin] | ConnectionRecord


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


class Recorder:
    def __init__(self, config: RecordConfig, open_store: StoreFactory, tag: str | None = None) -> None:
        self.config = config
        self.open_store = open_store
        self.tag = tag or secrets.token_hex(3)  # tells connection numbers of processes apart
        self.sampler = Sampler(config)
        self.redactor = Redactor(config.redact)
        self.queue: deque[_Item] = deque()
        self.capacity = config.queue
        self.max_body = int(config.max_body)
        self.dropped = 0
        self.sampled_out = 0
        self.written = 0
        self.store_failures = 0
        self._reported = 0
        self._report: asyncio.TimerHandle | None = None
        self._wake = threading.Event()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._failing: str | None = None

    # -- on the event loop --

    def uid(self, conn: Conn) -> str:
        return f"{self.tag}.{conn.id}"

    def exchange(self, exchange: Exchange, origin: Origin) -> None:
        if not self.sampler.keep(exchange):
            self.sampled_out += 1
            return
        self._put((exchange, origin))

    def connection(self, conn: Conn) -> None:
        now = time.time()
        self._put(
            ConnectionRecord(
                uid=f"{self.tag}.{conn.id}",
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
                detail=conn.detail or None,
                worker=conn.listener.services.worker,
            )
        )

    def _put(self, item: _Item) -> None:
        if len(self.queue) >= self.capacity:
            self.dropped += 1
            if self._report is None:
                self._report = asyncio.get_running_loop().call_later(REPORT_INTERVAL, self._report_drops)
            return
        self.queue.append(item)

    def _report_drops(self) -> None:
        self._report = None
        count = self.dropped - self._reported
        self._reported = self.dropped
        log.warning(
            "recorder queue full: records dropped",
            extra={"fields": {"dropped": count, "dropped_total": self.dropped, "queue": self.capacity}},
        )

    # -- lifecycle --

    def start(self) -> None:
        self._thread = threading.Thread(target=self._write_loop, name="lanner-recorder", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Write what is queued (for at most `timeout` seconds), then stop the writer."""
        self._stopping = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
        if self.queue:
            lost = len(self.queue)
            log.warning("recorder stopped with records unwritten", extra={"fields": {"lost": lost}})

    # -- on the writer thread --

    def _write_loop(self) -> None:
        store: Store | None = None
        while True:
            self._wake.wait(WAKE_INTERVAL)
            self._wake.clear()
            batch = self._take_batch()
            if not batch:
                if self._stopping:
                    break
                continue
            connections, flows = self._prepare(batch)
            store = self._write(store, connections, flows)
            if store is None and self._stopping:
                break
        if store is not None:
            store.close()

    def _take_batch(self) -> list[_Item]:
        queue, size = self.queue, min(len(self.queue), self.config.batch)
        return [queue.popleft() for _ in range(size)]

    def _prepare(self, batch: list[_Item]) -> tuple[list[ConnectionRecord], list[FlowRecord]]:
        connections: list[ConnectionRecord] = []
        flows: list[FlowRecord] = []
        for item in batch:
            if isinstance(item, ConnectionRecord):
                connections.append(item)
                continue
            record = flow(*item)
            self.redactor.apply(record)
            record.search_text = bodies.flow_search_text(record, SEARCH_TEXT_LIMIT)
            flows.append(record)
        return connections, flows

    def _write(
        self, store: Store | None, connections: list[ConnectionRecord], flows: list[FlowRecord]
    ) -> Store | None:
        """Write one batch, retrying while the store fails; the store to use next (None: gave up)."""
        while True:
            try:
                if store is None:
                    store = self.open_store()
                store.write(connections, flows)
            except StoreError as exc:
                self._failed(store, exc)
                store = None
                if self._stopping:
                    self.dropped += len(connections) + len(flows)
                    return None
                time.sleep(RETRY_INTERVAL)
                continue
            self.written += len(connections) + len(flows)
            if self._failing is not None:
                log.warning("recording resumed", extra={"fields": {"after": self._failing}})
                self._failing = None
            return store

    def _failed(self, store: Store | None, exc: StoreError) -> None:
        """Log the first failure of a run of them; drop the store so the next try reopens it."""
        self.store_failures += 1
        if self._failing is None:
            self._failing = str(exc)
            log.error(
                "recording paused: the store failed; proxying continues",
                extra={"fields": {"reason": str(exc), "pid": os.getpid()}},
            )
        if store is not None:
            try:
                store.close()
            except StoreError:
                pass  # it is being replaced because it failed

