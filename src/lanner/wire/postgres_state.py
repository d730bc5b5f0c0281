"""The mutable records behind `StatementCompleted`: statements, portals, results, pending messages.

`Conversation` is what `postgres_requests` (client messages) and `postgres_responses`
(server messages) share about one connection; each `Result` becomes its frozen
event at the ReadyForQuery that follows it. Nothing here reads bytes. Every
collection is bounded: `max_pending` for messages awaiting an answer plus results
awaiting their ReadyForQuery, `max_statements` for named statements and portals.
"""

from __future__ import annotations

from collections import deque
from typing import Final, TypeVar

from lanner.wire.errors import ProtocolError
from lanner.wire.postgres_events import CopySummary, PgError, PgEvent, StatementCompleted
from lanner.wire.postgres_messages import ParamLimits, tag_rows

QUERY: Final = ord("Q")
PARSE: Final = ord("P")
BIND: Final = ord("B")
DESCRIBE: Final = ord("D")
EXECUTE: Final = ord("E")
CLOSE: Final = ord("C")
SYNC: Final = ord("S")
FUNCTION_CALL: Final = ord("F")
TERMINATORS: Final = frozenset({QUERY, SYNC, FUNCTION_CALL})  # the client messages ReadyForQuery answers


class Statement:
    """A prepared statement as a Parse created it; described later by the server."""

    __slots__ = ("name", "sql", "truncated", "param_types", "columns")

    def __init__(
        self, name: str, sql: str = "", truncated: bool = False, param_types: tuple[int, ...] = ()
    ) -> None:
        self.name = name
        self.sql = sql
        self.truncated = truncated
        self.param_types = param_types
        self.columns: tuple[tuple[str, int], ...] | None = None  # None until a Describe is answered


class Portal:
    """A Bind of a statement to parameters."""

    __slots__ = ("name", "statement", "params", "columns", "terminators")

    def __init__(
        self, name: str, statement: Statement, params: tuple[str | None, ...], terminators: int
    ) -> None:
        self.name = name
        self.statement = statement
        self.params = params
        self.columns: tuple[tuple[str, int], ...] | None = None
        self.terminators = terminators  # Syncs and Queries sent before it: it dies with the transaction


class Result:
    """One statement's result as it comes in."""

    __slots__ = (
        "sql",
        "truncated",
        "part",
        "kind",
        "statement",
        "portal_name",
        "params",
        "started",
        "portal",
        "prepared",
        "columns",
        "command_tag",
        "rows",
        "data_rows",
        "error",
        "notices",
        "ended",
        "skipped",
        "suspended",
        "empty",
        "copy_direction",
        "copy_format",
        "copy_messages",
        "copy_bytes",
    )

    def __init__(
        self,
        sql: str,
        truncated: bool,
        part: int,
        kind: str,
        started: float,
        portal: Portal | None = None,
        params: tuple[str | None, ...] = (),
    ) -> None:
        self.sql = sql
        self.truncated = truncated
        self.part = part
        self.kind = kind
        self.started = started
        self.portal = portal
        self.statement = portal.statement.name if portal is not None else ""
        self.portal_name = portal.name if portal is not None else ""
        self.params = params
        self.prepared: Statement | None = None
        self.columns: tuple[tuple[str, int], ...] = ()
        self.command_tag: str | None = None
        self.rows: int | None = None
        self.data_rows = 0
        self.error: PgError | None = None
        self.notices: list[PgError] | None = None
        self.ended: float | None = None
        self.skipped = False
        self.suspended = False
        self.empty = False
        self.copy_direction: str | None = None
        self.copy_format = "text"
        self.copy_messages = 0
        self.copy_bytes = 0

    def event(self, tx_status: str | None) -> StatementCompleted:
        columns, param_types = self._description()
        return StatementCompleted(
            self.sql,
            self.part,
            self.kind,
            self.statement,
            self.portal_name,
            self.params,
            param_types,
            columns,
            self.command_tag,
            self.rows,
            self.data_rows,
            self.error,
            tuple(self.notices) if self.notices else (),
            tx_status,
            self.started,
            self.ended,
            self.skipped,
            self.suspended,
            self.empty,
            None if self.copy_direction is None else self._copy(self.copy_direction),
            self.truncated,
        )

    def _description(self) -> tuple[tuple[tuple[str, int], ...], tuple[int, ...]]:
        # Read at ReadyForQuery: a Describe answered after the Execute was sent still counts.
        portal = self.portal
        if portal is not None:
            statement = portal.statement
            columns = portal.columns if portal.columns is not None else statement.columns
            return columns or (), statement.param_types
        if self.prepared is not None:
            return self.prepared.columns or (), self.prepared.param_types
        return self.columns, ()

    def _copy(self, direction: str) -> CopySummary:
        tag = self.command_tag
        rows = tag_rows(tag) if tag is not None and tag.startswith("COPY") else None
        return CopySummary(direction, self.copy_format, self.copy_messages, self.copy_bytes, rows)


