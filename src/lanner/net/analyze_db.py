"""Redis and PostgreSQL analysis of relayed connections, and deciding what a connection speaks.

`tap_for` decides once per connection, before its bytes flow: the listener's
`analyze` setting, else the destination port (`analysis.ports`), else a
`SniffTap` that looks at the client's first bytes and then either hands the
connection to the right analyzer or gives the relay back its plain ends
(splice included): a connection nobody can analyze costs one look.

A `WireTap` feeds one sans-I/O analyzer (wire/resp.py, wire/postgres.py) and
queues its events for the recorder; like the HTTP `Tap`, a protocol error
stops analysis (noted on the connection), and the analyzer's own crash
boundary logs once and does the same; either way (and for an encrypted
PostgreSQL session) the ends go back to the plain relay. Nothing here may
change, delay or drop a relayed byte: analysis only looks.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from lanner.config.analysis import AnalysisConfig, Protocol
from lanner.net import splice
from lanner.net.analyze import Analysis, AnalyzedClientEnd, AnalyzedUpstreamEnd, Tap
from lanner.net.conn import Conn
from lanner.net.relay import ClientEnd, UpstreamEnd
from lanner.record.convert import DbItem, Origin
from lanner.record.recorder import Recorder
from lanner.wire import tls_hello
from lanner.wire.postgres import AuthenticationCompleted, CancelRequested, PgAnalyzer, SessionStarted
from lanner.wire.resp import RespAnalyzer
from lanner.wire.sniff import ENOUGH, sniff

if TYPE_CHECKING:
    from lanner.net.listener import ListenerRuntime

log = logging.getLogger("lanner")

DATABASES = ("redis", "postgres")
HELD_SERVER_BYTES = 64 * 1024  # what a server may send before its client speaks, while sniffing

# Backend (pid, key) -> the uid of the connection whose session it is, so that a CancelRequest
# arriving on its own connection names the session it cancels (this process's sessions only).
_sessions: dict[tuple[int, bytes], str] = {}


class WireTap:
    """One connection's Redis or PostgreSQL analyzer, and where its events go."""

    __slots__ = ("conn", "recorder", "origin", "analyzer", "session", "database", "ends", "spliceable")

    def __init__(
        self, conn: Conn, recorder: Recorder, origin: Origin, analyzer: Any, spliceable: bool = True
    ) -> None:
        self.conn = conn
        self.recorder = recorder
        self.origin = origin
        self.analyzer: RespAnalyzer | PgAnalyzer | None = analyzer
        self.session: tuple[int, bytes] | None = None  # a PostgreSQL backend's (pid, key)
        self.database: str | None = None
        self.ends: list[ClientEnd | UpstreamEnd] = []  # given back to the plain relay when analysis stops
        self.spliceable = spliceable

    def client_data(self, data: bytes) -> None:
        if self.analyzer is not None:
            self._guard(self.analyzer.client_data, data)

    def server_data(self, data: bytes) -> None:
        if self.analyzer is not None:
            self._guard(self.analyzer.server_data, data)

    def client_eof(self) -> None:
        pass

    def server_eof(self) -> None:
        pass

    def closed(self) -> None:
        analyzer = self.analyzer
        if analyzer is not None:
            try:
                self._record(analyzer.close(time.time()))
            except Exception as exc:
                self._broken(exc)
            self.analyzer = None
        if self.session is not None and _sessions.get(self.session) == self.origin.conn_uid:
            del _sessions[self.session]

    def _guard(self, feed: Callable[[bytes, float], list[Any]], data: bytes) -> None:
        try:
            self._record(feed(data, time.time()))
        except Exception as exc:  # analysis's own crash boundary: the relay goes on
            self._broken(exc)

    def _record(self, events: list[Any]) -> None:
        if events:
            recorder, origin = self.recorder, self.origin
            for event in events:
                kind = type(event)
                if kind is SessionStarted:
                    self.database = event.database
                elif kind is AuthenticationCompleted:
                    self._started(event)
                cancels = None
                if kind is CancelRequested:
                    cancels = _sessions.get((event.backend_pid, event.backend_key))
                recorder.db_event(DbItem(origin, event, self.database, cancels))
            self.conn.requests += len(events)
        analyzer = self.analyzer
        if analyzer is None:
            return
        if analyzer.stopped is not None:
            self._stop(analyzer.stopped)
        elif getattr(analyzer, "encrypted", False):  # PostgreSQL over TLS or GSS: nothing more to see
            self._stop("encrypted session")

    def _stop(self, why: str) -> None:
        self.analyzer = None
        self.conn.note("analysis", why)
        release(self.conn, self.ends, self.spliceable)
        self.ends = []

    def _started(self, event: AuthenticationCompleted) -> None:
        if event.backend_pid is not None and event.backend_key is not None:
            self.session = (event.backend_pid, event.backend_key)
            _sessions[self.session] = self.origin.conn_uid

    def _broken(self, exc: Exception) -> None:
        log.error("analysis failed; relaying goes on", exc_info=exc, extra={"fields": {"id": self.conn.id}})
        self._stop(f"failed: {exc!r}")


