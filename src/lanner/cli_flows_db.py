"""How `lanner flows` shows Redis commands and PostgreSQL statements (list rows, show, stats).

HTTP and WebSocket flows are shown by cli_flows.py; this module knows the
database flows' fields (command line, SQL with parameters, reply or result
summary, SQLSTATE, transaction status) and the grouped statistics.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import IO, Any

from lanner.record.filter import And, Node, Query, Term
from lanner.record.model import ConnectionRecord, FlowRecord, GroupStats

PROTOCOLS = ("redis", "postgres")
LINE = 120  # characters of a command shown in a list row


def one_line(text: str, limit: int = LINE) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def row_status(record: FlowRecord) -> str:
    """The STATUS cell of a list row: ERR, or a short word for how it went."""
    if record.error:
        return record.sqlstate or "ERR"
    if record.response_ended is None:
        return "-"
    return "ok"


def row_target(record: FlowRecord) -> str:
    return f"{record.url}  {one_line(record.command) or record.method}"


def show(out: IO[str], record: FlowRecord, connection: ConnectionRecord | None) -> None:
    duration = record.duration
    took = f"{duration * 1000:.3f} ms" if duration is not None else "no reply"
    out.write(f"flow {record.id}  {record.proto} {record.method}  {record.url}\n")
    out.write(f"  started   {datetime.fromtimestamp(record.started).isoformat(timespec='milliseconds')}\n")
    out.write(f"  took      {took}\n")
    user = f", user {record.user}" if record.user else ""
    out.write(f"  via       listener {record.listener}, client {record.client}{user}\n")
    out.write(f"  conn      {record.conn_uid}")
    if connection is not None:
        out.write(f" ({connection.protocol} to {connection.dest or '-'}, {connection.outcome})")
    out.write("\n")
    if record.category:
        out.write(f"  category  {record.category}\n")
    if record.keys:
        out.write(f"  keys      {', '.join(record.keys)}\n")
    if record.fingerprint:
        out.write(f"  fingerprint {record.fingerprint}\n")
    if record.error:
        out.write(f"  error     {record.error}\n")
    if record.proto == "redis":
        _redis(out, record)
    else:
        _postgres(out, record)


def _redis(out: IO[str], record: FlowRecord) -> None:
    notes = dict(record.notes)
    for name, note in notes.items():
        out.write(f"  note      {name}: {note}\n")
    if record.command:
        out.write(f"\n> {record.command}\n")
    reply = record.response_body.data.decode("utf-8", "replace")
    if record.reason == "push":
        out.write(f"\n< (push) {reply}\n")
    elif record.reason == "no reply":
        out.write("\n< (no reply)\n")
    else:
        out.write(f"\n< ({record.reason}, {record.response_body.size} bytes) {reply}\n")


def _postgres(out: IO[str], record: FlowRecord) -> None:
    notes = dict(record.notes)
    params = _json_list(notes.pop("params", "[]"))
    columns = _json_list(notes.pop("columns", "[]"))
    notices = _json_list(notes.pop("notices", "[]"))
    if record.statement and record.statement != record.command and record.category != "session":
        out.write(f"  normalized {one_line(record.statement, 400)}\n")
    for name, note in notes.items():
        out.write(f"  note      {name}: {note}\n")
    out.write(f"\n> {record.command}\n")
    for number, value in enumerate(params, 1):
        out.write(f"    ${number} = {'NULL' if value is None else value}\n")
    out.write("\n")
    if columns:
        out.write("< columns: " + ", ".join(_column(column) for column in columns) + "\n")
    if record.reason:
        rows = f" ({record.rows} rows)" if record.rows is not None else ""
        out.write(f"< {record.reason}{rows}\n")
    for notice in notices:
        out.write(f"< notice: {notice}\n")
    if record.error:
        out.write(f"< {record.error}\n")
    if record.category == "session" and record.response_body.data:
        out.write(record.response_body.data.decode("utf-8", "replace") + "\n")


def _json_list(text: str) -> list[Any]:
    """A note holding a JSON list (a store written by another version may hold plain text)."""
    try:
        found = json.loads(text)
    except ValueError:
        return [text]
    return found if isinstance(found, list) else [found]


def _column(column: Any) -> str:
    if isinstance(column, list) and len(column) == 2:
        return f"{column[0]} ({column[1]})"
    return str(column)


def grouping(query: Query | None) -> str | None:
    """'command' for a filter naming proto:redis, 'fingerprint' for proto:postgres, else None."""
    if query is None:
        return None
    terms: list[Node] = list(query.root.items) if isinstance(query.root, And) else [query.root]
    for term in terms:
        if isinstance(term, Term) and term.field == "proto" and term.op == "=":
            if term.value == "redis":
                return "command"
            if term.value == "postgres":
                return "fingerprint"
    return None


def print_groups(by: str, groups: list[GroupStats]) -> None:
    label = "COMMAND" if by == "command" else "FINGERPRINT"
    cells = f"{'CALLS':>8} {'ERRORS':>7} {'ROWS':>9} {'P50 MS':>9} {'P95 MS':>9} {'P99 MS':>9}"
    print(f"\n{label:<18} {cells}  TEXT")
    for group in groups:
        cells = " ".join(
            f"{v:>9.2f}" if v is not None else f"{'-':>9}" for v in (group.p50, group.p95, group.p99)
        )
        text = one_line(group.text, 100) if by == "fingerprint" else ""
        print(f"{group.group[:18]:<18} {group.calls:>8} {group.errors:>7} {group.rows:>9} {cells}  {text}")
