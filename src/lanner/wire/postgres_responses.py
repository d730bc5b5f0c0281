"""What a PostgreSQL server answers after startup, paired with what the client asked.

Each handler reads one server message against the oldest unanswered client message
in the shared `Conversation` (protocol sections 55.2.2 to 55.2.7): results complete
statements, ReadyForQuery reports them with the transaction status it gives, and an
ErrorResponse in extended mode makes the server skip everything up to Sync.
How a failed or prepare-only Sync group ends is `postgres_groups`' job.
Asynchronous messages (NoticeResponse, ParameterStatus, NotificationResponse) are
taken wherever they come and never move the pairing. A message that answers
nothing the client asked raises `ProtocolError`.
"""

from __future__ import annotations

from typing import Final, TypeVar

from lanner.wire.errors import ProtocolError
from lanner.wire.postgres_events import ErrorReceived, NoticeReceived, NotificationReceived, ParameterChanged
from lanner.wire.postgres_groups import expire_portals, failed_group, failed_sync, report_prepared
from lanner.wire.postgres_messages import (
    copy_format,
    cstring,
    error_fields,
    name_and_value,
    notification,
    parameter_description,
    row_description,
    tag_rows,
)
from lanner.wire.postgres_startup import TX_STATUS
from lanner.wire.postgres_state import (
    BIND,
    CLOSE,
    DESCRIBE,
    EXECUTE,
    FUNCTION_CALL,
    PARSE,
    QUERY,
    SYNC,
    TERMINATORS,
    Conversation,
    Pending,
    Result,
)

_REMEMBERED: Final = 64  # CommandComplete and RowDescription bodies decoded once...
_REMEMBERED_SIZE: Final = 1024  # ...when they are this small (each cache under 64 KiB)


