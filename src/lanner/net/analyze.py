"""Relay ends that also show what they forward to an analyzer.

Each end forwards a chunk first, then hands the very same bytes object to the
connection's `Tap`: no copy, and the relay never waits for analysis. Analysis
never breaks a connection: a protocol error stops the analyzer (it says why),
and an unexpected exception in it is logged once and stops analysis of that
connection while the bytes keep flowing. Analyzed tunnels stay on the
transport relay (no splice: the bytes must pass through Python to be seen).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from lanner.net.conn import Conn
from lanner.net.relay import ClientEnd, UpstreamEnd
from lanner.record.convert import Origin
from lanner.record.recorder import Recorder
from lanner.wire.http_exchange import Exchange, HttpAnalyzer

log = logging.getLogger("lanner")


class Tap:
    """One connection's analyzer and where its exchanges go."""

    __slots__ = ("conn", "analyzer", "recorder", "origin")

    def __init__(self, conn: Conn, recorder: Recorder, origin: Origin, max_body: int) -> None:
        limits = conn.listener.limits
        self.conn = conn
        self.recorder = recorder
        self.origin = origin
        self.analyzer: HttpAnalyzer | None = HttpAnalyzer(
            max_body, limits.max_header_bytes, limits.max_request_line
        )

    def client_data(self, data: bytes) -> None:
        if self.analyzer is not None:
            self._emit(self.analyzer.client_data, data)

    def server_data(self, data: bytes) -> None:
        if self.analyzer is not None:
            self._emit(self.analyzer.server_data, data)

    def client_eof(self) -> None:
        if self.analyzer is not None:
            self._close(self.analyzer.client_eof)

    def server_eof(self) -> None:
        if self.analyzer is not None:
            self._close(self.analyzer.server_eof)

    def closed(self) -> None:
        if self.analyzer is not None:
            self._close(self.analyzer.close)
            self.analyzer = None

    def _emit(self, feed: Callable[[bytes, float], list[Exchange]], data: bytes) -> None:
        try:
            self._record(feed(data, time.time()))
        except Exception as exc:  # analysis's own crash boundary: the relay goes on
            self._broken(exc)

    def _close(self, feed: Callable[[float], list[Exchange]]) -> None:
        try:
            self._record(feed(time.time()))
        except Exception as exc:
            self._broken(exc)

    def _record(self, exchanges: list[Exchange]) -> None:
        if exchanges:
            self.conn.requests += len(exchanges)
            for exchange in exchanges:
                self.recorder.exchange(exchange, self.origin)
        analyzer = self.analyzer
        if analyzer is not None and analyzer.stopped is not None and analyzer.stopped != "connection closed":
            self.conn.note("analysis", analyzer.stopped)
            self.analyzer = None

    def _broken(self, exc: Exception) -> None:
        log.error("analysis failed; relaying goes on", exc_info=exc, extra={"fields": {"id": self.conn.id}})
        self.conn.note("analysis", f"failed: {exc!r}")
        self.analyzer = None


class AnalyzedClientEnd(ClientEnd):
    __slots__ = ("tap",)

    def __init__(self, conn: Conn, tap: Tap) -> None:
        super().__init__(conn)
        self.tap = tap
        self.splice_budget = -1

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        self.tap.client_data(data)

    def eof_received(self) -> bool:
        self.tap.client_eof()
        return super().eof_received()

    def ended(self) -> None:
        self.tap.closed()
        super().ended()


class AnalyzedUpstreamEnd(UpstreamEnd):
    __slots__ = ("tap",)

    def __init__(self, conn: Conn, tap: Tap) -> None:
        super().__init__(conn)
        self.tap = tap
        self.splice_budget = -1

    def data_received(self, data: bytes) -> None:
        if self.peer is None:
            self.hold(data)  # shown to the tap when link() passes it on
            return
        super().data_received(data)
        self.tap.server_data(data)

    def eof_received(self) -> bool:
        if self.peer is not None:
            self.tap.server_eof()
        return super().eof_received()
