"""One accepted client connection: its record, its slot, its log line, its metrics.

A `Conn` is created when a listener admits a client and ends exactly once,
when the client transport is lost. Whatever decides how the connection ended
calls `set_outcome` (the first call wins); `ended` writes the log line and
frees the listener slot.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

from lanner import logs
from lanner.errors import Outcome
from lanner.route.params import NO_PARAMS, RouteParams

if TYPE_CHECKING:
    from lanner.net.listener import ListenerRuntime
    from lanner.net.splice import SpliceRelay


class Conn:
    __slots__ = (
        "id",
        "listener",
        "transport",
        "upstream",
        "client",
        "protocol",
        "user",
        "account",
        "params",
        "dest",
        "sni",
        "up",
        "down",
        "requests",
        "started",
        "outcome",
        "detail",
        "in_handshake",
        "handshake_seconds",
        "notes",
        "splice",
        "closed",
        "_seen",
        "_quiet_since",
    )

    def __init__(self, conn_id: int, listener: ListenerRuntime, transport: asyncio.Transport) -> None:
        self.id = conn_id
        self.listener = listener
        self.transport = transport
        self.upstream: asyncio.BaseTransport | None = None
        self.client: tuple[Any, ...] | None = transport.get_extra_info("peername")
        self.protocol = "-"
        self.user: str | None = None  # the username as presented (may carry routing parameters)
        self.account: str | None = None  # the verified account it names: what rules match
        self.params: RouteParams = NO_PARAMS  # routing parameters the username carried
        self.dest: str | None = None
        self.sni: str | None = None  # the TLS server name a tunnel's first bytes carried
        self.up = 0  # bytes client -> upstream
        self.down = 0  # bytes upstream -> client
        self.requests = 0
        self.started = time.monotonic()
        self.outcome: Outcome | None = None
        self.detail = ""
        self.in_handshake = True
        self.handshake_seconds: float | None = None  # from accept to the first handshake_done
        self.notes: dict[str, Any] | None = None
        self.splice: SpliceRelay | None = None
        self.closed = False  # ended() ran
        self._seen = 0
        self._quiet_since = self.started
        listener.metrics.opened()

    def set_outcome(self, outcome: Outcome, detail: str = "") -> None:
        if self.outcome is None:
            self.outcome = outcome
            self.detail = detail

    def note(self, key: str, value: Any) -> None:
        """An extra field for the connection's log line."""
        if self.notes is None:
            self.notes = {}
        self.notes[key] = value

    def handshake_done(self) -> None:
        self.in_handshake = False
        if self.handshake_seconds is None:  # only the first (a kept-alive connection's next requests,
            # an intercepted tunnel's TLS handshake with lanner, end "handshakes" too)
            self.handshake_seconds = time.monotonic() - self.started
            self.listener.metrics.handshake(self.handshake_seconds)

    def abort(self, outcome: Outcome, detail: str = "") -> None:
        """Close both sides now (timeouts, shutdown, a broken peer)."""
        self.set_outcome(outcome, detail)
        if self.splice is not None:
            self.splice.close(abort=True)  # its descriptor copies would keep the sockets open
        if self.upstream is not None:
            self.upstream.abort()  # type: ignore[attr-defined]
        self.transport.abort()

    def check_timeouts(self, now: float, handshake_timeout: float, idle_timeout: float) -> None:
        """Called by the listener's sweeper: no per-connection timers on the data path."""
        if self.in_handshake:
            if now - self.started >= handshake_timeout:
                self.abort(Outcome.HANDSHAKE_TIMEOUT, "client did not finish its handshake in time")
        elif self.idle_for(now) >= idle_timeout:
            self.abort(Outcome.IDLE_TIMEOUT, f"no bytes for {idle_timeout:g}s")

    def idle_for(self, now: float) -> float:
        """Seconds since bytes last moved, sampled by the listener's sweeper."""
        seen = self.up + self.down + self.requests
        if seen != self._seen:
            self._seen = seen
            self._quiet_since = now
        return now - self._quiet_since

    def ended(self) -> None:
        """Once, whichever of a connection's owners sees it end first."""
        if self.closed:
            return
        self.closed = True
        if self.splice is not None:
            self.splice.close()
        if self.upstream is not None:
            self.upstream.close()
        self.listener.release(self)
        self.listener.metrics.closed((self.outcome or Outcome.OK).value, self.up, self.down)
        recorder = self.listener.services.recorder
        if recorder is not None:
            recorder.connection(self)
        if self.listener.services.log_connections:
            logs.record("lanner.conn", "connection", self.fields())

    @property
    def uid(self) -> str:
        """The correlation id: the same in the log line, the flow records and the admin API."""
        return f"{self.listener.services.tag}.{self.id}"

    @property
    def client_text(self) -> str:
        client = self.client
        return f"{client[0]}:{client[1]}" if client else "-"

    def fields(self) -> dict[str, Any]:
        fields = {
            "id": self.uid,
            "listener": self.listener.name,
            "client": self.client_text,
            "proto": self.protocol,
            "user": self.user,
            "dest": self.dest,
            "sni": self.sni,
            "up": self.up,
            "down": self.down,
            "requests": self.requests or None,
            "duration": round(time.monotonic() - self.started, 3),
            "outcome": (self.outcome or Outcome.OK).value,
            "detail": self.detail or None,
        }
        if self.notes:
            fields.update(self.notes)
        worker = self.listener.services.worker
        if worker is not None:
            fields["worker"] = worker
        return fields
