"""From a Redis or PostgreSQL analyzer event to the flow a store keeps (runs in the writer).

The analyzers (wire/resp.py, wire/postgres.py) run on the proxy's loop and
only carry what they saw; here, off the loop, SQL is split into the
statements of a multi-statement query, normalized (literals become `$n`) and
fingerprinted with pglast (libpg_query, PostgreSQL's own parser), each at
most once per distinct text (an LRU cache: an application sends the same
few hundred statements over and over). SQL that does not parse keeps its
text, a whitespace-collapsed form and a hash of that as its fingerprint.
"""

from __future__ import annotations

import hashlib
import json
import re
from functools import lru_cache
from typing import Any

from lanner.record.convert import DbItem
from lanner.record.model import Body, FlowRecord
from lanner.wire import postgres as pg
from lanner.wire import resp

SQL_CACHE = 4096
COMMAND_TEXT = 4096  # characters of a Redis command line kept in `command`
REDACTED = b"<redacted>"  # what the analyzer puts in place of a secret argument
_SPACES = re.compile(r"\s+")
_PRINTABLE = re.compile(rb"[!#-~]+")  # no space, quote or backslash: shown bare


def db_flow(item: DbItem) -> FlowRecord:
    event = item.event
    kind = type(event)
    if kind is resp.CommandCompleted:
        return _redis_command(item, event)
    if kind is resp.MessagePushed:
        return _redis_push(item, event)
    if kind is pg.StatementCompleted:
        return _statement(item, event)
    return _pg_session_event(item, event)


def _base(
    item: DbItem, proto: str, started: float, ended: float | None, method: str, path: str
) -> FlowRecord:
    origin = item.origin
    return FlowRecord(
        conn_uid=origin.conn_uid, proto=proto, started=started, method=method, scheme=proto,
        host=origin.host, port=origin.port, path=path, http_version="", request_ended=started,
        response_started=ended, response_ended=ended, listener=origin.listener, client=origin.client,
        user=origin.user,
    )  # fmt: skip


def db_search_text(record: FlowRecord, limit: int) -> str:
    """The full-text index's text of a database flow: its command or SQL and its reply or result."""
    text = (record.request_body.data + b"\n" + record.response_body.data)[:limit]
    return text.decode("utf-8", "replace")


# --- Redis ----------------------------------------------------------------------------


def quote_arg(arg: bytes) -> str:
    """An argument as redis-cli would echo it: bare when plain, else double-quoted with escapes."""
    if arg and _PRINTABLE.fullmatch(arg):
        return arg.decode("ascii")
    out = []
    for byte in arg:
        char = chr(byte)
        if char == '"' or char == "\\":
            out.append("\\" + char)
        elif 32 <= byte < 127:
            out.append(char)
        else:
            out.append({10: "\\n", 13: "\\r", 9: "\\t"}.get(byte, f"\\x{byte:02x}"))
    return '"' + "".join(out) + '"'


def command_line(event: resp.CommandCompleted) -> str:
    parts = [event.name]
    for arg, size in zip(event.args, event.arg_sizes, strict=False):
        cut = size > len(arg) and arg != REDACTED
        parts.append(quote_arg(arg) + ("…" if cut else ""))
    if event.arg_count > len(event.args):
        parts.append(f"… ({event.arg_count - len(event.args)} more)")
    return " ".join(parts)[:COMMAND_TEXT]


def _redis_command(item: DbItem, event: resp.CommandCompleted) -> FlowRecord:
    record = _base(item, "redis", event.started, event.ended, event.name, f"/{event.db}")
    text = command_line(event)
    record.command = text
    record.statement = event.name
    record.category = event.category
    record.keys = [key.decode("utf-8", "backslashreplace") for key in event.keys]
    record.request_body = Body(text.encode(), event.size, False, 0)
    notes = record.notes
    notes["args"] = str(event.arg_count)
    notes["protocol"] = f"RESP{event.protocol}"
    if event.inline:
        notes["inline"] = "yes"
    if event.queued:
        notes["queued"] = "in MULTI: the result is in EXEC's reply"
    if event.blocking:
        notes["blocking"] = "yes: latency includes waiting for data"
    if event.redacted:
        notes["redacted"] = "yes"
    reply = event.reply
    if reply is None:
        record.reason = "no reply"
        notes["unanswered"] = event.unanswered or "unknown"
        return record
    record.reason = reply.kind
    record.response_body = Body(reply.summary.encode(), reply.size, False, 0)
    if reply.count is not None:
        record.rows = reply.count
    if reply.attributes:
        notes["attributes"] = "yes"
    if reply.error is not None:
        record.error = reply.error
    return record


