"""What the client asks of a PostgreSQL server after startup: queries, extended messages, COPY data.

Each handler reads one client message into the shared `Conversation`: names are
resolved when the client sends them (a Parse stores its SQL under its name, a Bind
makes a portal of a statement, an Execute takes its portal's SQL and parameters),
and every message the server will answer is queued for `postgres_responses`.
While the server skips messages after an extended-protocol error (protocol
section 55.2.3), what it skips is not queued (an Execute then completes as
skipped), but names still follow the client: its skipped Execute reports the SQL
it meant to run.
"""

from __future__ import annotations

from lanner.wire.errors import ProtocolError
from lanner.wire.postgres_messages import bind, cstring, function_call, parse, query
from lanner.wire.postgres_state import (
    BIND,
    CLOSE,
    DESCRIBE,
    EXECUTE,
    FUNCTION_CALL,
    PARSE,
    QUERY,
    SYNC,
    Conversation,
    Pending,
    Portal,
    Result,
    Statement,
)

_STATEMENT = ord("S")
_PORTAL = ord("P")


class Requests:
    """Handlers for client messages (`postgres_framing.Handler`)."""

    def __init__(self, conversation: Conversation) -> None:
        self.conversation = conversation

    def on_query(self, body: bytes, size: int, now: float) -> None:
        talk = self.conversation
        sql, truncated = query(body, len(body) < size, talk.max_sql)
        result = Result(sql, truncated, 0, "simple", now)
        if talk.discarding:
            self._skipped(result)
            return
        talk.statements.pop("", None)  # a simple Query destroys the unnamed statement and portal
        talk.portals.pop("", None)
        message = Pending(QUERY, now)
        message.result = result
        message.sql, message.truncated, message.next_part = sql, truncated, 1
        message.prepares = talk.take_group()
        talk.terminators += 1
        talk.send(message)

    def on_parse(self, body: bytes, size: int, now: float) -> None:
        talk = self.conversation
        name, sql, truncated, param_types = parse(body, len(body) < size, talk.max_sql)
        statement = Statement(name, sql, truncated, param_types)
        talk.remember(talk.statements, name, statement)  # what the client means, skipped or not
        if talk.discarding:
            return
        if talk.group is None:
            talk.group = {}
        talk.group[name] = (statement, now)
        message = Pending(PARSE, now)
        message.statement = statement
        talk.send(message)

    def on_bind(self, body: bytes, size: int, now: float) -> None:
        talk = self.conversation
        portal_name, statement_name, params = bind(body, len(body) < size, talk.limits)
        statement = talk.statements.get(statement_name) or Statement(statement_name)
        talk.remember(talk.portals, portal_name, Portal(portal_name, statement, params, talk.terminators))
        if talk.discarding:
            return
        if talk.group is not None:
            talk.group.pop(statement_name, None)
        talk.bound.add(statement_name)
        talk.send(Pending(BIND, now))

    def on_describe(self, body: bytes, size: int, now: float) -> None:
        talk = self.conversation
        target, name = _target(body, size, "Describe")
        if talk.discarding:
            return
        message = Pending(DESCRIBE, now)
        if target == _PORTAL:
            message.portal = talk.portals.get(name) or Portal(name, Statement(""), (), talk.terminators)
        else:
            message.statement = statement = talk.statements.get(name) or Statement(name)
            if name not in talk.bound:
                if talk.group is None:
                    talk.group = {}
                talk.group.setdefault(name, (statement, now))
        talk.send(message)

    def on_execute(self, body: bytes, size: int, now: float) -> None:
        talk = self.conversation
        name, _ = cstring(body, 0, len(body) < size)
        portal = talk.portals.get(name) or Portal(name, Statement(""), (), talk.terminators)
        statement = portal.statement
        result = Result(statement.sql, statement.truncated, 0, "extended", now, portal, portal.params)
        if talk.discarding:
            self._skipped(result)
            return
        message = Pending(EXECUTE, now)
        message.portal = portal
        message.result = result
        talk.send(message)

    def on_close(self, body: bytes, size: int, now: float) -> None:
        talk = self.conversation
        target, name = _target(body, size, "Close")
        if target == _PORTAL:
            talk.portals.pop(name, None)
        else:
            talk.statements.pop(name, None)
        if not talk.discarding:
            talk.send(Pending(CLOSE, now))

    def on_sync(self, body: bytes, size: int, now: float) -> None:
        talk = self.conversation
        if talk.copy_in:
            return  # the server ignores Sync in COPY IN mode (protocol section 55.2.6)
        message = Pending(SYNC, now)
        message.prepares = talk.take_group()
        if talk.discarding:
            talk.discarding = False
            message.error, talk.unclaimed = talk.unclaimed, None
        talk.terminators += 1
        talk.send(message)

    def on_flush(self, body: bytes, size: int, now: float) -> None:
        """Flush asks for no answer; statements prepared before it were a round trip of their own."""
        talk = self.conversation
        if talk.group and not talk.discarding:
            talk.flushed.update(talk.group)

    def on_function_call(self, body: bytes, size: int, now: float) -> None:
        talk = self.conversation
        oid, args = function_call(body, len(body) < size, talk.limits)
        result = Result(f"function {oid}", False, 0, "function", now, None, args)
        if talk.discarding:
            self._skipped(result)
            return
        message = Pending(FUNCTION_CALL, now)
        message.result = result
        talk.terminators += 1
        talk.send(message)

    def on_copy_data(self, body: bytes, size: int, now: float) -> None:
        talk = self.conversation
        talk.client_copy_messages += 1
        talk.client_copy_bytes += size

    def on_copy_end(self, body: bytes, size: int, now: float) -> None:
        """CopyDone or CopyFail: Syncs count again."""
        self.conversation.copy_in = False

    def _skipped(self, result: Result) -> None:
        # The first statement after the failed message is the one that failed (a Parse,
        # Bind or Describe of it), unless an earlier one already took the error.
        talk = self.conversation
        if talk.unclaimed is not None:
            result.error, result.ended, _ = talk.unclaimed
            talk.unclaimed = None
        else:
            result.skipped = True
        talk.finish(result)


def _target(body: bytes, size: int, what: str) -> tuple[int, str]:
    """Describe and Close name a statement ('S') or a portal ('P')."""
    if not body or body[0] not in (_STATEMENT, _PORTAL):
        raise ProtocolError(f"{what} of neither a statement nor a portal")
    name, _ = cstring(body, 1, len(body) < size)
    return body[0], name
