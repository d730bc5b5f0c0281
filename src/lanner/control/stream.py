"""The live stream: new flows and connection events pushed to WebSocket clients as they happen.

Connection events come straight from this process's listeners (`opened`,
`closed`). Flows are written by the recorder's writer process(es), so the hub
looks for new ones in the store every `admin.stream_interval` seconds, with
each client's filter applied by the store, while anyone is watching.

A client that reads slower than traffic arrives is disconnected (close code
1008) once `admin.stream_buffer` messages wait for it: the proxy never waits
for a stream client and never buffers for one without bound. Drops are
counted and logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import deque
from collections.abc import Callable
from typing import Any, TypeVar

from starlette.websockets import WebSocket, WebSocketDisconnect

from lanner.control import views
from lanner.control.store_reads import StoreReader
from lanner.net.conn import Conn
from lanner.net.tasks import spawn
from lanner.record.filter import Query
from lanner.record.sqlite import SqliteStore
from lanner.record.store import StoreError

log = logging.getLogger("lanner.admin")

T = TypeVar("T")

FLOWS_PER_LOOK = 500
SLOW_CLIENT = 1008  # policy violation: the closest standard code to "you read too slowly"


class Subscriber:
    __slots__ = ("socket", "query", "filter", "pending", "wake", "last_flow", "overflowed")

    def __init__(self, socket: WebSocket, query: Query | None, text: str) -> None:
        self.socket = socket
        self.query = query
        self.filter = text
        self.pending: deque[str] = deque()
        self.wake = asyncio.Event()
        self.last_flow: int | None = 0  # the newest flow id looked at; None: not known yet
        self.overflowed = False


class StreamHub:
    def __init__(self, reader: StoreReader | None, buffer: int, interval: float) -> None:
        self.reader = reader
        self.buffer = buffer
        self.interval = interval
        self.subscribers: set[Subscriber] = set()
        self.dropped_clients = 0
        self._poller: asyncio.Task[None] | None = None

    # -- from the listeners (on the loop, on the data path: cheap when nobody watches) --

    def connection_opened(self, conn: Conn) -> None:
        if self.subscribers:
            self._publish(
                {"type": "connection", "event": "opened", "connection": views.live_connection(conn)}
            )

    def connection_closed(self, conn: Conn) -> None:
        if self.subscribers:
            event = views.live_connection(conn)
            event["outcome"] = conn.outcome.value if conn.outcome is not None else "ok"
            event["detail"] = conn.detail or None
            self._publish({"type": "connection", "event": "closed", "connection": event})

    def _publish(self, message: dict[str, Any], only: Subscriber | None = None) -> None:
        text = json.dumps(message)
        for subscriber in [only] if only is not None else list(self.subscribers):
            self._offer(subscriber, text)

    def _offer(self, subscriber: Subscriber, text: str) -> None:
        if subscriber.overflowed:
            return
        if len(subscriber.pending) >= self.buffer:
            subscriber.overflowed = True  # its sender closes the socket
            self.dropped_clients += 1
            client = subscriber.socket.client
            log.warning(
                "live stream client too slow: disconnected",
                extra={
                    "fields": {
                        "client": f"{client.host}:{client.port}" if client else None,
                        "buffer": self.buffer,
                    }
                },
            )
        else:
            subscriber.pending.append(text)
        subscriber.wake.set()

    # -- one WebSocket client --

    async def serve(self, socket: WebSocket, query: Query | None, text: str) -> None:
        """Stream to an accepted socket until the client leaves or falls behind."""
        subscriber = Subscriber(socket, query, text)
        if self.reader is not None:
            try:
                subscriber.last_flow = await self.reader.read(_last_id) or 0  # None: no store yet
            except StoreError:
                subscriber.last_flow = None  # unknown: the first look that can read starts at the newest
        self.subscribers.add(subscriber)
        self._publish({"type": "hello", "filter": text}, only=subscriber)
        if self._poller is None and self.reader is not None:
            self._poller = spawn(self._poll(), "admin-stream-flows")
        receiver = spawn(_drain_incoming(socket), "admin-stream-receive")
        try:
            await self._send(subscriber, receiver)
        except (WebSocketDisconnect, OSError):
            pass  # the client left mid-send (uvicorn's ClientDisconnected is an OSError)
        finally:
            receiver.cancel()
            self.subscribers.discard(subscriber)
            subscriber.pending.clear()

    async def _send(self, subscriber: Subscriber, receiver: asyncio.Task[None]) -> None:
        socket = subscriber.socket
        while not receiver.done():
            while subscriber.pending and not subscriber.overflowed:
                await socket.send_text(subscriber.pending.popleft())
            if subscriber.overflowed:
                subscriber.pending.clear()
                # The close frame waits behind what the client has not read: try briefly. Either
                # way this client gets nothing more; uvicorn's ping timeout ends a dead socket.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(
                        socket.close(SLOW_CLIENT, "too slow: live stream buffer full"), 1.0
                    )
                return
            subscriber.wake.clear()
            waiter = spawn(subscriber.wake.wait(), "admin-stream-wait")
            await asyncio.wait({waiter, receiver}, return_when=asyncio.FIRST_COMPLETED)
            waiter.cancel()

    # -- flows, from the store --

    async def _poll(self) -> None:
        assert self.reader is not None
        try:
            while self.subscribers:
                await asyncio.sleep(self.interval)
                for subscriber in list(self.subscribers):
                    if subscriber.overflowed:
                        continue
                    try:
                        await self._look(subscriber)
                    except Exception:  # a bug in one look must not end the stream for everyone
                        log.exception("live stream: looking for new flows failed")
        finally:
            self._poller = None

    async def _look(self, subscriber: Subscriber) -> None:
        assert self.reader is not None
        after, query = subscriber.last_flow, subscriber.query
        if after is None:
            subscriber.last_flow = await _read_safely(self.reader, _last_id)
            return
        found = await _read_safely(
            self.reader, lambda store: (_last_id(store), store.flows_after(query, after, FLOWS_PER_LOOK))
        )
        if found is None:
            return
        newest, flows = found
        for record in flows:
            self._offer(subscriber, json.dumps({"type": "flow", "flow": views.summary(record)}))
        if len(flows) == FLOWS_PER_LOOK:
            subscriber.last_flow = flows[-1].id  # more are waiting: the next look continues here
        else:
            subscriber.last_flow = max(newest, flows[-1].id if flows else 0, after)


async def _read_safely(reader: StoreReader, query: Callable[[SqliteStore], T]) -> T | None:
    """A store read for the stream: an unreadable store means nothing new this time (logged)."""
    try:
        return await reader.read(query)
    except StoreError as exc:
        log.warning("live stream: store not readable", extra={"fields": {"error": str(exc)}})
        return None


def _last_id(store: SqliteStore) -> int:
    newest = store.flows(None, limit=1)
    return newest[0].id if newest else 0


async def _drain_incoming(socket: WebSocket) -> None:
    """Read (and ignore) what the client sends, to notice when it leaves."""
    try:
        while (await socket.receive())["type"] != "websocket.disconnect":
            pass
    except (WebSocketDisconnect, RuntimeError):
        return
