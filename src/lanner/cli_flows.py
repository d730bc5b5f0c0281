"""`lanner flows`: list, show, stats, export and import recorded flows.

Each command opens its own reader on the store, so it works while `lanner run`
writes to it. Exit codes: 0 done, 1 no store / store or file error, 2 bad
filter or usage.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Iterator
from datetime import datetime
from typing import IO, Any

from lanner import cli_flows_db
from lanner.record import bodies
from lanner.record.filter import FilterError, Query, parse_optional
from lanner.record.model import Body, FlowRecord, Headers, header
from lanner.record.store import StoreError, websocket_messages

FOLLOW_INTERVAL = 0.5
PAGE = 1000
BINARY_PREVIEW = 256
WS_PREVIEW = 96


def add_commands(commands: Any) -> None:
    """Add `flows` and its subcommands to the top-level subparsers."""
    flows = commands.add_parser(
        "flows",
        help="list, show, search, export and import recorded flows",
        description="Read the flow store (docs/RECORDING.md). The store is --db FILE, else the "
        "config's (-c FILE or $LANNER_CONFIG), else ./lanner-data/lanner.db.",
    )
    flows.add_argument("--db", metavar="FILE", help="the store file")
    flows.add_argument("-c", "--config", metavar="FILE", help="take the store's path from this config")
    sub = flows.add_subparsers(title="flows commands", metavar="COMMAND")

    listing = sub.add_parser("list", help="flows matching a filter, newest first")
    listing.add_argument("filter", nargs="*", metavar="FILTER", help="filter terms (docs/RECORDING.md)")
    listing.add_argument("-n", "--limit", type=int, default=50, help="at most this many (default 50)")
    listing.add_argument("--before", type=int, metavar="ID", help="only flows with ids below ID (next page)")
    listing.add_argument("--json", action="store_true", help="one JSON object per line")
    listing.add_argument("-f", "--follow", action="store_true", help="then print new flows as they arrive")
    listing.set_defaults(func=_list)

    show = sub.add_parser("show", help="one flow: headers, bodies, timings")
    show.add_argument("id", type=int, metavar="ID")
    show.add_argument("--raw", choices=["request", "response"], help="write that body as captured to stdout")
    show.add_argument("--json", action="store_true", help="the flow as a HAR entry")
    show.set_defaults(func=_show)

    stats = sub.add_parser("stats", help="counts, status classes and latency percentiles")
    stats.add_argument("filter", nargs="*", metavar="FILTER")
    stats.add_argument(
        "--by",
        choices=["command", "fingerprint"],
        help="group by Redis command or SQL fingerprint (default with proto:redis / proto:postgres)",
    )
    stats.set_defaults(func=_stats)

    export = sub.add_parser("export", help="write matching flows as HAR 1.2")
    export.add_argument("--har", required=True, metavar="FILE", help="the HAR file to write ('-': stdout)")
    export.add_argument("filter", nargs="*", metavar="FILTER")
    export.set_defaults(func=_export)

    imports = sub.add_parser("import", help="add the flows of a HAR file to the store")
    imports.add_argument("file", metavar="FILE.har")
    imports.set_defaults(func=_import)

    flows.set_defaults(func=lambda _args: _usage(flows))


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2


class _Failed(Exception):
    """Ends a command with a message on stderr and an exit code."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


def _command(function: Any) -> Any:
    def run(args: argparse.Namespace) -> int:
        try:
            code: int = function(args)
            return code
        except _Failed as exc:
            print(f"lanner flows: {exc}", file=sys.stderr)
            return exc.code
        except StoreError as exc:
            print(f"lanner flows: {exc}", file=sys.stderr)
            return 1
        except BrokenPipeError:  # `lanner flows list | head`
            sys.stderr.close()
            return 0
        except KeyboardInterrupt:
            return 130

    return run


def _store_path(args: argparse.Namespace) -> str:
    if args.db:
        return str(args.db)
    from lanner.cli import config_from
    from lanner.config import ConfigError

    try:
        return config_from(args.config).store_path
    except ConfigError as exc:
        raise _Failed(str(exc), 1) from exc


def _open(args: argparse.Namespace, readonly: bool = True) -> Any:
    from lanner.record.sqlite import SqliteStore

    path = _store_path(args)
    if readonly and not os.path.exists(path):
        raise _Failed(f"no flow store at {path} (is recording on? see --db and -c)", 1)
    return SqliteStore(path, readonly=readonly)