def _redis_push(item: DbItem, event: resp.MessagePushed) -> FlowRecord:
    record = _base(item, "redis", event.time, event.time, event.kind.upper(), "")
    channel = event.channel.decode("utf-8", "backslashreplace") if event.channel is not None else ""
    record.command = channel
    record.statement = event.kind.upper()
    record.category = "pubsub" if event.kind != "monitor" else "admin"
    record.reason = "push"
    record.response_body = Body(event.summary.encode(), event.size, False, 0)
    record.notes["direction"] = "pushed by the server"
    if event.pattern is not None:
        record.notes["pattern"] = event.pattern.decode("utf-8", "backslashreplace")
    return record


# --- PostgreSQL -----------------------------------------------------------------------


@lru_cache(maxsize=SQL_CACHE)
def split_sql(sql: str) -> tuple[str, ...]:
    """The statements of a simple query's text (the text whole when it does not parse)."""
    from pglast import parser as pg_parser  # the writer process only: not loaded into proxy workers

    try:
        parts = tuple(pg_parser.split(sql))
    except Exception:  # pglast raises its own ParseError and, for odd input, ValueError
        return (sql,)
    return parts or (sql,)


@lru_cache(maxsize=SQL_CACHE)
def normalize(sql: str) -> tuple[str, str]:
    """(normalized text, fingerprint) of one statement."""
    from pglast import parser as pg_parser

    try:
        normalized = pg_parser.normalize(sql)
        return normalized, pg_parser.fingerprint(sql)
    except Exception:  # not SQL PostgreSQL's parser accepts (psql's own commands, truncated text)
        collapsed = _SPACES.sub(" ", sql).strip()
        return collapsed, hashlib.blake2b(collapsed.lower().encode(), digest_size=8).hexdigest()


def statement_text(event: pg.StatementCompleted) -> str:
    if event.kind == "simple" and not event.truncated:
        parts = split_sql(event.sql)
        if len(parts) > 1 and event.part < len(parts):
            return parts[event.part]
    return event.sql


def _verb(sql: str, tag: str | None) -> str:
    if tag:
        return tag.split(" ", 1)[0]
    words = sql.lstrip("( \t\r\n").split(None, 1)
    return words[0].upper()[:20] if words else ""


def _statement(item: DbItem, event: pg.StatementCompleted) -> FlowRecord:
    sql = statement_text(event)
    method = "PREPARE" if event.kind == "prepare" else _verb(sql, event.command_tag)
    record = _base(item, "postgres", event.started, event.ended, method, f"/{item.database or ''}")
    record.command = sql
    record.statement, record.fingerprint = normalize(sql)
    record.category = event.kind
    record.rows = event.rows
    request = _request_text(sql, event).encode()
    record.request_body = Body(request, len(request), event.truncated, 0)
    record.response_body = _text_body(_result_text(event))
    record.reason = event.command_tag or ("empty query" if event.empty else "")
    notes = record.notes
    notes["kind"] = event.kind
    if event.statement:
        notes["statement_name"] = event.statement
    if event.portal:
        notes["portal"] = event.portal
    if event.params:
        notes["params"] = json.dumps(list(event.params), ensure_ascii=False)
    if event.columns:
        notes["columns"] = json.dumps([[name, oid] for name, oid in event.columns])
    if event.tx_status is not None:
        notes["transaction"] = event.tx_status
    if event.skipped:
        notes["skipped"] = "after an earlier error in its pipeline (until Sync)"
        record.reason = "skipped"
    if event.suspended:
        notes["suspended"] = "row limit reached (PortalSuspended)"
    if event.copy is not None:
        copy = event.copy
        notes["copy"] = f"{copy.direction} {copy.format}: {copy.messages} messages, {copy.bytes} bytes"
    if event.notices:
        notes["notices"] = json.dumps([_error_text(notice) for notice in event.notices], ensure_ascii=False)
    if event.error is not None:
        _set_error(record, event.error)
    return record


def _text_body(text: str) -> Body:
    data = text.encode()
    return Body(data, len(data))


def _request_text(sql: str, event: pg.StatementCompleted) -> str:
    if not event.params:
        return sql
    shown = ", ".join(
        f"${n} = {'NULL' if value is None else value}" for n, value in enumerate(event.params, 1)
    )
    return f"{sql}\n-- parameters: {shown}"


