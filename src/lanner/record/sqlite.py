"""The SQLite flow store: the schema, every SQL statement, and filter translation.

One file in WAL mode (readers never block the writer), written in one
transaction per batch. Flow rows hold what lists and filters need and are
indexed on time, host, status, method, path, protocol, duration and connection;
headers, trailers, notes and the (compressed) bodies live in `flow_details`,
read only by `get`; URL, header and decoded body text are indexed by FTS5.
Retention deletes in small transactions and gives pages back with
incremental vacuum. Every sqlite3 error leaves as a StoreError naming the
reason (full, readonly, locked, corrupt).
"""

from __future__ import annotations

import json
import sqlite3
import statistics
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Final

from lanner.record import bodies
from lanner.record.filter import And, Node, Not, Or, Query, Term
from lanner.record.model import Body, ConnectionRecord, FlowRecord, GroupStats, Headers, StoreStats
from lanner.record.store import StoreError, StoreNotCreated

SCHEMA_VERSION: Final = 2
PRUNE_BATCH: Final = 2000
VACUUM_BATCH: Final = 2048  # pages
ANALYSIS_LIMIT: Final = 10000  # rows ANALYZE samples per index (1,000 could not tell host from method)
STATS_GROUPS: Final = 20
_META_ENCODER: Final = json.JSONEncoder(separators=(",", ":"))  # one encoder, not one per json.dumps call

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS connections (
    uid TEXT PRIMARY KEY, listener TEXT NOT NULL, client TEXT NOT NULL, protocol TEXT NOT NULL,
    started REAL NOT NULL, ended REAL NOT NULL, user TEXT, dest TEXT, sni TEXT,
    up INTEGER NOT NULL, down INTEGER NOT NULL, requests INTEGER NOT NULL,
    outcome TEXT NOT NULL, detail TEXT, worker INTEGER
);
CREATE INDEX IF NOT EXISTS connections_ended ON connections (ended);
CREATE TABLE IF NOT EXISTS flows (
    id INTEGER PRIMARY KEY, conn_uid TEXT NOT NULL, proto TEXT NOT NULL, started REAL NOT NULL,
    method TEXT NOT NULL, scheme TEXT NOT NULL, host TEXT NOT NULL, port INTEGER NOT NULL,
    path TEXT NOT NULL, url TEXT NOT NULL, http_version TEXT NOT NULL,
    status INTEGER, reason TEXT NOT NULL, duration_ms REAL,
    request_ended REAL, response_started REAL, response_ended REAL,
    request_size INTEGER NOT NULL, request_truncated INTEGER NOT NULL,
    response_size INTEGER NOT NULL, response_truncated INTEGER NOT NULL,
    error TEXT, listener TEXT NOT NULL, client TEXT NOT NULL, user TEXT,
    command TEXT NOT NULL DEFAULT '', statement TEXT NOT NULL DEFAULT '', fingerprint TEXT, sqlstate TEXT,
    rows INTEGER, category TEXT
);
CREATE INDEX IF NOT EXISTS flows_started ON flows (started);
CREATE INDEX IF NOT EXISTS flows_host ON flows (host);
CREATE INDEX IF NOT EXISTS flows_status ON flows (status);
CREATE INDEX IF NOT EXISTS flows_method ON flows (method);
CREATE INDEX IF NOT EXISTS flows_path ON flows (path);
CREATE INDEX IF NOT EXISTS flows_proto ON flows (proto);
CREATE INDEX IF NOT EXISTS flows_duration ON flows (duration_ms);
CREATE INDEX IF NOT EXISTS flows_conn ON flows (conn_uid);
CREATE INDEX IF NOT EXISTS flows_fingerprint ON flows (fingerprint) WHERE fingerprint IS NOT NULL;
CREATE INDEX IF NOT EXISTS flows_sqlstate ON flows (sqlstate) WHERE sqlstate IS NOT NULL;
CREATE TABLE IF NOT EXISTS flow_keys (flow_id INTEGER NOT NULL, key TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS flow_keys_key ON flow_keys (key);
CREATE INDEX IF NOT EXISTS flow_keys_flow ON flow_keys (flow_id);
CREATE TABLE IF NOT EXISTS flow_details (
    flow_id INTEGER PRIMARY KEY, meta TEXT NOT NULL,
    request_codec TEXT NOT NULL, request_body BLOB NOT NULL, request_head INTEGER NOT NULL,
    response_codec TEXT NOT NULL, response_body BLOB NOT NULL, response_head INTEGER NOT NULL
);
CREATE VIRTUAL TABLE IF NOT EXISTS flows_fts USING fts5 (url, headers, body, columnsize=0);
"""

_FLOW_COLUMNS: Final = (
    "id, conn_uid, proto, started, method, scheme, host, port, path, url, http_version, status, reason,"
    " duration_ms, request_ended, response_started, response_ended, request_size, request_truncated,"
    " response_size, response_truncated, error, listener, client, user,"
    " command, statement, fingerprint, sqlstate, rows, category"
)
_INSERT_FLOW: Final = f"INSERT INTO flows ({_FLOW_COLUMNS}) VALUES ({', '.join('?' * 31)})"
_INSERT_KEY: Final = "INSERT INTO flow_keys (flow_id, key) VALUES (?, ?)"
# Version 1 stores (HTTP only) gain the Redis and PostgreSQL columns in place.
_MIGRATE_1: Final = """
ALTER TABLE flows ADD COLUMN command TEXT NOT NULL DEFAULT '';
ALTER TABLE flows ADD COLUMN statement TEXT NOT NULL DEFAULT '';
ALTER TABLE flows ADD COLUMN fingerprint TEXT;
ALTER TABLE flows ADD COLUMN sqlstate TEXT;
ALTER TABLE flows ADD COLUMN rows INTEGER;
ALTER TABLE flows ADD COLUMN category TEXT;
"""
_INSERT_DETAILS: Final = "INSERT INTO flow_details VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
_INSERT_FTS: Final = "INSERT INTO flows_fts (rowid, url, headers, body) VALUES (?, ?, ?, ?)"
_CONNECTION_COLUMNS: Final = ", ".join(
    ("uid", "listener", "client", "protocol", "started", "ended", "user", "dest", "sni")
    + ("up", "down", "requests", "outcome", "detail", "worker")
)
_INSERT_CONNECTION: Final = (
    f"INSERT OR REPLACE INTO connections ({_CONNECTION_COLUMNS}) VALUES ({', '.join('?' * 15)})"
)

# Filter fields that are plain columns of `flows` (text fields go through FTS).
_COLUMNS: Final = {
    "host": "host", "method": "method", "path": "path", "url": "url", "proto": "proto",
    "scheme": "scheme", "conn": "conn_uid", "user": "user", "listener": "listener",
    "client": "client", "error": "error", "status": "status", "duration": "duration_ms",
    "size": "response_size", "id": "id", "started": "started", "cmd": "method", "sqlstate": "sqlstate",
    "fingerprint": "fingerprint", "rows": "rows", "category": "category",
}  # fmt: skip
_FTS_COLUMNS: Final = {"text": "", "body": "body", "header": "headers"}


def _reason(exc: sqlite3.Error) -> str:
    text = str(exc).lower()
    if "full" in text:
        return "full"
    if "readonly" in text or "read-only" in text or "unable to open" in text or "permission" in text:
        return "readonly"
    if "locked" in text or "busy" in text:
        return "locked"
    if "malformed" in text or "not a database" in text or "corrupt" in text:
        return "corrupt"
    return "error"


def _error(exc: sqlite3.Error, what: str) -> StoreError:
    error = StoreError(f"{what}: {_reason(exc)} ({exc})")
    error.reason = _reason(exc)  # type: ignore[attr-defined]
    return error


class SqliteStore:
    """The default store. One instance per thread; readers open their own (`readonly=True`)."""

    def __init__(self, path: str, readonly: bool = False, busy_timeout: float = 5.0) -> None:
        self.path = path
        self.readonly = readonly
        try:
            if readonly:
                if not Path(path).exists():
                    raise StoreError(f"no flow store at {path}")
                uri = f"file:{Path(path).absolute().as_posix()}?mode=ro"
                self.db = sqlite3.connect(uri, uri=True, timeout=busy_timeout, check_same_thread=False)
            else:
                Path(path).parent.mkdir(parents=True, exist_ok=True)
                self.db = sqlite3.connect(path, timeout=busy_timeout, check_same_thread=False)
            self.db.isolation_level = None  # explicit transactions only
            self.db.create_function("path_group", 1, _path_group, deterministic=True)
            # SQLite's lower() folds ASCII only; `sql:` matches text in any script.
            self.db.create_function("fold", 1, _fold, deterministic=True)
            self._setup()
        except OSError as exc:
            raise StoreError(f"cannot open {path}: readonly ({exc})") from exc
        except sqlite3.Error as exc:
            raise _error(exc, f"cannot open {path}") from exc

    def _setup(self) -> None:
        db = self.db
        if self.readonly:
            version = db.execute("PRAGMA user_version").fetchone()[0]
            if version == 1:
                raise StoreError(f"{self.path} is an older lanner flow store: `lanner run` upgrades it")
            if version == 0 and not db.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]:
                raise StoreNotCreated(f"{self.path} is being created")
            if version != SCHEMA_VERSION:
                raise StoreError(f"{self.path} is not a lanner flow store (schema {version})")
            return
        db.execute("PRAGMA auto_vacuum = INCREMENTAL")  # takes effect on a new file only
        if db.execute("PRAGMA journal_mode = WAL").fetchone()[0].lower() != "wal":
            raise StoreError(f"{self.path}: cannot use WAL mode")
        db.execute("PRAGMA synchronous = NORMAL")
        # A batch touches pages of every index: a 64 MiB page cache (an upper bound, filled
        # lazily) and checkpoints every ~40 MB of WAL instead of ~4 MB write 15% more flows/s
        # (bench/store_bench.py, 2026-11-27: 14.5k -> 16.5k flows/s on a new store).
        db.execute("PRAGMA cache_size = -65536")
        db.execute("PRAGMA wal_autocheckpoint = 10000")
        version = db.execute("PRAGMA user_version").fetchone()[0]
        if version not in (0, 1, SCHEMA_VERSION):
            raise StoreError(f"{self.path} has schema version {version}; this lanner knows {SCHEMA_VERSION}")
        if version == 0:  # IF NOT EXISTS: two workers may create it at once
            db.executescript(f"BEGIN IMMEDIATE; {_SCHEMA} PRAGMA user_version = {SCHEMA_VERSION}; COMMIT;")
        elif version == 1:
            with self._transaction():
                if db.execute("PRAGMA user_version").fetchone()[0] == 1:  # another worker may have done it
                    for statement in filter(str.strip, _MIGRATE_1.split(";")):
                        db.execute(statement)
                    for statement in filter(str.strip, _SCHEMA.split(";")):
                        db.execute(statement)  # the new tables and indexes (IF NOT EXISTS)
                    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    # --- writing --------------------------------------------------------------------------

    def write(self, connections: Sequence[ConnectionRecord], flows: Sequence[FlowRecord]) -> None:
        db = self.db
        try:
            with self._transaction():
                try:
                    if connections:
                        db.executemany(_INSERT_CONNECTION, [_connection_row(c) for c in connections])
                    if flows:
                        first = (db.execute("SELECT coalesce(max(id), 0) FROM flows").fetchone()[0]) + 1
                        for offset, record in enumerate(flows):
                            record.id = first + offset
                        db.executemany(_INSERT_FLOW, [_flow_row(f) for f in flows])
                        db.executemany(_INSERT_DETAILS, [_details_row(f) for f in flows])
                        db.executemany(_INSERT_FTS, [_fts_row(f) for f in flows])
                        keys = [(f.id, key) for f in flows if f.keys for key in f.keys]
                        if keys:
                            db.executemany(_INSERT_KEY, keys)
                except BaseException:
                    for record in flows:
                        record.id = 0
                    raise
        except sqlite3.Error as exc:
            raise _error(exc, f"cannot write to {self.path}") from exc

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        """BEGIN IMMEDIATE ... COMMIT, rolled back if the body raises."""
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield
            self.db.execute("COMMIT")
        except BaseException:
            if self.db.in_transaction:
                self.db.execute("ROLLBACK")
            raise

    # --- reading --------------------------------------------------------------------------

    def flows(self, query: Query | None, limit: int = 100, before_id: int | None = None) -> list[FlowRecord]:
        where, params = _where(query)
        if before_id is not None:
            where, params = f"({where}) AND id < ?", [*params, before_id]
        sql = f"SELECT {_FLOW_COLUMNS} FROM flows WHERE {where} ORDER BY id DESC LIMIT ?"
        return [_flow(row) for row in self._rows(sql, [*params, limit])]

    def flows_after(self, query: Query | None, after_id: int, limit: int = 1000) -> list[FlowRecord]:
        where, params = _where(query)
        sql = f"SELECT {_FLOW_COLUMNS} FROM flows WHERE ({where}) AND id > ? ORDER BY id LIMIT ?"
        return [_flow(row) for row in self._rows(sql, [*params, after_id, limit])]

    def count(self, query: Query | None) -> int:
        where, params = _where(query)
        return int(self._rows(f"SELECT count(*) FROM flows WHERE {where}", params)[0][0])

    def get(self, flow_id: int) -> FlowRecord | None:
        rows = self._rows(f"SELECT {_FLOW_COLUMNS} FROM flows WHERE id = ?", [flow_id])
        if not rows:
            return None
        record = _flow(rows[0])
        details = self._rows("SELECT * FROM flow_details WHERE flow_id = ?", [flow_id])
        if details:
            _, meta, req_codec, req_blob, req_head, resp_codec, resp_blob, resp_head = details[0]
            extra = json.loads(meta)
            record.request_headers = _headers(extra["request_headers"])
            record.request_trailers = _headers(extra["request_trailers"])
            record.response_headers = _headers(extra["response_headers"])
            record.response_trailers = _headers(extra["response_trailers"])
            record.interim = list(extra["interim"])
            record.notes = dict(extra["notes"])
            record.keys = list(extra.get("keys", ()))
            try:
                record.request_body.data = bodies.decompress(req_codec, req_blob)
                record.response_body.data = bodies.decompress(resp_codec, resp_blob)
            except Exception as exc:  # a damaged blob: keep the flow, say why the body is missing
                record.notes["store"] = f"body unreadable: {exc}"
            record.request_body.head_len = req_head
            record.response_body.head_len = resp_head
        return record

    def connection(self, uid: str) -> ConnectionRecord | None:
        rows = self._rows(f"SELECT {_CONNECTION_COLUMNS} FROM connections WHERE uid = ?", [uid])
        return ConnectionRecord(*rows[0]) if rows else None

    def connections(self, limit: int = 100, before_ended: float | None = None) -> list[ConnectionRecord]:
        sql = f"SELECT {_CONNECTION_COLUMNS} FROM connections"
        params: list[Any] = []
        if before_ended is not None:
            sql += " WHERE ended < ?"
            params.append(before_ended)
        sql += " ORDER BY ended DESC LIMIT ?"
        return [ConnectionRecord(*row) for row in self._rows(sql, [*params, limit])]

    def stats(self, query: Query | None) -> StoreStats:
        where, params = _where(query)
        flows = self.count(query)
        connections = self._rows("SELECT count(*) FROM connections", [])[0][0]
        classes: dict[str, int] = {}
        for klass, count in self._rows(
            f"SELECT status / 100, count(*) FROM flows WHERE {where} GROUP BY status / 100 ORDER BY 1", params
        ):
            classes["none" if klass is None else f"{klass}xx"] = count
        groups = self._rows(
            f"SELECT host, path_group(path), count(*) FROM flows WHERE {where}"
            " GROUP BY 1, 2 ORDER BY 3 DESC LIMIT ?",
            [*params, STATS_GROUPS],
        )
        latency = []
        for host, group, count in groups:
            group_where = f"({where}) AND host = ? AND path_group(path) = ?"
            p50, p95, p99 = self._latency(group_where, [*params, host, group])
            latency.append((host, group, count, p50, p95, p99))
        return StoreStats(flows, connections, classes, latency, self.size())

    def group_stats(self, query: Query | None, by: str) -> list[GroupStats]:
        """Calls, errors, rows and latency percentiles per Redis command or per SQL fingerprint."""
        where, params = _where(query)
        if by == "fingerprint":  # statements the server ran (not prepares or session events)
            column, only = "fingerprint", "AND category IN ('simple', 'extended', 'function')"
        elif by == "command":
            column, only = "method", "AND proto = 'redis'"
        else:
            raise ValueError(f"cannot group by {by!r}")
        groups = self._rows(
            f"SELECT {column}, max(statement), count(*), count(error), coalesce(sum(rows), 0) FROM flows"
            f" WHERE ({where}) AND {column} IS NOT NULL {only} GROUP BY 1 ORDER BY 3 DESC LIMIT ?",
            [*params, STATS_GROUPS],
        )
        found = []
        for group, text, calls, errors, rows in groups:
            latency = self._latency(f"({where}) AND {column} = ? {only}", [*params, group])
            found.append(GroupStats(group, text, calls, errors, rows, *latency))
        return found

    def _latency(self, where: str, params: list[Any]) -> tuple[float | None, float | None, float | None]:
        """p50, p95 and p99 of the durations of the flows `where` selects."""
        sql = f"SELECT duration_ms FROM flows WHERE {where} AND duration_ms IS NOT NULL"
        return _percentiles([row[0] for row in self._rows(sql, params)])

    def size(self) -> int:
        """Bytes the database uses (its pages in use, not counting free pages)."""
        pages, free, page_size = (
            self._rows(f"PRAGMA {pragma}", [])[0][0]
            for pragma in ("page_count", "freelist_count", "page_size")
        )
        return int((pages - free) * page_size)

    def _rows(self, sql: str, params: Iterable[Any]) -> list[Any]:
        try:
            return self.db.execute(sql, list(params)).fetchall()
        except sqlite3.Error as exc:
            raise _error(exc, f"cannot read {self.path}") from exc

    # --- retention ------------------------------------------------------------------------

    def prune(self, max_age: float | None, max_bytes: int | None, now: float) -> int:
        deleted = 0
        try:
            if max_age is not None:
                cutoff = now - max_age
                while True:
                    ids = [r[0] for r in self.db.execute(
                        "SELECT id FROM flows WHERE started < ? ORDER BY id LIMIT ?", (cutoff, PRUNE_BATCH)
                    )]  # fmt: skip
                    if not ids:
                        break
                    deleted += self._delete(ids)
                self._exec("DELETE FROM connections WHERE ended < ?", (cutoff,))
            if max_bytes is not None:
                while self.size() > max_bytes:
                    ids = [
                        r[0]
                        for r in self.db.execute("SELECT id FROM flows ORDER BY id LIMIT ?", (PRUNE_BATCH,))
                    ]
                    if not ids:
                        break
                    deleted += self._delete(ids)
                    oldest = self.db.execute("SELECT min(started) FROM flows").fetchone()[0]
                    if oldest is not None:
                        self._exec("DELETE FROM connections WHERE ended < ?", (oldest,))
                if self.size() > max_bytes:  # no flows left: connection rows are what remains
                    self._exec("DELETE FROM connections", ())
            if deleted:
                self._vacuum()
            # Planner statistics, sampled (analysis_limit): without them SQLite may pick the
            # method index over the host one for `method:GET host:x`.
            self.db.executescript(f"PRAGMA analysis_limit = {ANALYSIS_LIMIT}; ANALYZE;")
        except sqlite3.Error as exc:
            raise _error(exc, f"cannot prune {self.path}") from exc
        return deleted

    def _vacuum(self) -> None:
        """Give free pages back to the file system, a batch per transaction, then shrink the WAL."""
        while self.db.execute("PRAGMA freelist_count").fetchone()[0]:
            # executescript steps the pragma to completion; execute would free one page per call
            self.db.executescript(f"PRAGMA incremental_vacuum({VACUUM_BATCH});")
        self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()

    def _delete(self, ids: list[int]) -> int:
        marks = ", ".join("?" * len(ids))
        with self._transaction():
            tables = (
                ("flows", "id"),
                ("flow_details", "flow_id"),
                ("flows_fts", "rowid"),
                ("flow_keys", "flow_id"),
            )
            for table, column in tables:
                self.db.execute(f"DELETE FROM {table} WHERE {column} IN ({marks})", ids)
        return len(ids)

    def _exec(self, sql: str, params: Sequence[Any]) -> None:
        with self._transaction():
            self.db.execute(sql, params)

    def close(self) -> None:
        try:
            self.db.close()
        except sqlite3.Error as exc:
            raise _error(exc, f"cannot close {self.path}") from exc


# --- rows -----------------------------------------------------------------------------


def _connection_row(c: ConnectionRecord) -> tuple[Any, ...]:
    return (
        c.uid, c.listener, c.client, c.protocol, c.started, c.ended, c.user, c.dest, c.sni,
        c.up, c.down, c.requests, c.outcome, c.detail, c.worker,
    )  # fmt: skip


def _flow_row(f: FlowRecord) -> tuple[Any, ...]:
    duration = f.duration
    return (
        f.id, f.conn_uid, f.proto, f.started, f.method, f.scheme, f.host.lower(), f.port, f.path, f.url,
        f.http_version, f.status, f.reason, None if duration is None else duration * 1000.0,
        f.request_ended, f.response_started, f.response_ended,
        f.request_body.size, int(f.request_body.truncated),
        f.response_body.size, int(f.response_body.truncated),
        f.error, f.listener, f.client, f.user,
        f.command, f.statement, f.fingerprint, f.sqlstate, f.rows, f.category,
    )  # fmt: skip


def _details_row(f: FlowRecord) -> tuple[Any, ...]:
    meta = _META_ENCODER.encode(
        {
            "request_headers": f.request_headers,
            "request_trailers": f.request_trailers,
            "response_headers": f.response_headers,
            "response_trailers": f.response_trailers,
            "interim": f.interim,
            "notes": f.notes,
            "keys": f.keys,
        }
    )
    req_codec, req_blob = bodies.compress(f.request_body.data)
    resp_codec, resp_blob = bodies.compress(f.response_body.data)
    return (
        f.id,
        meta,
        req_codec,
        req_blob,
        f.request_body.head_len,
        resp_codec,
        resp_blob,
        f.response_body.head_len,
    )


def _fts_row(f: FlowRecord) -> tuple[Any, ...]:
    lines = [f"{name}: {value}" for name, value in f.request_headers]
    lines += [f"{name}: {value}" for name, value in f.response_headers]
    return (f.id, f.url, "\n".join(lines), f.search_text)


def _flow(row: Sequence[Any]) -> FlowRecord:
    (
        flow_id, conn_uid, proto, started, method, scheme, host, port, path, _url, http_version, status,
        reason, _duration, request_ended, response_started, response_ended, request_size, request_truncated,
        response_size, response_truncated, error, listener, client, user,
        command, statement, fingerprint, sqlstate, rows, category,
    ) = row  # fmt: skip
    return FlowRecord(
        conn_uid=conn_uid, proto=proto, started=started, method=method, scheme=scheme, host=host, port=port,
        path=path, http_version=http_version, request_body=Body(b"", request_size, bool(request_truncated)),
        request_ended=request_ended, status=status, reason=reason, response_started=response_started,
        response_body=Body(b"", response_size, bool(response_truncated)), response_ended=response_ended,
        error=error, listener=listener, client=client, user=user, id=flow_id, command=command,
        statement=statement, fingerprint=fingerprint, sqlstate=sqlstate, rows=rows, category=category,
    )  # fmt: skip


def _headers(pairs: list[list[str]]) -> Headers:
    return [(name, value) for name, value in pairs]


def _fold(text: str | None) -> str | None:
    return None if text is None else text.lower()


def _path_group(path: str | None) -> str:
    """The first path segment, the unit stats are grouped by: /v1/users/7?x=1 -> /v1."""
    if not path:
        return "/"
    bare = path.split("?", 1)[0]
    second = bare.find("/", 1)
    return bare if second < 0 else bare[:second]


def _percentiles(values: list[float]) -> tuple[float | None, float | None, float | None]:
    if not values:
        return None, None, None
    if len(values) == 1:
        return values[0], values[0], values[0]
    cuts = statistics.quantiles(values, n=100, method="inclusive")
    return cuts[49], cuts[94], cuts[98]


# --- filter translation ---------------------------------------------------------------


def _where(query: Query | None) -> tuple[str, list[Any]]:
    if query is None:
        return "1", []
    params: list[Any] = []
    return _node(query.root, params), params


def _node(node: Node, params: list[Any]) -> str:
    if isinstance(node, And):
        return "(" + " AND ".join(_node(item, params) for item in node.items) + ")"
    if isinstance(node, Or):
        return "(" + " OR ".join(_node(item, params) for item in node.items) + ")"
    if isinstance(node, Not):
        return f"NOT coalesce({_node(node.item, params)}, 0)"
    return _term(node, params)


def _term(term: Term, params: list[Any]) -> str:
    if term.op == "text":
        column = _FTS_COLUMNS[term.field]
        # FTS5 reads a NUL as the end of the query string: it can never match indexed text anyway.
        phrase = '"' + str(term.value).replace("\x00", "").replace('"', '""') + '"'
        params.append(f"{column} : {phrase}" if column else phrase)
        return "id IN (SELECT rowid FROM flows_fts WHERE flows_fts MATCH ?)"
    if term.field == "key":
        params.append(_glob(str(term.value)) if term.op == "glob" else term.value)
        operator = "GLOB" if term.op == "glob" else "="
        return f"id IN (SELECT flow_id FROM flow_keys WHERE key {operator} ?)"
    if term.field == "sql":  # a case-insensitive substring of the statement; unquoted, `*` matches anything
        text = str(term.value).lower()
        params.append("*" + (_glob(text) if term.op == "glob" else _literal(text)) + "*")
        return "fold(command) GLOB ?"
    column = _COLUMNS[term.field]
    if term.op == "any":
        return f"({column} IS NOT NULL AND {column} != '')"
    if term.op == "glob":
        params.append(_glob(str(term.value)))
        return f"{column} GLOB ?"
    if term.op == "range":
        assert isinstance(term.value, tuple)
        params += list(term.value)
        return f"{column} BETWEEN ? AND ?"
    params.append(term.value)
    return f"{column} {term.op} ?"


def _literal(text: str) -> str:
    """Text matched as itself by GLOB."""
    return "".join(f"[{char}]" if char in "[]?*" else char for char in text)


def _glob(pattern: str) -> str:
    """A filter pattern (only `*` is special) as a GLOB pattern."""
    return "".join(f"[{char}]" if char in "[]?" else char for char in pattern)