def _query(terms: list[str]) -> Query | None:
    text = " ".join(terms)
    try:
        return parse_optional(text)
    except FilterError as exc:
        raise _Failed(f"bad filter: {exc.message}\n  {text}\n  {' ' * exc.position}^", 2) from exc


# --- list -----------------------------------------------------------------------------


@_command
def _list(args: argparse.Namespace) -> int:
    query = _query(args.filter)
    store = _open(args)
    try:
        found = store.flows(query, limit=args.limit, before_id=args.before)
        if args.follow:
            found.reverse()  # like tail -f: oldest first, new ones below
        if not args.json and found:
            print(_row_heading())
        for record in found:
            print(_json_line(record) if args.json else _row(record))
        if not args.follow:
            if len(found) == args.limit and not args.json:
                print(f"(more: --before {found[-1].id})", file=sys.stderr)
            return 0
        last = max((record.id for record in found), default=_last_id(store))
        sys.stdout.flush()
        while True:
            time.sleep(FOLLOW_INTERVAL)
            for record in store.flows_after(query, last, PAGE):
                print(_json_line(record) if args.json else _row(record))
                last = record.id
            sys.stdout.flush()
    finally:
        store.close()


def _last_id(store: Any) -> int:
    newest = store.flows(None, limit=1)
    return int(newest[0].id) if newest else 0


def _row_heading() -> str:
    return f"{'ID':>8}  {'TIME':<12}  {'METHOD':<7} {'STATUS':>6} {'MS':>8} {'SIZE':>8}  URL"


def _row(record: FlowRecord) -> str:
    when = datetime.fromtimestamp(record.started).strftime("%H:%M:%S.%f")[:12]
    status = str(record.status) if record.status is not None else "ERR"
    duration = record.duration
    ms = f"{duration * 1000:.1f}" if duration is not None else "-"
    size = _size(record.response_body.size)
    if record.proto in cli_flows_db.PROTOCOLS:  # a Redis command or SQL statement
        status = cli_flows_db.row_status(record)
        error = f"  ! {record.error}" if record.error else ""
        columns = f"{record.id:>8}  {when:<12}  {record.method[:7]:<7} {status:>6} {ms:>8} {size:>8}"
        return f"{columns}  {cli_flows_db.row_target(record)}{error}"
    if record.proto == "websocket":  # a message: its direction and payload size
        sent = record.reason == "send"
        status, ms = ("ws->" if sent else "ws<-"), "-"
        size = _size((record.request_body if sent else record.response_body).size)
    error = f"  ! {record.error}" if record.error else ""
    columns = f"{record.id:>8}  {when:<12}  {record.method:<7} {status:>6} {ms:>8} {size:>8}"
    return f"{columns}  {record.url}{error}"


def _size(count: int) -> str:
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f}{unit}" if unit == "B" else f"{value:.1f}{unit}"
        value /= 1024
    return f"{count}B"


def _json_line(record: FlowRecord) -> str:
    duration = record.duration
    return json.dumps(
        {
            "id": record.id,
            "started": record.started,
            "conn": record.conn_uid,
            "proto": record.proto,
            "method": record.method,
            "url": record.url,
            "host": record.host,
            "path": record.path,
            "status": record.status,
            "duration_ms": None if duration is None else round(duration * 1000.0, 3),
            "request_size": record.request_body.size,
            "response_size": record.response_body.size,
            "truncated": record.request_body.truncated or record.response_body.truncated,
            "error": record.error,
            "listener": record.listener,
            "client": record.client,
            "user": record.user,
            **_db_fields(record),
        }
    )


def _db_fields(record: FlowRecord) -> dict[str, Any]:
    if record.proto not in cli_flows_db.PROTOCOLS:
        return {}
    return {
        "command": record.command,
        "statement": record.statement,
        "fingerprint": record.fingerprint,
        "sqlstate": record.sqlstate,
        "rows": record.rows,
        "category": record.category,
        "reply": record.reason,
    }


# --- show -----------------------------------------------------------------------------