class SniffTap:
    """Waits for the client's first bytes, then analyzes as what they show, or steps aside."""

    __slots__ = ("conn", "build", "tap", "head", "server_held", "ends", "spliceable")

    def __init__(self, conn: Conn, build: Callable[[Protocol], Analysis | None], spliceable: bool) -> None:
        self.conn = conn
        self.build = build
        self.tap: Analysis | None = None
        self.head = b""
        self.server_held: list[bytes] = []  # a server that speaks first waits for the verdict (bounded)
        self.ends: list[ClientEnd | UpstreamEnd] = []
        self.spliceable = spliceable

    def client_data(self, data: bytes) -> None:
        if self.tap is not None:
            self.tap.client_data(data)
            return
        self.head += data
        verdict = sniff(self.head)
        if verdict == "more" and len(self.head) < ENOUGH:
            return
        if tls_hello.looks_like_tls(self.head):
            self.conn.sni = tls_hello.server_name(self.head)
        tap = self.build(verdict) if verdict in ("redis", "postgres", "http") else None
        if tap is None:
            self.conn.note("analysis", "not recognised: relayed unanalyzed")
            self.release()
            return
        self.tap = tap
        for end in self.ends:
            end.tap = tap
        if isinstance(tap, WireTap):
            tap.ends, self.ends = self.ends, []
        head, self.head = self.head, b""
        tap.client_data(head)
        for chunk in self.server_held:
            tap.server_data(chunk)
        self.server_held = []

    def server_data(self, data: bytes) -> None:
        if self.tap is not None:
            self.tap.server_data(data)
        elif sum(map(len, self.server_held)) + len(data) <= HELD_SERVER_BYTES:
            self.server_held.append(data)
        else:  # a server-first protocol (SSH, SMTP ...): nothing lanner analyzes
            self.conn.note("analysis", "the server spoke first: relayed unanalyzed")
            self.release()

    def client_eof(self) -> None:
        if self.tap is not None:
            self.tap.client_eof()

    def server_eof(self) -> None:
        if self.tap is not None:
            self.tap.server_eof()

    def closed(self) -> None:
        if self.tap is not None:
            self.tap.closed()
        self.ends, self.server_held, self.head = [], [], b""

    def release(self) -> None:
        """Back to the plain relay ends (and the splice relay, where the connection may use it)."""
        release(self.conn, self.ends, self.spliceable)
        self.ends, self.server_held, self.head = [], [], b""


