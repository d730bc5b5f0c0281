"""Redis and PostgreSQL flows in the SQLite store: their columns, keys, filters, grouping, migration."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from lanner.record.filter import parse
from lanner.record.model import FlowRecord
from lanner.record.sqlite import SqliteStore
from lanner.record.store import StoreError

T0 = 1_700_000_000.0


def redis_flow(n: int, command: str, keys: list[str], error: str | None = None, ms: float = 1.0) -> FlowRecord:
    name = command.split()[0]
    return FlowRecord(
        conn_uid="p.1", proto="redis", started=T0 + n, method=name, scheme="redis", host="127.0.0.1",
        port=6379, path="/0", request_ended=T0 + n, response_started=T0 + n + ms / 1000,
        response_ended=T0 + n + ms / 1000, command=command, statement=name, keys=keys, category="read",
        error=error, reason="bulk",
    )  # fmt: skip


def pg_flow(n: int, sql: str, fingerprint: str, rows: int, sqlstate: str | None = None) -> FlowRecord:
    return FlowRecord(
        conn_uid="p.2", proto="postgres", started=T0 + n, method=sql.split()[0].upper(), scheme="postgres",
        host="127.0.0.1", port=5432, path="/test", request_ended=T0 + n, response_started=T0 + n + 0.002,
        response_ended=T0 + n + 0.002, command=sql, statement=sql, fingerprint=fingerprint, rows=rows,
        sqlstate=sqlstate, error=f"ERROR {sqlstate}: boom" if sqlstate else None, category="simple",
    )  # fmt: skip


@pytest.fixture
def store(tmp_path: Path) -> SqliteStore:
    opened = SqliteStore(str(tmp_path / "lanner.db"))
    opened.write(
        [],
        [
            redis_flow(1, "GET user:1", ["user:1"]),
            redis_flow(2, "MSET user:2 a order:9 b", ["user:2", "order:9"], ms=3.0),
            redis_flow(3, "INCR user:1", ["user:1"], error="ERR value is not an integer"),
            pg_flow(4, "SELECT * FROM orders WHERE id = 5", "aa11", 1),
            pg_flow(5, "select * from orders where id = 6", "aa11", 1),
            pg_flow(6, "INSERT INTO orders VALUES (1)", "bb22", 0, sqlstate="23505"),
        ],
    )
    yield opened  # type: ignore[misc]
    opened.close()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("proto:redis cmd:GET", [1]),
        ("key:user:*", [3, 2, 1]),
        ("key:order:9", [2]),
        ("proto:redis error:*", [3]),
        ('sql:"select * from orders"', [5, 4]),  # case-insensitive substring; quoted: `*` is itself
        ("sql:insert*values", [6]),
        ("sqlstate:23505", [6]),
        ("fingerprint:aa11", [5, 4]),
        ("rows:>0", [5, 4]),
        ("proto:postgresql", [6, 5, 4]),
    ],
)
def test_filters(store: SqliteStore, text: str, expected: list[int]) -> None:
    assert [flow.id for flow in store.flows(parse(text))] == expected


def test_round_trip_of_db_fields(store: SqliteStore) -> None:
    flow = store.get(2)
    assert flow is not None
    assert (flow.command, flow.statement, flow.keys, flow.category) == (
        "MSET user:2 a order:9 b", "MSET", ["user:2", "order:9"], "read",
    )  # fmt: skip
    assert flow.url == "redis://127.0.0.1/0"
    listed = store.flows(parse("id:6"))[0]
    assert (listed.fingerprint, listed.sqlstate, listed.rows) == ("bb22", "23505", 0)


def test_group_stats(store: SqliteStore) -> None:
    by_command = {group.group: group for group in store.group_stats(parse("proto:redis"), "command")}
    assert set(by_command) == {"GET", "MSET", "INCR"}
    assert (by_command["INCR"].calls, by_command["INCR"].errors) == (1, 1)
    assert by_command["MSET"].p50 == pytest.approx(3.0, abs=0.01)
    by_fingerprint = store.group_stats(parse("proto:postgres"), "fingerprint")
    assert [(g.group, g.calls, g.errors, g.rows) for g in by_fingerprint] == [("aa11", 2, 0, 2), ("bb22", 1, 1, 0)]
    with pytest.raises(ValueError):
        store.group_stats(None, "host")


def test_pruning_removes_keys(store: SqliteStore, tmp_path: Path) -> None:
    assert store.prune(max_age=1.0, max_bytes=None, now=T0 + 10_000) == 6
    rows = sqlite3.connect(tmp_path / "lanner.db").execute("SELECT count(*) FROM flow_keys").fetchone()
    assert rows == (0,)


def test_version_1_store_is_upgraded_in_place(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    db = sqlite3.connect(path)
    db.executescript(
        """
        CREATE TABLE connections (uid TEXT PRIMARY KEY, listener TEXT NOT NULL, client TEXT NOT NULL,
            protocol TEXT NOT NULL, started REAL NOT NULL, ended REAL NOT NULL, user TEXT, dest TEXT, sni TEXT,
            up INTEGER NOT NULL, down INTEGER NOT NULL, requests INTEGER NOT NULL, outcome TEXT NOT NULL,
            detail TEXT, worker INTEGER);
        CREATE TABLE flows (id INTEGER PRIMARY KEY, conn_uid TEXT NOT NULL, proto TEXT NOT NULL,
            started REAL NOT NULL, method TEXT NOT NULL, scheme TEXT NOT NULL, host TEXT NOT NULL,
            port INTEGER NOT NULL, path TEXT NOT NULL, url TEXT NOT NULL, http_version TEXT NOT NULL,
            status INTEGER, reason TEXT NOT NULL, duration_ms REAL, request_ended REAL, response_started REAL,
            response_ended REAL, request_size INTEGER NOT NULL, request_truncated INTEGER NOT NULL,
            response_size INTEGER NOT NULL, response_truncated INTEGER NOT NULL, error TEXT,
            listener TEXT NOT NULL, client TEXT NOT NULL, user TEXT);
        CREATE TABLE flow_details (flow_id INTEGER PRIMARY KEY, meta TEXT NOT NULL,
            request_codec TEXT NOT NULL, request_body BLOB NOT NULL, request_head INTEGER NOT NULL,
            response_codec TEXT NOT NULL, response_body BLOB NOT NULL, response_head INTEGER NOT NULL);
        CREATE VIRTUAL TABLE flows_fts USING fts5 (url, headers, body, columnsize=0);
        INSERT INTO flows VALUES (1, 'p.1', 'http', 1.0, 'GET', 'http', 'h', 80, '/', 'http://h/', '1.1', 200,
            'OK', 1.0, NULL, NULL, 2.0, 0, 0, 0, 0, NULL, 'forward', '127.0.0.1:1', NULL);
        PRAGMA user_version = 1;
        """
    )
    db.close()
    with pytest.raises(StoreError, match="upgrades it"):
        SqliteStore(str(path), readonly=True)
    writer = SqliteStore(str(path))
    writer.write([], [redis_flow(2, "GET k", ["k"])])
    assert [flow.id for flow in writer.flows(None)] == [2, 1]
    assert writer.flows(parse("key:k"))[0].command == "GET k"
    writer.close()
    reader = SqliteStore(str(path), readonly=True)
    assert reader.count(None) == 2
    reader.close()


def test_sql_matches_text_in_any_script(tmp_path: Path) -> None:
    store = SqliteStore(str(tmp_path / "u.db"))
    store.write([], [pg_flow(1, "SELECT * FROM fruit WHERE name = 'Äpfel'", "cc33", 1)])
    assert [flow.id for flow in store.flows(parse("sql:äpfel"))] == [1]
    assert [flow.id for flow in store.flows(parse('sql:"NAME = \'ÄPFEL\'"'))] == [1]
    store.close()