@_command
def _show(args: argparse.Namespace) -> int:
    store = _open(args)
    try:
        record = store.get(args.id)
        connection = store.connection(record.conn_uid) if record else None
        upgraded = record is not None and record.notes.get("upgraded") == "101"
        messages = websocket_messages(store, record) if record is not None and upgraded else []
    finally:
        store.close()
    if record is None:
        raise _Failed(f"no flow {args.id}", 1)
    if args.raw:
        body = record.request_body if args.raw == "request" else record.response_body
        sys.stdout.buffer.write(body.data)
        sys.stdout.flush()
        return 0
    if args.json and record.proto in cli_flows_db.PROTOCOLS:
        print(
            json.dumps(
                {**json.loads(_json_line(record)), "keys": record.keys, "notes": record.notes}, indent=2
            )
        )
        return 0
    if args.json:
        from lanner.record.har import entry

        print(json.dumps(entry(record), indent=2, ensure_ascii=False))
        return 0
    out = sys.stdout
    if record.proto in cli_flows_db.PROTOCOLS:
        cli_flows_db.show(out, record, connection)
        return 0
    duration = record.duration
    took = f"{duration * 1000:.1f} ms" if duration is not None else "incomplete"
    out.write(f"flow {record.id}  {record.method} {record.url}\n")
    status = f"{record.status} {record.reason}" if record.status is not None else "no response"
    out.write(f"  status    {status}  ({took})\n")
    out.write(f"  started   {datetime.fromtimestamp(record.started).isoformat(timespec='milliseconds')}\n")
    out.write(f"  timings   {_timings(record)}\n")
    user = f", user {record.user}" if record.user else ""
    via = f"listener {record.listener}, client {record.client}{user}"
    out.write(f"  via       {via}\n")
    out.write(f"  conn      {record.conn_uid}")
    if connection is not None:
        sni = f", sni {connection.sni}" if connection.sni else ""
        out.write(f" ({connection.protocol} to {connection.dest or '-'}{sni}, {connection.outcome})")
    out.write("\n")
    if record.interim:
        out.write(f"  interim   {', '.join(map(str, record.interim))}\n")
    if record.error:
        out.write(f"  error     {record.error}\n")
    for name, note in record.notes.items():
        out.write(f"  note      {name}: {note}\n")
    if record.proto == "websocket":
        side = "request" if record.notes.get("direction") == "send" else "response"
        body = record.request_body if side == "request" else record.response_body
        out.write(f"\n{'>' if side == 'request' else '<'} {record.method} message, {body.size} bytes\n")
        out.write(_body_text(record, side, [], body) + "\n")
        return 0
    _message(out, f"> {record.method} {record.path} HTTP/{record.http_version}", record, "request")
    if record.status is not None:
        _message(out, f"< HTTP/{record.http_version} {status}", record, "response")
    if record.notes.get("upgraded") == "101":
        _websocket_messages(out, messages)
    return 0


