"""Relay ends that also show what they forward to an analyzer (HTTP, then WebSocket).

Each end forwards a chunk first, then hands the very same bytes object to the
connection's `Tap`: no copy, and the relay never waits for analysis. Analysis
never breaks a connection: a protocol error stops the analyzer (it says why),
and an unexpected exception in it is logged once and stops analysis of that
connection while the bytes keep flowing. Analyzed tunnels stay on the
transport relay (no splice: the bytes must pass through Python to be seen).

A 101 that switches to WebSocket hands the rest of the connection to a
`WsTap`, which records each message as a flow on the same connection.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Protocol

from lanner.net.conn import Conn
from lanner.net.relay import ClientEnd, UpstreamEnd
from lanner.record.convert import Origin, WsItem
from lanner.record.recorder import Recorder
from lanner.wire.http1 import header_value
from lanner.wire.http_exchange import Exchange, HttpAnalyzer
from lanner.wire.websocket import WsAnalyzer, WsMessage, negotiated_deflate


class Analysis(Protocol):
    """What an analyzing relay end shows its bytes to."""

    def client_data(self, data: bytes) -> None: ...

    def server_data(self, data: bytes) -> None: ...

    def client_eof(self) -> None: ...

    def server_eof(self) -> None: ...

    def closed(self) -> None: ...


def is_websocket(exchange: Exchange) -> bool:
    """A 101 answering an `Upgrade: websocket` request (RFC 6455 section 4.1)."""
    response = exchange.response
    if response is None or response.status != 101 or not exchange.request.upgrade:
        return False
    upgrade = header_value(exchange.request.headers, b"upgrade") or b""
    return b"websocket" in upgrade.lower()


def answer(exchange: Exchange) -> tuple[int | None, float | None]:
    """(final status, seconds from the request to the response's first byte) for the metrics."""
    response = exchange.response
    if response is None:
        return None, None
    began = exchange.response_started
    return response.status, (began - exchange.started if began is not None else None)


class WsTap:
    """An upgraded connection's WebSocket messages, recorded as flows under its upgrade exchange."""

    __slots__ = ("conn", "recorder", "origin", "analyzer", "target", "host_header")

    def __init__(self, conn: Conn, recorder: Recorder, origin: Origin, upgrade: Exchange) -> None:
        assert upgrade.response is not None
        extensions = header_value(upgrade.response.headers, b"sec-websocket-extensions")
        self.conn = conn
        self.recorder = recorder
        self.origin = origin
        self.analyzer: WsAnalyzer | None = WsAnalyzer(negotiated_deflate(extensions), recorder.max_body)
        self.target = upgrade.request.target
        self.host_header = header_value(upgrade.request.headers, b"host")

    def client_data(self, data: bytes) -> None:
        if self.analyzer is not None:
            self._record(self.analyzer.client_data(data, time.time()))

    def server_data(self, data: bytes) -> None:
        if self.analyzer is not None:
            self._record(self.analyzer.server_data(data, time.time()))

    def client_eof(self) -> None:
        pass

    def server_eof(self) -> None:
        pass

    def closed(self) -> None:
        self.analyzer = None

    def _record(self, messages: list[WsMessage]) -> None:
        for message in messages:
            self.recorder.message(
                WsItem(
                    self.origin, self.target, self.host_header, message.from_client, int(message.opcode),
                    message.data, message.size, message.compressed, message.truncated, message.time,
                    message.close_code, message.close_reason,
                )
            )  # fmt: skip
        analyzer = self.analyzer
        if analyzer is not None and analyzer.stopped is not None:
            self.conn.note("analysis", f"websocket: {analyzer.stopped}")
            self.analyzer = None


log = logging.getLogger("lanner")


class Tap:
    """One connection's analyzer and where its exchanges go."""

    __slots__ = ("conn", "analyzer", "recorder", "origin", "ws")

    def __init__(self, conn: Conn, recorder: Recorder, origin: Origin, max_body: int) -> None:
        limits = conn.listener.limits
        self.conn = conn
        self.recorder = recorder
        self.origin = origin
        self.analyzer: HttpAnalyzer | None = HttpAnalyzer(
            max_body, limits.max_header_bytes, limits.max_request_line
        )
        self.ws: WsTap | None = None  # after a WebSocket upgrade

    def client_data(self, data: bytes) -> None:
        if self.ws is not None:
            self.ws.client_data(data)
        elif self.analyzer is not None:
            self._emit(self.analyzer.client_data, data)

    def server_data(self, data: bytes) -> None:
        if self.ws is not None:
            self.ws.server_data(data)
        elif self.analyzer is not None:
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
        if self.ws is not None:
            self.ws.closed()

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
        upgrade = None
        if exchanges:
            self.conn.requests += len(exchanges)
            metrics = self.conn.listener.metrics
            for exchange in exchanges:
                metrics.answered(*answer(exchange))
                self.recorder.exchange(exchange, self.origin)
                if exchange.upgraded and is_websocket(exchange):
                    upgrade = exchange
        analyzer = self.analyzer
        if analyzer is not None and analyzer.stopped is not None and analyzer.stopped != "connection closed":
            self.analyzer = None
            if upgrade is None:
                self.conn.note("analysis", analyzer.stopped)
                return
            self.ws = WsTap(self.conn, self.recorder, self.origin, upgrade)
            from_client, from_server = analyzer.leftover()
            if from_server:
                self.ws.server_data(from_server)
            if from_client:
                self.ws.client_data(from_client)

    def _broken(self, exc: Exception) -> None:
        log.error("analysis failed; relaying goes on", exc_info=exc, extra={"fields": {"id": self.conn.id}})
        self.conn.note("analysis", f"failed: {exc!r}")
        self.analyzer = None


class AnalyzedClientEnd(ClientEnd):
    __slots__ = ()
    tap: Analysis

    def __init__(self, conn: Conn, tap: Analysis) -> None:
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
    __slots__ = ()
    tap: Analysis

    def __init__(self, conn: Conn, tap: Analysis) -> None:
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
