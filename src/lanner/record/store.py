"""What every flow store offers (SQLite today, PostgreSQL next).

A store is used from one thread at a time: the recorder's writer thread owns
one instance for writing, and each reader (CLI, admin API) opens its own.
Stores never see the event loop. SQL and schema live in one module per
backend; nothing outside the backend builds SQL.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

from lanner.record.model import ConnectionRecord, FlowRecord, GroupStats, StoreStats

if TYPE_CHECKING:
    from lanner.record.filter import Query


class StoreError(Exception):
    """The store cannot do what was asked (unwritable, full, locked, corrupted)."""


class StoreNotCreated(StoreError):
    """A reader found the file the writer is creating, before its schema is in (nothing to read yet)."""


class Store(Protocol):
    def write(self, connections: Sequence[ConnectionRecord], flows: Sequence[FlowRecord]) -> None:
        """Write one batch in one transaction; assigns `FlowRecord.id`. Raises StoreError."""

    def flows(self, query: Query | None, limit: int = 100, before_id: int | None = None) -> list[FlowRecord]:
        """Flows matching `query`, newest first, with ids below `before_id` (the cursor).

        Bodies are left empty in these summaries (sizes and flags are set);
        `get` returns a flow whole.
        """

    def flows_after(self, query: Query | None, after_id: int, limit: int = 1000) -> list[FlowRecord]:
        """Flows matching `query` with ids above `after_id`, oldest first (for --follow and export)."""

    def count(self, query: Query | None) -> int: ...

    def get(self, flow_id: int) -> FlowRecord | None:
        """One flow with its bodies (as captured: still content-encoded, head+tail if truncated)."""

    def connection(self, uid: str) -> ConnectionRecord | None: ...

    def connections(self, limit: int = 100, before_ended: float | None = None) -> list[ConnectionRecord]:
        """Connection records, most recently ended first, ended before `before_ended` (the cursor)."""

    def stats(self, query: Query | None) -> StoreStats: ...

    def group_stats(self, query: Query | None, by: str) -> list[GroupStats]:
        """Per Redis command (`by="command"`) or per SQL fingerprint (`by="fingerprint"`), busiest first."""

    def prune(self, max_age: float | None, max_bytes: int | None, now: float) -> int:
        """Delete the oldest flows and connections past either bound, in small batches; the count."""

    def close(self) -> None: ...


WS_MESSAGES_SHOWN = 10_000  # per upgrade, in `flows show`, HAR export and the admin API


def websocket_messages(store: Store, upgrade: FlowRecord, limit: int = WS_MESSAGES_SHOWN) -> list[FlowRecord]:
    """The WebSocket messages recorded on an upgrade's connection, oldest first, whole."""
    from lanner.record.filter import parse

    found = store.flows(parse(f'conn:"{upgrade.conn_uid}" proto:websocket'), limit=limit)
    whole = (store.get(summary.id) for summary in sorted(found, key=lambda summary: summary.id))
    return [record for record in whole if record is not None]