def _websocket_messages(out: IO[str], messages: list[FlowRecord]) -> None:
    out.write(f"\nwebsocket messages ({len(messages)}):\n")
    for message in messages:
        sent = message.notes.get("direction") == "send"
        body = message.request_body if sent else message.response_body
        when = datetime.fromtimestamp(message.started).strftime("%H:%M:%S.%f")[:12]
        try:
            preview = body.data[:WS_PREVIEW].decode("utf-8")
        except UnicodeDecodeError:
            preview = body.data[: WS_PREVIEW // 3].hex(" ")
        more = "…" if len(body.data) > WS_PREVIEW else ""
        arrow = "->" if sent else "<-"
        out.write(
            f"  {message.id:>8}  {when}  {arrow} {message.method:<6} {_size(body.size):>8}  {preview}{more}\n"
        )


def _timings(record: FlowRecord) -> str:
    def ms(start: float | None, end: float | None) -> str:
        return f"{(end - start) * 1000:.1f}" if start is not None and end is not None else "-"

    return (
        f"request {ms(record.started, record.request_ended)} ms, "
        f"first byte {ms(record.request_ended, record.response_started)} ms, "
        f"response {ms(record.response_started, record.response_ended)} ms"
    )


def _message(out: IO[str], first: str, record: FlowRecord, side: str) -> None:
    headers, body, trailers = (
        (record.request_headers, record.request_body, record.request_trailers)
        if side == "request"
        else (record.response_headers, record.response_body, record.response_trailers)
    )
    out.write(f"\n{first}\n")
    for name, value in headers:
        out.write(f"{name}: {value}\n")
    if body.size or body.data:
        out.write("\n")
        out.write(_body_text(record, side, headers, body))
        out.write("\n")
    for name, value in trailers:
        out.write(f"{name}: {value}  (trailer)\n")


def _body_text(record: FlowRecord, side: str, headers: Headers, body: Body) -> str:
    decoded, error = bodies.readable(record, side)
    lines = []
    if body.truncated:
        tail = len(body.data) - body.head_len
        lines.append(f"[{body.size} bytes, truncated: first {body.head_len} and last {tail} kept]")
    if error:
        lines.append(f"[{error}]")
    content_type = header(headers, "content-type")
    try:
        text = decoded.decode("utf-8")
    except UnicodeDecodeError:
        if not bodies.is_text(content_type):
            preview = decoded[:BINARY_PREVIEW].hex(" ")
            lines.append(f"[{len(decoded)} bytes binary; --raw {side} writes it] {preview}")
            return "\n".join(lines)
        text = decoded.decode("utf-8", "replace")
    if content_type and "json" in content_type.lower() and not body.truncated:
        try:
            text = json.dumps(json.loads(text), indent=2, ensure_ascii=False)
        except ValueError:
            pass
    lines.append(text)
    return "\n".join(lines)


# --- stats ----------------------------------------------------------------------------


@_command
def _stats(args: argparse.Namespace) -> int:
    query = _query(args.filter)
    by = args.by or cli_flows_db.grouping(query)
    store = _open(args)
    try:
        stats = store.stats(query)
        groups = store.group_stats(query, by) if by else []
    finally:
        store.close()
    print(f"flows        {stats.flows}")
    print(f"connections  {stats.connections}")
    print(f"store size   {_size(stats.db_bytes)}")
    classes = "  ".join(f"{name} {count}" for name, count in stats.status_classes.items())
    print(f"status       {classes or '-'}")
    if by:
        cli_flows_db.print_groups(by, groups)
    elif stats.latency:
        print(f"\n{'HOST':<32} {'PATH':<24} {'FLOWS':>8} {'P50 MS':>9} {'P95 MS':>9} {'P99 MS':>9}")
        for host, group, count, p50, p95, p99 in stats.latency:
            cells = " ".join(f"{v:>9.1f}" if v is not None else f"{'-':>9}" for v in (p50, p95, p99))
            print(f"{host[:32]:<32} {group[:24]:<24} {count:>8} {cells}")
    return 0


# --- export and import ----------------------------------------------------------------


@_command
def _export(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from lanner.record.har import write_har

    query = _query(args.filter)
    store = _open(args)
    try:
        total = store.count(query)
        with tqdm(total=total, unit="flow", desc="export", file=sys.stderr, disable=None) as progress:

            def whole() -> Iterator[FlowRecord]:
                last = 0
                while page := store.flows_after(query, last, PAGE):
                    for summary in page:
                        record = store.get(summary.id)
                        if record is not None:
                            yield record
                        progress.update()
                    last = page[-1].id

            def messages(upgrade: FlowRecord) -> list[FlowRecord]:
                return websocket_messages(store, upgrade)

            if args.har == "-":
                count = write_har(sys.stdout, whole(), messages)
            else:
                try:
                    with open(args.har, "w", encoding="utf-8") as out:
                        count = write_har(out, whole(), messages)
                except OSError as exc:
                    raise _Failed(f"cannot write {args.har}: {exc.strerror}", 1) from exc
    finally:
        store.close()
    print(f"exported {count} flows to {args.har}", file=sys.stderr)
    return 0


@_command
def _import(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from lanner.record.har import HarError, read_har

    try:
        source = open(args.file, encoding="utf-8")  # noqa: SIM115 (closed below)
    except OSError as exc:
        raise _Failed(f"cannot read {args.file}: {exc.strerror}", 1) from exc
    store = _open(args, readonly=False)
    count = 0
    try:
        batch: list[FlowRecord] = []
        with tqdm(unit="flow", desc="import", file=sys.stderr, disable=None) as progress:
            for record in read_har(source):
                record.search_text = bodies.flow_search_text(record)
                batch.append(record)
                if len(batch) >= PAGE:
                    store.write([], batch)
                    count += len(batch)
                    progress.update(len(batch))
                    batch = []
            if batch:
                store.write([], batch)
                count += len(batch)
                progress.update(len(batch))
    except HarError as exc:
        raise _Failed(f"{args.file}: {exc} ({count} flows imported before it)", 1) from exc
    finally:
        source.close()
        store.close()
    print(f"imported {count} flows from {args.file}", file=sys.stderr)
    return 0