class Pending:
    """A client message that the server has yet to answer."""

    __slots__ = (
        "kind",
        "time",
        "statement",
        "portal",
        "result",
        "sql",
        "truncated",
        "next_part",
        "prepares",
        "error",
    )

    def __init__(self, kind: int, time: float) -> None:
        self.kind = kind
        self.time = time  # for a Query: when its current statement started
        self.statement: Statement | None = None  # Parse, Describe of a statement
        self.portal: Portal | None = None  # Describe of a portal, Execute
        self.result: Result | None = None  # Query, Execute, FunctionCall
        self.sql = ""  # Query: its text, for each of its results
        self.truncated = False
        self.next_part = 0  # Query: the index of the next result, 0 once no more can come
        self.prepares: list[tuple[Statement, float]] | None = None  # Sync, Query: statements prepared only
        self.error: tuple[PgError, float, Statement | None] | None = None  # Sync: an error no Execute took


_Named = TypeVar("_Named", Statement, Portal)


class Conversation:
    """The state both directions of one connection share."""

    def __init__(
        self,
        events: list[PgEvent],
        limits: ParamLimits,
        max_sql: int,
        max_pending: int,
        max_statements: int,
        max_notices: int,
    ) -> None:
        self.events = events
        self.limits = limits
        self.max_sql = max_sql
        self.max_pending = max_pending
        self.max_statements = max_statements
        self.max_notices = max_notices
        self.pending: deque[Pending] = deque()  # client messages awaiting their answer, in order
        self.done: list[Result] = []  # completed results awaiting ReadyForQuery
        self.statements: dict[str, Statement] = {}
        self.portals: dict[str, Portal] = {}
        # Statements prepared since the last Sync and not bound in it, when they were.
        self.group: dict[str, tuple[Statement, float]] | None = None
        self.bound: set[str] = set()  # statements bound since the last Sync
        # Prepared in the group and flushed before any Bind (asyncpg: Parse, Describe, Flush):
        # a round trip of its own, reported as a prepare even when the group then executes it.
        self.flushed: dict[str, tuple[Statement, float]] = {}
        self.described_at: dict[str, float] = {}  # when such a prepare's Describe was answered
        self.discarding = False  # an error in extended mode: the server skips messages up to Sync
        # That error, when no Execute took it: the failed Parse's or Describe's statement.
        self.unclaimed: tuple[PgError, float, Statement | None] | None = None
        self.copy_in = False  # the server reads COPY data from the client (and ignores Syncs)
        self.client_copy_messages = 0
        self.client_copy_bytes = 0
        self.terminators = 0  # Syncs, Queries and FunctionCalls sent
        self.answered = 0  # ReadyForQuery messages received

    def send(self, message: Pending) -> None:
        if len(self.pending) + len(self.done) >= self.max_pending:
            raise ProtocolError(f"more than {self.max_pending} messages await an answer")
        self.pending.append(message)

    def finish(self, result: Result) -> None:
        if len(self.done) >= self.max_pending:
            raise ProtocolError(f"more than {self.max_pending} results await ReadyForQuery")
        self.done.append(result)

    def end_copy(self, result: Result) -> None:
        """A COPY ended: the client's CopyData since the server's copy response were its own."""
        if result.copy_direction != "out":
            result.copy_messages += self.client_copy_messages
            result.copy_bytes += self.client_copy_bytes
            self.client_copy_messages = self.client_copy_bytes = 0
            self.copy_in = False

    def remember(self, table: dict[str, _Named], name: str, value: _Named) -> None:
        if name not in table and len(table) >= self.max_statements:
            del table[next(iter(table))]  # the oldest: a client that never closes its statements
        table[name] = value

    def take_group(self) -> list[tuple[Statement, float]] | None:
        """End the group of extended messages: the statements it only prepared."""
        if self.bound:
            self.bound.clear()
        group, self.group = self.group, None
        if self.flushed:
            group = {**self.flushed, **(group or {})}
            self.flushed = {}
        return list(group.values()) if group else None