class Responses:
    """Handlers for server messages after startup (`postgres_framing.Handler`)."""

    def __init__(self, conversation: Conversation) -> None:
        self.conversation = conversation
        # A busy connection repeats the same few tags and row descriptions: decode each once.
        self.tags: dict[bytes, tuple[str, int | None]] = {}
        self.descriptions: dict[bytes, tuple[tuple[str, int], ...]] = {}

    # -- the common case first: rows, completion, readiness --

    def on_data_row(self, body: bytes, size: int, now: float) -> None:
        pending = self.conversation.pending
        result = pending[0].result if pending else None
        (result or self._running("DataRow", now)).data_rows += 1

    def on_command_complete(self, body: bytes, size: int, now: float) -> None:
        known = self.tags.get(body)
        if known is None:
            tag, _ = cstring(body, 0, len(body) < size)
            known = (tag, tag_rows(tag))
            if len(body) == size <= _REMEMBERED_SIZE:
                _remember(self.tags, body, known)
        result = self._running("CommandComplete", now)
        result.command_tag, result.rows = known
        self._completed(result, now)

    def on_ready(self, body: bytes, size: int, now: float) -> None:
        talk = self.conversation
        status = TX_STATUS.get(body)
        if status is None:
            raise ProtocolError(f"ReadyForQuery status {body!r}")
        if not talk.pending or talk.pending[0].kind not in TERMINATORS:
            raise ProtocolError("ReadyForQuery without a Sync or Query to answer")
        message = talk.pending.popleft()
        if message.prepares is not None or message.error is not None:
            report_prepared(talk, message, status, now)
        events = talk.events
        for result in talk.done:
            if result.ended is None:
                result.ended = now  # skipped: the server was done with it now
            events.append(result.event(status))
        talk.done.clear()
        if message.result is not None and message.result.notices:  # a notice after a Query's last result
            events.extend(NoticeReceived(notice, now) for notice in message.result.notices)
        talk.answered += 1
        if status == "idle":
            expire_portals(talk)

    def close(self) -> None:
        """The connection ended: report what is done and what never finished, with no status."""
        talk = self.conversation
        talk.events.extend(result.event(None) for result in talk.done)
        talk.done.clear()
        talk.events.extend(
            message.result.event(None) for message in talk.pending if message.result is not None
        )
        talk.pending.clear()

    # -- extended protocol --

    def on_parse_complete(self, body: bytes, size: int, now: float) -> None:
        self._answered(PARSE, "ParseComplete")

    def on_bind_complete(self, body: bytes, size: int, now: float) -> None:
        self._answered(BIND, "BindComplete")

    def on_close_complete(self, body: bytes, size: int, now: float) -> None:
        self._answered(CLOSE, "CloseComplete")

    def on_parameter_description(self, body: bytes, size: int, now: float) -> None:
        statement = self._describing("ParameterDescription").statement
        if statement is None:
            raise ProtocolError("ParameterDescription for a portal")
        statement.param_types = parameter_description(body, len(body) < size)

    def on_row_description(self, body: bytes, size: int, now: float) -> None:
        pending = self.conversation.pending
        columns = self.descriptions.get(body)
        if columns is None:
            columns = row_description(body, len(body) < size)
            if len(body) == size <= _REMEMBERED_SIZE:
                _remember(self.descriptions, body, columns)
        if pending and pending[0].kind == QUERY:
            self._running("RowDescription", now).columns = columns
        else:
            self._described(self._describing("RowDescription"), columns, now)

    def on_no_data(self, body: bytes, size: int, now: float) -> None:
        self._described(self._describing("NoData"), (), now)

    def on_empty_query(self, body: bytes, size: int, now: float) -> None:
        result = self._running("EmptyQueryResponse", now)
        result.empty = True
        self._completed(result, now)

    def on_portal_suspended(self, body: bytes, size: int, now: float) -> None:
        pending = self.conversation.pending
        if not pending or pending[0].kind != EXECUTE:
            raise ProtocolError("PortalSuspended without an Execute")
        result = self._running("PortalSuspended", now)
        result.suspended = True
        self._completed(result, now)

    # -- COPY and function calls --

    def on_copy_in(self, body: bytes, size: int, now: float) -> None:
        self._copy("in", body, now)

    def on_copy_out(self, body: bytes, size: int, now: float) -> None:
        self._copy("out", body, now)

    def on_copy_both(self, body: bytes, size: int, now: float) -> None:
        self._copy("both", body, now)

    def on_copy_data(self, body: bytes, size: int, now: float) -> None:
        result = self._running("CopyData", now)
        result.copy_messages += 1
        result.copy_bytes += size

    def on_copy_done(self, body: bytes, size: int, now: float) -> None:
        self._running("CopyDone", now)

    def on_function_result(self, body: bytes, size: int, now: float) -> None:
        talk = self.conversation
        message = talk.pending[0] if talk.pending else None
        if message is None or message.kind != FUNCTION_CALL or message.result is None:
            raise ProtocolError("FunctionCallResponse without a FunctionCall")
        message.result.ended = now
        talk.finish(message.result)
        message.result = None

    # -- errors and asynchronous messages --

    def on_error(self, body: bytes, size: int, now: float) -> None:
        talk = self.conversation
        error = error_fields(body, len(body) < size)
        message = talk.pending[0] if talk.pending else None
        if message is None:
            talk.events.append(ErrorReceived(error, now))  # a FATAL while idle, say
        elif message.kind == QUERY or message.kind == FUNCTION_CALL:
            result = self._current(message)
            if result is None:
                talk.events.append(ErrorReceived(error, now))
                return
            result.error = error
            self._completed(result, now)
            message.next_part = 0  # the rest of the query string is not run
        elif message.kind == SYNC:
            failed_sync(talk, message, error, now)
        else:
            failed_group(talk, error, now)

    def on_notice(self, body: bytes, size: int, now: float) -> None:
        talk = self.conversation
        notice = error_fields(body, len(body) < size)
        result = self._current(talk.pending[0]) if talk.pending else None
        if result is None:
            talk.events.append(NoticeReceived(notice, now))
        elif result.notices is None:
            result.notices = [notice]
        elif len(result.notices) < talk.max_notices:
            result.notices.append(notice)

    def on_parameter_status(self, body: bytes, size: int, now: float) -> None:
        name, value = name_and_value(body, len(body) < size)
        self.conversation.events.append(ParameterChanged(name, value, now))

    def on_notification(self, body: bytes, size: int, now: float) -> None:
        pid, channel, payload = notification(body, len(body) < size, self.conversation.limits.max_param)
        self.conversation.events.append(NotificationReceived(pid, channel, payload, now))

    # -- helpers --

    def _current(self, message: Pending) -> Result | None:
        """The statement `message` is running, if any; a Query's next one starts on demand."""
        if message.result is None and message.kind == QUERY and message.next_part:
            result = Result(message.sql, message.truncated, message.next_part, "simple", message.time)
            message.result = result
            return result
        return message.result

    def _running(self, what: str, now: float) -> Result:
        pending = self.conversation.pending
        result = self._current(pending[0]) if pending else None
        if result is None:
            raise ProtocolError(f"{what} without a running statement")
        return result

    def _completed(self, result: Result, now: float) -> None:
        talk = self.conversation
        result.ended = now
        if result.rows is None and result.data_rows:
            result.rows = result.data_rows
        if result.copy_direction is not None:
            self.conversation.end_copy(result)
        talk.finish(result)
        message = talk.pending[0]
        message.result = None
        if message.kind == QUERY:
            message.time = now
            message.next_part = result.part + 1
        elif message.kind == EXECUTE:
            talk.pending.popleft()

    def _answered(self, kind: int, what: str) -> None:
        pending = self.conversation.pending
        if not pending or pending[0].kind != kind:
            raise ProtocolError(f"{what} without its request")
        pending.popleft()

    def _describing(self, what: str) -> Pending:
        pending = self.conversation.pending
        if not pending or pending[0].kind != DESCRIBE:
            raise ProtocolError(f"{what} without a Describe")
        return pending[0]

    def _described(self, message: Pending, columns: tuple[tuple[str, int], ...], now: float) -> None:
        talk = self.conversation
        if message.portal is not None:
            message.portal.columns = columns
            message.portal.statement.columns = columns
        elif message.statement is not None:
            message.statement.columns = columns
            if message.statement.name in talk.flushed:  # a prepare round trip of its own ends here
                talk.described_at[message.statement.name] = now
        talk.pending.popleft()

    def _copy(self, direction: str, body: bytes, now: float) -> None:
        talk = self.conversation
        result = self._running("Copy response", now)
        result.copy_direction, result.copy_format = direction, copy_format(body)
        talk.client_copy_messages = talk.client_copy_bytes = 0
        if direction == "out":
            return
        talk.copy_in = True
        if talk.pending[0].kind == EXECUTE:
            # Syncs the client sent behind this Execute reach the server in COPY IN mode,
            # which ignores them (protocol section 55.2.6): no ReadyForQuery answers them.
            while len(talk.pending) > 1 and talk.pending[1].kind == SYNC:
                del talk.pending[1]


_Decoded = TypeVar("_Decoded")


def _remember(decoded: dict[bytes, _Decoded], body: bytes, value: _Decoded) -> None:
    if len(decoded) >= _REMEMBERED:
        decoded.clear()
    decoded[body] = value