def _result_text(event: pg.StatementCompleted) -> str:
    lines = []
    if event.columns:
        lines.append("columns: " + ", ".join(name for name, _ in event.columns))
    if event.data_rows:
        lines.append(f"rows sent: {event.data_rows}")
    if event.command_tag:
        lines.append(event.command_tag)
    if event.error is not None:
        lines.append(_error_text(event.error))
    return "\n".join(lines)


def _error_text(error: pg.PgError) -> str:
    return f"{error.severity} {error.sqlstate}: {error.message}"


def _set_error(record: FlowRecord, error: pg.PgError) -> None:
    record.error = _error_text(error)
    record.sqlstate = error.sqlstate
    for name in ("detail", "hint", "position"):
        value = getattr(error, name)
        if value is not None:
            record.notes[f"error_{name}"] = value


def _pg_session_event(item: DbItem, event: Any) -> FlowRecord:
    """Startup, authentication, encryption, cancel, notification, notice, parameter, terminate."""
    method, time, ended, text, result = _session_fields(item, event)
    record = _base(item, "postgres", time, ended, method, f"/{item.database or ''}")
    record.category = "session"
    record.command = text
    record.statement = method
    record.request_body = _text_body(text)
    record.response_body = _text_body(result)
    record.reason = result.split("\n", 1)[0][:200]
    if isinstance(event, pg.SessionStarted):
        record.path = f"/{event.database}"
        record.notes["protocol"] = event.protocol
    elif isinstance(event, pg.AuthenticationCompleted):
        record.notes["auth"] = event.method
        if event.backend_pid is not None:
            record.notes["backend_pid"] = str(event.backend_pid)
        if event.error is not None:
            _set_error(record, event.error)
    elif isinstance(event, pg.CancelRequested):
        record.notes["backend_pid"] = str(event.backend_pid)
        if item.cancels is not None:
            record.notes["cancels"] = item.cancels
    elif isinstance(event, pg.NoticeReceived):
        record.sqlstate = event.notice.sqlstate
    elif isinstance(event, pg.ErrorReceived):
        _set_error(record, event.error)
    return record


def _session_fields(item: DbItem, event: Any) -> tuple[str, float, float | None, str, str]:
    """(method, started, ended, request text, result text) of a session event."""
    if isinstance(event, pg.SessionStarted):
        options = " ".join(f"{name}={value}" for name, value in event.options)
        app = f" application_name={event.application_name}" if event.application_name else ""
        text = f"user={event.user} database={event.database}{app} {options}".strip()
        return "STARTUP", event.time, event.time, text, f"protocol {event.protocol}"
    if isinstance(event, pg.AuthenticationCompleted):
        params = "\n".join(f"{name} = {value}" for name, value in event.server_params)
        verdict = "ok" if event.ok else "failed"
        return "AUTH", event.started, event.ended, event.method, f"{event.method} {verdict}\n{params}"
    if isinstance(event, pg.EncryptionRequested):
        names = {"ssl": "SSLREQUEST", "gss": "GSSENCREQUEST", "direct-tls": "TLS"}
        answer = {"S": "accepted: encrypted from here", "G": "accepted: encrypted from here", "N": "refused"}
        result = "encrypted (direct TLS)" if event.answer is None else answer.get(event.answer, event.answer)
        return names.get(event.kind, event.kind.upper()), event.time, event.time, event.kind, result
    if isinstance(event, pg.CancelRequested):
        target = f" (connection {item.cancels})" if item.cancels else ""
        return "CANCEL", event.time, event.time, f"backend {event.backend_pid}{target}", ""
    if isinstance(event, pg.NotificationReceived):
        return "NOTIFICATION", event.time, event.time, event.channel, event.payload
    if isinstance(event, pg.ParameterChanged):
        return "PARAMETER", event.time, event.time, event.name, event.value
    if isinstance(event, pg.NoticeReceived):
        return "NOTICE", event.time, event.time, "", _error_text(event.notice)
    if isinstance(event, pg.ErrorReceived):  # outside any statement: a FATAL, an admin shutdown
        return "ERROR", event.time, event.time, "", _error_text(event.error)
    if isinstance(event, pg.SessionEnded):
        return "TERMINATE", event.time, event.time, "", ""
    raise TypeError(f"not a PostgreSQL event: {type(event).__name__}")
