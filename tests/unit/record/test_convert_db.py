"""Redis and PostgreSQL analyzer events as the flows the writer stores (record/convert_db.py)."""

from __future__ import annotations

import json

import pytest

from lanner.record.convert import DbItem, Origin
from lanner.record.convert_db import command_line, db_flow, normalize, quote_arg, split_sql
from lanner.wire import postgres as pg
from lanner.wire.resp import RespAnalyzer

ORIGIN = Origin("ab.1", "db", "127.0.0.1:5000", None, "redis", "127.0.0.1", 6379)
PG_ORIGIN = ORIGIN._replace(scheme="postgres", port=5432)


def redis_events(client: bytes, server: bytes) -> list[object]:
    analyzer = RespAnalyzer()
    return [*analyzer.client_data(client, 1.0), *analyzer.server_data(server, 1.5)]


def test_a_redis_command_and_its_reply() -> None:
    (event,) = redis_events(b'*3\r\n$3\r\nSET\r\n$6\r\nuser:1\r\n$9\r\ntwo words\r\n', b"+OK\r\n")
    flow = db_flow(DbItem(ORIGIN, event))
    assert (flow.proto, flow.method, flow.path, flow.url) == ("redis", "SET", "/0", "redis://127.0.0.1/0")
    assert flow.command == 'SET user:1 "two words"' and flow.keys == ["user:1"]
    assert (flow.reason, flow.category, flow.error) == ("simple", "write", None)
    assert flow.response_body.data == b"OK" and flow.duration == pytest.approx(0.5)


def test_redis_errors_pushes_and_unanswered_commands() -> None:
    (error,) = redis_events(b"*2\r\n$4\r\nINCR\r\n$1\r\nk\r\n", b"-ERR value is not an integer\r\n")
    assert db_flow(DbItem(ORIGIN, error)).error == "ERR value is not an integer"
    analyzer = RespAnalyzer()
    analyzer.client_data(b"*2\r\n$9\r\nSUBSCRIBE\r\n$2\r\nch\r\n", 1.0)
    events = analyzer.server_data(
        b"*3\r\n$9\r\nsubscribe\r\n$2\r\nch\r\n:1\r\n*3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$2\r\nhi\r\n", 2.0
    )
    pushed = db_flow(DbItem(ORIGIN, events[-1]))
    assert (pushed.method, pushed.command, pushed.reason) == ("MESSAGE", "ch", "push")
    analyzer = RespAnalyzer()
    assert analyzer.client_data(b"*1\r\n$4\r\nPING\r\n", 1.0) == []
    (waiting,) = analyzer.close(2.0)
    unanswered = db_flow(DbItem(ORIGIN, waiting))
    assert (unanswered.reason, unanswered.notes["unanswered"]) == ("no reply", "connection closed")
    assert unanswered.response_ended is None


def test_command_lines_quote_like_redis_cli() -> None:
    assert quote_arg(b"plain:key") == "plain:key"
    assert quote_arg(b'a "b"\n\x00') == '"a \\"b\\"\\n\\x00"'
    assert quote_arg(b"") == '""'
    (event,) = redis_events(b"*2\r\n$4\r\nAUTH\r\n$6\r\nsecret\r\n", b"+OK\r\n")
    assert command_line(event) == "AUTH <redacted>"  # type: ignore[arg-type]


def test_sql_is_split_normalized_and_fingerprinted() -> None:
    assert split_sql("select 1; select 2") == ("select 1", "select 2")
    first, fingerprint = normalize("select * from t where id = 5")
    assert first == "select * from t where id = $1"
    assert normalize("SELECT *  FROM t WHERE id = 99")[1] == fingerprint
    text, other = normalize("\\d+ not sql")  # psql's own command: kept, hashed
    assert text == "\\d+ not sql" and other != fingerprint


def statement(**fields: object) -> pg.StatementCompleted:
    base: dict[str, object] = dict(
        sql="select 1 as a; select 2 as b", part=1, kind="simple", statement="", portal="", params=(),
        param_types=(), columns=(("b", 23),), command_tag="SELECT 1", rows=1, data_rows=1, error=None,
        notices=(), tx_status="idle", started=1.0, ended=1.25,
    )  # fmt: skip
    base.update(fields)
    return pg.StatementCompleted(**base)  # type: ignore[arg-type]


def test_a_statement_of_a_multi_statement_query() -> None:
    flow = db_flow(DbItem(PG_ORIGIN, statement(), "test"))
    assert (flow.method, flow.command, flow.path, flow.rows) == ("SELECT", "select 2 as b", "/test", 1)
    assert flow.statement == "select $1 as b" and flow.fingerprint
    assert json.loads(flow.notes["columns"]) == [["b", 23]] and flow.notes["transaction"] == "idle"
    assert flow.response_body.size == len(flow.response_body.data) > 0


def test_statement_errors_parameters_and_skips() -> None:
    error = pg.PgError("ERROR", "23505", "duplicate key", detail="Key (id)=(1) exists")
    flow = db_flow(DbItem(PG_ORIGIN, statement(sql="insert into t values ($1)", part=0, kind="extended",
                                               params=("1", None), error=error, command_tag=None)))  # fmt: skip
    assert (flow.sqlstate, flow.error) == ("23505", "ERROR 23505: duplicate key")
    assert flow.notes["error_detail"] == "Key (id)=(1) exists"
    assert json.loads(flow.notes["params"]) == ["1", None]
    assert b"$1 = 1, $2 = NULL" in flow.request_body.data
    skipped = db_flow(DbItem(PG_ORIGIN, statement(part=0, skipped=True, command_tag=None)))
    assert skipped.reason == "skipped"


@pytest.mark.parametrize(
    ("event", "method"),
    [
        (pg.SessionStarted("3.0", "ada", "test", "app", (("_pq_.x", "1"),), 1.0), "STARTUP"),
        (pg.AuthenticationCompleted("scram-sha-256", True, None, 7, b"k", (("server_version", "15"),), None,
                                    1.0, 2.0), "AUTH"),  # fmt: skip
        (pg.EncryptionRequested("ssl", "N", 1.0), "SSLREQUEST"),
        (pg.EncryptionRequested("direct-tls", None, 1.0), "TLS"),
        (pg.CancelRequested(7, b"key!", 1.0), "CANCEL"),
        (pg.NotificationReceived(7, "jobs", "go", 1.0), "NOTIFICATION"),
        (pg.ParameterChanged("TimeZone", "UTC", 1.0), "PARAMETER"),
        (pg.NoticeReceived(pg.PgError("WARNING", "01000", "careful"), 1.0), "NOTICE"),
        (pg.ErrorReceived(pg.PgError("FATAL", "57P01", "terminating"), 1.0), "ERROR"),
        (pg.SessionEnded(1.0), "TERMINATE"),
    ],
)
def test_every_session_event_becomes_a_flow(event: object, method: str) -> None:
    flow = db_flow(DbItem(PG_ORIGIN, event, "test", "ab.9"))
    assert (flow.method, flow.category, flow.proto) == (method, "session", "postgres")
    assert flow.request_body.size == len(flow.request_body.data)
    if method == "CANCEL":
        assert flow.notes["cancels"] == "ab.9"
    if method == "ERROR":
        assert flow.sqlstate == "57P01"