def release(conn: Conn, ends: list[ClientEnd | UpstreamEnd], spliceable: bool) -> None:
    """Give a connection's analyzing ends back to the plain relay (splicing again where it may)."""
    after = conn.listener.services.splice_after_bytes
    budget = after if spliceable and splice.AVAILABLE and after > 0 else -1
    for end in ends:
        if end.lost:
            continue
        _become(end, ClientEnd if isinstance(end, ClientEnd) else UpstreamEnd)
        end.splice_budget = budget


def protocol_for(listener: ListenerRuntime, port: int, tunnel: bool) -> Protocol | None:
    """What to analyze a connection to `port` as; None: sniff it."""
    analysis: AnalysisConfig = listener.services.analysis
    if tunnel:
        if analysis.tunnels == "none":
            return "none"
        mapped = analysis.ports.get(port)
        if mapped is not None:
            return mapped
        return None if analysis.tunnels == "auto" else "none"
    setting = listener.analyze
    if setting != "auto":
        return setting
    mapped = analysis.ports.get(port)
    if mapped is not None:
        return mapped
    return None if analysis.sniff else "none"


def tap_for(
    listener: ListenerRuntime,
    conn: Conn,
    host: str,
    port: int,
    tunnel: bool = False,
    spliceable: bool = True,
    scheme: str = "http",
) -> Analysis | None:
    """The analysis a connection to host:port gets (None: relayed plainly)."""
    recorder = listener.recorder
    if recorder is None:
        return None
    protocol = protocol_for(listener, port, tunnel)
    if protocol == "none":
        return None

    def build(kind: Protocol) -> Analysis | None:
        assert recorder is not None
        origin = Origin(
            recorder.uid(conn), listener.name, conn.client_text, conn.user,
            scheme if kind == "http" else kind, host, port,
        )  # fmt: skip
        analysis = listener.services.analysis
        try:
            if kind == "http":
                return Tap(conn, recorder, origin, recorder.max_body)
            if kind == "redis":
                return WireTap(conn, recorder, origin, _redis(analysis), spliceable)
            if kind == "postgres":
                return WireTap(conn, recorder, origin, _postgres(analysis), spliceable)
        except ValueError as exc:  # limits an analyzer refuses: relay unanalyzed, say why once per connection
            log.error("analysis not started", extra={"fields": {"id": conn.id, "reason": str(exc)}})
            conn.note("analysis", f"not started: {exc}")
        return None

    if protocol is None:
        return SniffTap(conn, build, spliceable)
    return build(protocol)


def _redis(analysis: AnalysisConfig) -> RespAnalyzer:
    config = analysis.redis
    return RespAnalyzer(
        max_arg=config.max_arg,
        max_args=config.max_args,
        max_summary=config.max_summary,
        redact_commands=frozenset(config.redact_commands),
        redact_keys=tuple(config.redact_keys),
    )


def _postgres(analysis: AnalysisConfig) -> PgAnalyzer:
    config = analysis.postgres
    return PgAnalyzer(
        max_sql=int(config.max_sql),
        max_param=config.max_param,
        max_params=config.max_params,
        max_message=int(analysis.max_message),
        redact_params=config.redact_params,
    )


def _become(end: ClientEnd | UpstreamEnd, kind: type[ClientEnd] | type[UpstreamEnd]) -> None:
    """Change a relay end's class (same layout: relay._End) and tell its transport.

    uvloop keeps the protocol's bound `data_received` from `set_protocol`;
    setting the protocol again makes it call the new class's method.
    """
    end.__class__ = kind
    transport = end.transport
    if transport is not None and not transport.is_closing():
        transport.set_protocol(end)


def analyzed_ends(conn: Conn, tap: Analysis, upstream: UpstreamEnd) -> AnalyzedClientEnd:
    """Make a dialed upstream end an analyzing one and return the client end to link with it."""
    _become(upstream, AnalyzedUpstreamEnd)
    upstream.tap = tap
    upstream.splice_budget = -1
    client = AnalyzedClientEnd(conn, tap)
    if isinstance(tap, SniffTap | WireTap):
        tap.ends = [client, upstream]
    return client
