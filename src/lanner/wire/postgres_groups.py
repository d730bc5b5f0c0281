"""How a PostgreSQL Sync group ends: the error that makes the server skip to Sync, prepare-only groups.

In the extended protocol the client's messages up to a Sync form a group. After an
ErrorResponse the server skips the rest of the group (protocol section 55.2.3); a group
that parses or describes statements without executing them only prepares them (asyncpg
and pgbench's `-M prepared` do that), and each such statement is reported as a
"prepare" at the group's ReadyForQuery. Works on a `Conversation`; never reads bytes.
"""

from __future__ import annotations

from lanner.wire.postgres_events import ErrorReceived, PgError
from lanner.wire.postgres_state import DESCRIBE, PARSE, SYNC, Conversation, Pending, Result


def failed_group(talk: Conversation, error: PgError, now: float) -> None:
    """An ErrorResponse to a Parse, Bind, Describe, Execute or Close.

    The failed message's statement takes the error: the Execute that failed, or the
    first one after the Parse, Bind or Describe that failed (the client's next
    statement); later Executes in the group are skipped. With no Execute to take it,
    the error waits for the group's Sync.
    """
    pending = talk.pending
    failed = pending[0].statement if pending[0].kind in (PARSE, DESCRIBE) else None
    claimed = False
    talk.copy_in = False
    while pending and pending[0].kind != SYNC:
        result = pending.popleft().result
        if result is None:
            continue
        if claimed:
            result.skipped = True
        else:
            result.error, result.ended, claimed = error, now, True
            if result.copy_direction is not None:
                talk.end_copy(result)
        talk.finish(result)
    unclaimed = None if claimed else (error, now, failed)
    if not pending:
        talk.discarding, talk.unclaimed = True, unclaimed  # the Sync is yet to come
    elif pending[0].error is None:
        pending[0].error = unclaimed
    elif unclaimed is not None:
        talk.events.append(ErrorReceived(error, now))


def failed_sync(talk: Conversation, message: Pending, error: PgError, now: float) -> None:
    """An ErrorResponse to Sync: the implicit transaction's commit failed, and its last statement."""
    done = talk.done
    if done and done[-1].error is None:
        done[-1].error = error
    elif message.error is None:
        message.error = (error, now, None)
    else:
        talk.events.append(ErrorReceived(error, now))


def report_prepared(talk: Conversation, message: Pending, status: str, now: float) -> None:
    """The statements a group (ended by `message`, a Sync or Query) only prepared, and its error."""
    error, error_time, failed = message.error or (None, now, None)
    matched = False
    for statement, started in message.prepares or ():
        result = Result(statement.sql, statement.truncated, 0, "prepare", started)
        ended = talk.described_at.pop(statement.name, now)  # a flushed prepare: when it was answered
        result.statement, result.prepared, result.ended = statement.name, statement, ended
        if error is not None and matched:
            result.skipped = True
        elif error is not None and statement is failed:
            result.error, result.ended, matched = error, error_time, True
        talk.events.append(result.event(status))
    if error is not None and not matched:
        talk.events.append(ErrorReceived(error, error_time))


def expire_portals(talk: Conversation) -> None:
    """The transaction ended (ReadyForQuery said idle): so did the named portals bound in it.

    Those bound after the Sync just answered live on. The unnamed portal lives until
    the next Bind or Query replaces it, most often the very next message: not worth
    this loop on every ReadyForQuery.
    """
    portals = talk.portals
    if portals and (len(portals) > 1 or "" not in portals):
        answered = talk.answered
        for name in [name for name, portal in portals.items() if name and portal.terminators < answered]:
            del portals[name]
