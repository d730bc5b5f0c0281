"""PgAnalyzer on scripted conversations: what PostgreSQL 15-17 and its clients send, step by step.

Each step is one direction's bytes, fed at time = its index (from 1), client first as a
relay would see them. Message builders and real captures live in test_postgres_messages.
"""

from __future__ import annotations

import dataclasses
import struct
from typing import Any

import pytest
from tests.unit.wire.test_postgres_messages import (
    ASYNCPG_PREPARE_AND_FETCHVAL,
    PSYCOPG_PIPELINE_ERROR,
    SCRAM_CLIENT_PROOF,
    SCRAM_LOGIN,
    SCRAM_SERVER_SIGNATURE,
    auth_sasl,
    authentication,
    backend_key,
    bind,
    bind_complete,
    cancel_request,
    close,
    close_complete,
    command_complete,
    copy_data,
    copy_done,
    copy_fail,
    copy_response,
    data_row,
    describe,
    empty_query,
    error_body,
    execute,
    flush,
    function_call,
    function_result,
    gssenc_request,
    hex_steps,
    message,
    negotiate_protocol,
    no_data,
    notice,
    notification,
    parameter_description,
    parameter_status,
    parse,
    parse_complete,
    password,
    portal_suspended,
    query,
    ready,
    row_description,
    sasl_initial,
    server_error,
    server_startup,
    ssl_request,
    startup,
    sync,
    terminate,
)

from lanner.wire.postgres import (
    AuthenticationCompleted,
    CancelRequested,
    CopySummary,
    EncryptionRequested,
    ErrorReceived,
    NoticeReceived,
    NotificationReceived,
    ParameterChanged,
    PgAnalyzer,
    PgError,
    PgEvent,
    SessionEnded,
    SessionStarted,
    StatementCompleted,
)

Step = tuple[str, bytes]


def client(*messages: bytes) -> Step:
    return ("client", b"".join(messages))


def server(*messages: bytes) -> Step:
    return ("server", b"".join(messages))


def run(steps: list[Step], analyzer: PgAnalyzer | None = None, closed: bool = False) -> list[PgEvent]:
    analyzer = analyzer or PgAnalyzer()
    events: list[PgEvent] = []
    for now, (side, data) in enumerate(steps, start=1):
        feed = analyzer.client_data if side == "client" else analyzer.server_data
        events += feed(data, float(now))
    if closed:
        events += analyzer.close(float(len(steps) + 1))
    assert analyzer.stopped is None
    return events


def statements(events: list[PgEvent]) -> list[StatementCompleted]:
    return [event for event in events if isinstance(event, StatementCompleted)]


def executed(events: list[PgEvent]) -> list[StatementCompleted]:
    return [event for event in statements(events) if event.kind != "prepare"]


def prepared(events: list[PgEvent]) -> list[tuple[str, str]]:
    return [(event.statement, event.sql) for event in statements(events) if event.kind == "prepare"]


def completed(sql: str, started: float, ended: float | None, **fields: Any) -> StatementCompleted:
    base = StatementCompleted(
        sql=sql,
        part=0,
        kind="simple",
        statement="",
        portal="",
        params=(),
        param_types=(),
        columns=(),
        command_tag=None,
        rows=None,
        data_rows=0,
        error=None,
        notices=(),
        tx_status="idle",
        started=started,
        ended=ended,
    )
    return dataclasses.replace(base, **fields)


def pg_error(sqlstate: str, text: str, severity: str = "ERROR", **fields: Any) -> PgError:
    return PgError(severity, sqlstate, text, **fields)


LOGIN = [client(startup([("user", "app"), ("database", "shop")])), server(server_startup())]
INT4 = 23
TEXT = 25


# -- startup, encryption, cancel --


def test_startup_and_trust_login() -> None:
    events = run(
        [
            client(
                startup(
                    [
                        ("user", "app"),
                        ("database", "shop"),
                        ("application_name", "psql"),
                        ("DateStyle", "ISO"),
                    ]
                )
            ),
            server(server_startup(pid=4242, key=b"\x01\x02\x03\x04")),
        ]
    )
    assert events == [
        SessionStarted("3.0", "app", "shop", "psql", (("DateStyle", "ISO"),), 1.0),
        AuthenticationCompleted(
            method="trust",
            ok=True,
            error=None,
            backend_pid=4242,
            backend_key=b"\x01\x02\x03\x04",
            server_params=(
                ("application_name", "psql"),
                ("client_encoding", "UTF8"),
                ("DateStyle", "ISO, MDY"),
                ("server_version", "15.20 (Debian 15.20-0+deb12u1)"),
            ),
            negotiated=None,
            started=1.0,
            ended=2.0,
        ),
    ]


def test_the_database_defaults_to_the_user() -> None:
    (started, _) = run([client(startup([("user", "app")])), server(server_startup())])
    assert started == SessionStarted("3.0", "app", "app", None, (), 1.0)


def test_protocol_3_2_with_options_and_a_long_key() -> None:
    key = bytes(range(32))
    events = run(
        [
            client(startup([("user", "app"), ("_pq_.compression", "on")], version=(3, 2))),
            server(
                negotiate_protocol(2, ["_pq_.compression"]),
                authentication(0),
                backend_key(7, key),
                ready(),
            ),
        ]
    )
    assert events[0] == SessionStarted("3.2", "app", "app", None, (("_pq_.compression", "on"),), 1.0)
    auth = events[1]
    assert isinstance(auth, AuthenticationCompleted)
    assert (auth.negotiated, auth.backend_pid, auth.backend_key) == ("3.2", 7, key)


def test_negotiate_protocol_version_down_to_3_0() -> None:
    events = run(
        [
            client(startup([("user", "app")], version=(3, 2))),
            server(negotiate_protocol(0), server_startup()),
        ]
    )
    assert isinstance(events[1], AuthenticationCompleted) and events[1].negotiated == "3.0"


@pytest.mark.parametrize(
    ("request_packet", "kind", "answer"), [(ssl_request(), "ssl", b"S"), (gssenc_request(), "gss", b"G")]
)
def test_an_accepted_encryption_request_ends_the_analysis(
    request_packet: bytes, kind: str, answer: bytes
) -> None:
    analyzer = PgAnalyzer()
    assert analyzer.client_data(request_packet, 1) == []
    assert analyzer.server_data(answer, 2) == [EncryptionRequested(kind, answer.decode(), 1.0)]
    assert analyzer.encrypted and analyzer.stopped is None
    assert analyzer.client_data(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(100), 3) == []
    assert analyzer.server_data(b"\x16\x03\x03\x00\x7a\x02" + bytes(50), 4) == []
    assert analyzer.close(5) == []


def test_ssl_refused_then_gss_refused_then_startup_in_clear() -> None:
    events = run(
        [
            client(ssl_request()),
            server(b"N"),
            client(gssenc_request()),
            server(b"N"),
            *LOGIN,
            client(query("select 1")),
            server(
                row_description([("?column?", INT4)]), data_row(b"1"), command_complete("SELECT 1"), ready()
            ),
        ]
    )
    assert events[:3] == [
        EncryptionRequested("ssl", "N", 1.0),
        EncryptionRequested("gss", "N", 3.0),
        SessionStarted("3.0", "app", "shop", None, (), 5.0),
    ]
    assert statements(events) == [
        completed(
            "select 1", 7.0, 8.0, columns=(("?column?", INT4),), command_tag="SELECT 1", rows=1, data_rows=1
        )
    ]


def test_client_bytes_sent_before_the_answer_wait_for_it() -> None:
    analyzer = PgAnalyzer()
    assert analyzer.client_data(gssenc_request() + startup([("user", "app")])[:10], 1) == []
    assert analyzer.client_data(startup([("user", "app")])[10:], 2) == []
    assert analyzer.server_data(b"N", 3) == [
        EncryptionRequested("gss", "N", 1.0),
        SessionStarted("3.0", "app", "app", None, (), 3.0),
    ]


def test_direct_tls() -> None:
    analyzer = PgAnalyzer()
    hello = bytes.fromhex("160301020001") + bytes(200)
    assert analyzer.client_data(hello, 1) == [EncryptionRequested("direct-tls", None, 1.0)]
    assert analyzer.encrypted and analyzer.stopped is None
    assert analyzer.server_data(b"\x16\x03\x03\x00\x10" + bytes(16), 2) == []


@pytest.mark.parametrize("key", [b"\x8a\x2b\x11\x07", bytes(range(100, 132))], ids=["3.0", "3.2-32-bytes"])
def test_cancel_request(key: bytes) -> None:
    analyzer = PgAnalyzer()
    events = analyzer.client_data(ssl_request(), 1) + analyzer.server_data(b"N", 2)
    events += analyzer.client_data(cancel_request(11356, key), 3)
    assert events == [EncryptionRequested("ssl", "N", 1.0), CancelRequested(11356, key, 3.0)]
    assert len(cancel_request(11356, key)) == 12 + len(key)
    assert analyzer.close(4) == []


# -- authentication --


def test_scram_login_from_a_capture_keeps_no_secret() -> None:
    steps = hex_steps(SCRAM_LOGIN)
    steps.append(client(query("select 1")))
    steps.append(
        server(row_description([("?column?", INT4)]), data_row(b"1"), command_complete("SELECT 1"), ready())
    )
    events = run(steps)
    auth = events[1]
    assert isinstance(auth, AuthenticationCompleted)
    assert (auth.method, auth.ok, auth.backend_pid, auth.backend_key) == (
        "scram-sha-256",
        True,
        11196,
        b"W\xec\x95\x87",
    )
    assert ("session_authorization", "scram_user") in auth.server_params
    text = repr(events)
    for secret in (SCRAM_CLIENT_PROOF, SCRAM_SERVER_SIGNATURE, b"qoTSAbZ60ZIKHRynopIn9jYr"):
        assert secret.decode() not in text
    assert len(statements(events)) == 1


def test_scram_plus_is_the_mechanism_the_client_picked() -> None:
    events = run(
        [
            client(startup([("user", "app")])),
            server(auth_sasl("SCRAM-SHA-256-PLUS", "SCRAM-SHA-256")),
            client(sasl_initial("SCRAM-SHA-256-PLUS", b"p=tls-server-end-point,,n=,r=clientnonce")),
            server(authentication(11, b"r=clientnonceservernonce,s=c2FsdA==,i=4096")),
            client(
                password(b"c=cD10bHMtc2VydmVyLWVuZC1wb2ludCwsAAAA,r=clientnonceservernonce,p=SECRETPROOF=")
            ),
            server(authentication(12, b"v=SERVERSIG="), server_startup()),
        ]
    )
    auth = events[1]
    assert isinstance(auth, AuthenticationCompleted) and auth.method == "scram-sha-256-plus"
    assert "SECRETPROOF" not in repr(events) and "clientnonce" not in repr(events)


def test_a_password_sent_for_a_sasl_mechanism_is_not_kept() -> None:
    events = run(
        [
            client(startup([("user", "app")])),
            server(auth_sasl("SCRAM-SHA-256")),
            client(password(b"my-cleartext-secret\0")),
            server(server_error("08P01", "malformed SASL message", severity="FATAL")),
        ]
    )
    auth = events[1]
    assert isinstance(auth, AuthenticationCompleted) and (auth.method, auth.ok) == ("scram-sha-256", False)
    assert "my-cleartext-secret" not in repr(events)


@pytest.mark.parametrize(
    ("request_messages", "method"),
    [
        (authentication(3), "cleartext"),
        (authentication(5, b"\xdc\x86\t\xdd"), "md5"),
        (authentication(7), "gss"),
        (authentication(9), "sspi"),
    ],
)
def test_password_and_gss_methods(request_messages: bytes, method: str) -> None:
    steps = [
        client(startup([("user", "app")])),
        server(request_messages),
        client(password(b"hunter2-secret\0")),
    ]
    if method in ("gss", "sspi"):
        steps += [server(authentication(8, b"token-from-server")), client(password(b"more-token"))]
    steps.append(server(server_startup()))
    events = run(steps)
    auth = events[1]
    assert isinstance(auth, AuthenticationCompleted) and (auth.method, auth.ok) == (method, True)
    assert "hunter2" not in repr(events)


def test_failed_login() -> None:
    failure = server_error("28P01", 'password authentication failed for user "app"', severity="FATAL")
    events = run(
        [
            client(startup([("user", "app")])),
            server(authentication(3)),
            client(password(b"wrong\0")),
            server(failure),
        ]
    )
    assert events[1] == AuthenticationCompleted(
        method="cleartext",
        ok=False,
        error=pg_error("28P01", 'password authentication failed for user "app"', "FATAL"),
        backend_pid=None,
        backend_key=None,
        server_params=(),
        negotiated=None,
        started=1.0,
        ended=4.0,
    )


def test_a_client_that_hangs_up_at_the_password_prompt() -> None:
    # psql does this: no password at hand, it closes and asks the user.
    analyzer = PgAnalyzer()
    run([client(startup([("user", "app")])), server(authentication(10 - 7))], analyzer)
    (auth,) = analyzer.close(3)
    assert isinstance(auth, AuthenticationCompleted)
    assert (auth.method, auth.ok, auth.error, auth.ended) == ("cleartext", False, None, 3.0)


def test_unknown_database_after_authentication_ok() -> None:
    error = server_error("3D000", 'database "nope" does not exist', severity="FATAL")
    events = run([client(startup([("user", "app"), ("database", "nope")])), server(authentication(0), error)])
    auth = events[1]
    assert isinstance(auth, AuthenticationCompleted) and not auth.ok and auth.error is not None
    assert auth.error.sqlstate == "3D000"


# -- simple query --


def test_a_simple_query() -> None:
    events = run(
        [
            *LOGIN,
            client(query("select id, name from t")),
            server(
                row_description([("id", INT4), ("name", TEXT)]),
                data_row(b"1", b"one"),
                data_row(b"2", None),
                command_complete("SELECT 2"),
                ready(),
            ),
        ]
    )
    assert statements(events) == [
        completed(
            "select id, name from t",
            3.0,
            4.0,
            columns=(("id", INT4), ("name", TEXT)),
            command_tag="SELECT 2",
            rows=2,
            data_rows=2,
        )
    ]


def test_a_multi_statement_query_with_an_error_in_the_middle() -> None:
    sql = "select 1; select x_no_such; select 3"
    missing = server_error(
        "42703", 'column "x_no_such" does not exist', extra=[("P", "18"), ("F", "parse_relation.c")]
    )
    events = run(
        [
            *LOGIN,
            client(query("begin")),
            server(command_complete("BEGIN"), ready("T")),
            client(query(sql)),
            server(row_description([("?column?", INT4)]), data_row(b"1"), command_complete("SELECT 1")),
            server(missing, ready("E")),
            client(query("rollback")),
            server(command_complete("ROLLBACK"), ready("I")),
        ]
    )
    error = pg_error(
        "42703", 'column "x_no_such" does not exist', position="18", extra=(("F", "parse_relation.c"),)
    )
    assert statements(events) == [
        completed("begin", 3.0, 4.0, command_tag="BEGIN", tx_status="transaction"),
        completed(
            sql,
            5.0,
            6.0,
            columns=(("?column?", INT4),),
            command_tag="SELECT 1",
            rows=1,
            data_rows=1,
            tx_status="failed",
        ),
        completed(sql, 6.0, 7.0, part=1, error=error, tx_status="failed"),
        completed("rollback", 8.0, 9.0, command_tag="ROLLBACK"),
    ]


def test_each_statement_of_a_script() -> None:
    sql = "create table t(a int); insert into t values (1), (2); update t set a = 3; delete from t"
    events = run(
        [
            *LOGIN,
            client(query(sql)),
            server(
                command_complete("CREATE TABLE"),
                command_complete("INSERT 0 2"),
                command_complete("UPDATE 2"),
                command_complete("DELETE 2"),
                ready(),
            ),
        ]
    )
    assert [(s.part, s.command_tag, s.rows, s.sql) for s in statements(events)] == [
        (0, "CREATE TABLE", None, sql),
        (1, "INSERT 0 2", 2, sql),
        (2, "UPDATE 2", 2, sql),
        (3, "DELETE 2", 2, sql),
    ]


def test_an_empty_query() -> None:
    events = run([*LOGIN, client(query("")), server(empty_query(), ready())])
    assert statements(events) == [completed("", 3.0, 4.0, empty=True)]


def test_notices_belong_to_the_running_statement() -> None:
    hi = notice("00000", "hi 1", extra=[("W", "PL/pgSQL function inline_code_block line 1 at RAISE")])
    careful = notice("01000", "careful", severity="WARNING")
    events = run(
        [
            *LOGIN,
            client(query("do $$ ... $$")),
            server(hi, careful, command_complete("DO"), ready()),
            server(notice("00000", "while idle")),
        ]
    )
    (do,) = statements(events)
    assert do.notices == (
        pg_error(
            "00000", "hi 1", "NOTICE", extra=(("W", "PL/pgSQL function inline_code_block line 1 at RAISE"),)
        ),
        pg_error("01000", "careful", "WARNING"),
    )
    assert events[-1] == NoticeReceived(pg_error("00000", "while idle", "NOTICE"), 5.0)


def test_listen_notify_and_parameter_status() -> None:
    events = run(
        [
            *LOGIN,
            client(query("notify chan, 'hello'")),
            server(command_complete("NOTIFY"), notification(11356, "chan", "hello"), ready()),
            client(query("set application_name = 'renamed'")),
            server(command_complete("SET"), parameter_status("application_name", "renamed"), ready()),
            server(notification(999, "chan", "from elsewhere")),
        ]
    )
    assert [
        e for e in events if not isinstance(e, (StatementCompleted, SessionStarted, AuthenticationCompleted))
    ] == [
        NotificationReceived(11356, "chan", "hello", 4.0),
        ParameterChanged("application_name", "renamed", 6.0),
        NotificationReceived(999, "chan", "from elsewhere", 7.0),
    ]
    assert [s.command_tag for s in statements(events)] == ["NOTIFY", "SET"]


def test_a_fatal_error_while_idle() -> None:
    fatal = server_error("57P01", "terminating connection due to administrator command", severity="FATAL")
    events = run([*LOGIN, server(fatal)])
    assert events[-1] == ErrorReceived(
        pg_error("57P01", "terminating connection due to administrator command", "FATAL"), 3.0
    )


def test_terminate_and_close() -> None:
    events = run(
        [
            *LOGIN,
            client(query("select pg_sleep(10)")),
            server(row_description([("pg_sleep", 2278)])),
            client(terminate()),
        ],
        closed=True,
    )
    assert events[-2:] == [
        SessionEnded(5.0),
        completed("select pg_sleep(10)", 3.0, None, columns=(("pg_sleep", 2278),), tx_status=None),
    ]


# -- COPY --


def test_copy_from_stdin_text() -> None:
    rows = [b"20\ttwenty\n", b"21\tx\n"]
    events = run(
        [
            *LOGIN,
            client(query("copy t (id, name) from stdin")),
            server(copy_response(b"G", False, 2)),
            client(*(copy_data(row) for row in rows), copy_done()),
            server(command_complete("COPY 2"), ready()),
        ]
    )
    (copy,) = statements(events)
    assert copy.copy == CopySummary("in", "text", 2, 15, 2)
    assert (copy.command_tag, copy.rows, copy.ended) == ("COPY 2", 2, 6.0)


def test_copy_to_stdout_and_binary_copy_in() -> None:
    header = b"PGCOPY\n\xff\r\n\x00" + bytes(8)
    events = run(
        [
            *LOGIN,
            client(query("copy (select id from t) to stdout")),
            server(
                copy_response(b"H", False, 1),
                *(copy_data(b"%d\n" % i) for i in range(7)),
                copy_done(),
                command_complete("COPY 7"),
                ready(),
            ),
            client(query("copy t from stdin (format binary)")),
            server(copy_response(b"G", True, 2)),
            client(
                copy_data(header + b"\x00\x02\x00\x00\x00\x04\x00\x00\x00\x1e\x00\x00\x00\x06thirty\xff\xff"),
                copy_done(),
            ),
            server(command_complete("COPY 1"), ready()),
        ]
    )
    out, binary = statements(events)
    assert out.copy == CopySummary("out", "text", 7, 14, 7)
    assert binary.copy == CopySummary("in", "binary", 1, 41, 1)


def test_copy_fail() -> None:
    failed = server_error("57014", "COPY from stdin failed: client gave up")
    events = run(
        [
            *LOGIN,
            client(query("copy t from stdin")),
            server(copy_response(b"G", False, 2)),
            client(copy_data(b"1\tx\n"), copy_fail("client gave up")),
            server(failed, ready()),
        ]
    )
    (copy,) = statements(events)
    assert copy.error == pg_error("57014", "COPY from stdin failed: client gave up")
    assert copy.copy == CopySummary("in", "text", 1, 4, None)


def test_extended_copy_in_ignores_the_sync_sent_with_it() -> None:
    # libpq's PQsendQueryParams("copy ... from stdin"): the Sync after Execute reaches the
    # server in COPY IN mode and gets no ReadyForQuery; the one after CopyDone does.
    sql = "copy t (id, name) from stdin"
    events = run(
        [
            *LOGIN,
            client(parse("", sql), bind("", "", result_formats=[0]), describe("P", ""), execute(), sync()),
            server(parse_complete(), bind_complete(), no_data(), copy_response(b"G", False, 2)),
            client(copy_data(b"40\tforty\n"), copy_done(), sync()),
            server(command_complete("COPY 1"), ready()),
            client(query("select 1")),
            server(
                row_description([("?column?", INT4)]), data_row(b"1"), command_complete("SELECT 1"), ready()
            ),
        ]
    )
    copy, select = statements(events)
    assert (copy.kind, copy.sql, copy.copy, copy.ended) == (
        "extended",
        sql,
        CopySummary("in", "text", 1, 9, 1),
        6.0,
    )
    assert (select.sql, select.tx_status) == ("select 1", "idle")


def test_copy_both() -> None:
    events = run(
        [
            *LOGIN,
            client(query("START_REPLICATION SLOT s LOGICAL 0/0")),
            server(copy_response(b"W", True, 0), copy_data(b"w" + bytes(30))),
            client(copy_data(b"r" + bytes(33))),
            server(copy_data(b"k" + bytes(17))),
            client(copy_done()),
            server(copy_done(), command_complete("COPY 0"), ready()),
        ]
    )
    (replication,) = statements(events)
    assert replication.copy == CopySummary("both", "binary", 3, 31 + 34 + 18, 0)


# -- extended protocol --


def test_one_shot_parameterized_query_as_psycopg_sends_it() -> None:
    events = run(
        [
            *LOGIN,
            client(
                parse("", "select $1::int + 1, $2::text", [21, 0]),
                bind("", "", [b"\x00\x29", b"x"], formats=[1, 0], result_formats=[0]),
                describe("P", ""),
                execute(),
                sync(),
            ),
            server(
                parse_complete(),
                bind_complete(),
                row_description([("?column?", INT4), ("text", TEXT)]),
                data_row(b"42", b"x"),
                command_complete("SELECT 1"),
                ready(),
            ),
        ]
    )
    assert statements(events) == [
        completed(
            "select $1::int + 1, $2::text",
            3.0,
            4.0,
            kind="extended",
            params=("\\x0029", "x"),
            param_types=(21, 0),
            columns=(("?column?", INT4), ("text", TEXT)),
            command_tag="SELECT 1",
            rows=1,
            data_rows=1,
        )
    ]


def test_asyncpg_prepare_then_fetchval_from_a_capture() -> None:
    events = run([*LOGIN, *hex_steps(ASYNCPG_PREPARE_AND_FETCHVAL)])
    # Parse, Describe, Flush: a prepare round trip of its own, then Bind/Execute/Sync in the same group.
    assert prepared(events) == [("__asyncpg_stmt_3__", "select name from cap_t where id = $1")]
    assert executed(events) == [
        completed(
            "select name from cap_t where id = $1",
            5.0,
            6.0,
            kind="extended",
            statement="__asyncpg_stmt_3__",
            params=("\\x00000001",),
            param_types=(INT4,),
            columns=(("name", TEXT),),
            rows=1,
            data_rows=1,
            suspended=True,
        )
    ]


def test_named_statement_reused_across_binds() -> None:
    name = "__asyncpg_stmt_1__"
    sql = "insert into t values ($1, $2)"
    row = [(1, b"one"), (2, None), (3, b"three")]
    events = run(
        [
            *LOGIN,
            client(parse(name, sql), describe("S", name), flush()),
            server(parse_complete(), parameter_description(INT4, TEXT), no_data()),
            client(*(bind("", name, [i.to_bytes(4, "big"), v], [1, 1]) + execute() for i, v in row), sync()),
            server(*(bind_complete() + command_complete("INSERT 0 1") for _ in row), ready()),
            client(bind("", name, [b"\x00\x00\x00\x04", b"x"], [1]), execute(), sync()),
            server(bind_complete(), command_complete("INSERT 0 1"), ready()),
        ]
    )
    assert prepared(events) == [(name, sql)]
    (prepare,) = [s for s in statements(events) if s.kind == "prepare"]
    assert (prepare.started, prepare.ended) == (3.0, 4.0)  # its own round trip, not the group's Sync
    assert [(s.statement, s.params, s.param_types, s.rows, s.started) for s in executed(events)] == [
        (name, ("\\x00000001", "\\x6f6e65"), (INT4, TEXT), 1, 5.0),
        (name, ("\\x00000002", None), (INT4, TEXT), 1, 5.0),
        (name, ("\\x00000003", "\\x7468726565"), (INT4, TEXT), 1, 5.0),
        (name, ("\\x00000004", "\\x78"), (INT4, TEXT), 1, 7.0),
    ]
    assert {s.sql for s in statements(events)} == {sql}


def test_a_sync_group_that_only_prepares() -> None:
    sql = "SELECT abalance FROM pgbench_accounts WHERE aid = $1;"
    events = run(
        [
            *LOGIN,
            client(parse("P_0", sql), sync()),
            server(parse_complete(), ready()),
            client(bind("", "P_0", [b"13678"], result_formats=[0]), describe("P", ""), execute(), sync()),
            server(
                bind_complete(),
                row_description([("abalance", INT4)]),
                data_row(b"0"),
                command_complete("SELECT 1"),
                ready(),
            ),
            client(parse("named", "select $1::int"), describe("S", "named"), sync()),
            server(parse_complete(), parameter_description(INT4), row_description([("int4", INT4)]), ready()),
        ]
    )
    assert statements(events) == [
        completed(sql, 3.0, 4.0, kind="prepare", statement="P_0"),
        completed(
            sql,
            5.0,
            6.0,
            kind="extended",
            statement="P_0",
            params=("13678",),
            columns=(("abalance", INT4),),
            command_tag="SELECT 1",
            rows=1,
            data_rows=1,
        ),
        completed(
            "select $1::int",
            7.0,
            8.0,
            kind="prepare",
            statement="named",
            param_types=(INT4,),
            columns=(("int4", INT4),),
        ),
    ]


def test_a_prepare_that_fails() -> None:
    syntax = server_error("42601", 'syntax error at or near "selec"', extra=[("P", "1")])
    events = run(
        [
            *LOGIN,
            client(parse("s1", "selec 1"), describe("S", "s1"), sync()),
            server(syntax, ready()),
            client(describe("S", "s1"), sync()),
            server(server_error("26000", 'prepared statement "s1" does not exist'), ready()),
        ]
    )
    first, second = statements(events)
    assert (first.kind, first.sql, first.error, first.ended) == (
        "prepare",
        "selec 1",
        pg_error("42601", 'syntax error at or near "selec"', position="1"),
        4.0,
    )
    assert (second.kind, second.statement, second.error is not None) == ("prepare", "s1", True)


def test_pipeline_with_an_error_mid_way_from_a_capture() -> None:
    events = run([*LOGIN, *hex_steps(PSYCOPG_PIPELINE_ERROR)])
    division = pg_error("22012", "division by zero", extra=(("F", "int.c"), ("L", "869"), ("R", "int4div")))
    assert statements(events) == [
        completed(
            "select $1::int",
            3.0,
            6.0,
            kind="extended",
            params=("\\x0001",),
            param_types=(21,),
            columns=(("int4", INT4),),
            command_tag="SELECT 1",
            rows=1,
            data_rows=1,
            tx_status="failed",
        ),
        completed("select 1/0", 4.0, 6.0, kind="extended", error=division, tx_status="failed"),
        completed(
            "select $1::int",
            5.0,
            7.0,
            kind="extended",
            params=("\\x0002",),
            param_types=(21,),
            skipped=True,
            tx_status="failed",
        ),
    ]


def test_pipelined_syncs_and_an_error_before_the_sync_is_sent() -> None:
    one = parse("", "select 1") + bind("", "") + execute()
    bad = parse("", "select 1/0") + bind("", "") + execute()
    events = run(
        [
            *LOGIN,
            client(one, sync(), bad),
            server(parse_complete(), bind_complete(), data_row(b"1"), command_complete("SELECT 1"), ready()),
            server(parse_complete(), server_error("22012", "division by zero")),
            client(one, one, sync(), one, sync()),
            server(ready()),
            server(parse_complete(), bind_complete(), data_row(b"1"), command_complete("SELECT 1"), ready()),
        ]
    )
    assert [(s.sql, s.error is not None, s.skipped, s.ended, s.tx_status) for s in statements(events)] == [
        ("select 1", False, False, 4.0, "idle"),
        ("select 1/0", True, False, 5.0, "idle"),
        ("select 1", False, True, 7.0, "idle"),
        ("select 1", False, True, 7.0, "idle"),
        ("select 1", False, False, 8.0, "idle"),
    ]


def test_portal_suspended_then_resumed_in_a_transaction() -> None:
    stmt, portal = "__asyncpg_stmt_4__", "__asyncpg_portal_5__"
    events = run(
        [
            *LOGIN,
            client(query("BEGIN;")),
            server(command_complete("BEGIN"), ready("T")),
            client(parse(stmt, "select id from t order by id"), describe("S", stmt), flush()),
            server(parse_complete(), parameter_description(), row_description([("id", INT4)])),
            client(bind(portal, stmt, result_formats=[1]), sync()),
            server(bind_complete(), ready("T")),
            client(execute(portal, 2), sync()),
            server(
                data_row(b"\x00\x00\x00\x01"), data_row(b"\x00\x00\x00\x02"), portal_suspended(), ready("T")
            ),
            client(execute(portal, 2), sync()),
            server(data_row(b"\x00\x00\x00\x03"), command_complete("SELECT 1"), ready("T")),
            client(close("P", portal), sync()),
            server(close_complete(), ready("T")),
            client(query("COMMIT;")),
            server(command_complete("COMMIT"), ready()),
        ]
    )
    _, first, second, _ = executed(events)
    assert (
        first.portal,
        first.statement,
        first.suspended,
        first.rows,
        first.data_rows,
        first.command_tag,
    ) == (
        portal,
        stmt,
        True,
        2,
        2,
        None,
    )
    assert (second.suspended, second.rows, second.columns, second.tx_status) == (
        False,
        1,
        (("id", INT4),),
        "transaction",
    )


def test_a_portal_described_in_its_group_gives_its_columns() -> None:
    events = run(
        [
            *LOGIN,
            client(parse("s", "select * from t"), describe("S", "s"), sync()),
            server(parse_complete(), parameter_description(), row_description([("a", INT4)]), ready()),
            client(bind("", "s", result_formats=[1]), describe("P", ""), execute(), sync()),
            server(
                bind_complete(),
                row_description([("a", INT4), ("b", TEXT)]),
                command_complete("SELECT 0"),
                ready(),
            ),
        ]
    )
    assert [(s.kind, s.columns, s.rows) for s in statements(events)] == [
        ("prepare", (("a", INT4),), None),
        ("extended", (("a", INT4), ("b", TEXT)), 0),
    ]


def test_close_statement_and_an_error_at_sync() -> None:
    deferred = server_error("23503", "insert or update violates foreign key constraint")
    events = run(
        [
            *LOGIN,
            client(
                parse("s", "insert into child values (1)"), bind("", "s"), execute(), close("S", "s"), sync()
            ),
            server(
                parse_complete(),
                bind_complete(),
                command_complete("INSERT 0 1"),
                close_complete(),
                deferred,
                ready(),
            ),
            client(bind("", "s"), execute(), sync()),
            server(server_error("26000", 'prepared statement "s" does not exist'), ready()),
        ]
    )
    insert, missing = statements(events)
    assert (insert.command_tag, insert.error) == (
        "INSERT 0 1",
        pg_error("23503", "insert or update violates foreign key constraint"),
    )
    assert (missing.sql, missing.statement, missing.error is not None) == ("", "s", True)


def test_binary_and_text_params_cut_and_redacted() -> None:
    steps = [
        *LOGIN,
        client(
            parse("", "insert into t values ($1, $2, $3)"),
            bind("", "", [b"x" * 1000, bytes(range(200)), None], [0, 1, 0]),
            execute(),
            sync(),
        ),
        server(parse_complete(), bind_complete(), command_complete("INSERT 0 1"), ready()),
    ]
    (cut,) = statements(run(steps, PgAnalyzer(max_param=10)))
    assert cut.params == ("x" * 10, "\\x00010203", None)
    (redacted,) = statements(run(steps, PgAnalyzer(redact_params=True)))
    assert redacted.params == ("<redacted>",) * 3
    (few,) = statements(run(steps, PgAnalyzer(max_params=1)))
    assert few.params == ("x" * 256,)


def test_function_call() -> None:
    events = run(
        [
            *LOGIN,
            client(function_call(957, [b"\x00\x06\x00\x00"])),
            server(function_result(b"\x00\x00\x40\x28"), ready("T")),
            client(function_call(952, [b"\x00\x00\x40\x28", b"\x00\x02\x00\x00"])),
            server(server_error("42704", "large object 16424 does not exist"), ready("E")),
        ]
    )
    assert statements(events) == [
        completed(
            "function 957", 3.0, 4.0, kind="function", params=("\\x00060000",), tx_status="transaction"
        ),
        completed(
            "function 952",
            5.0,
            6.0,
            kind="function",
            params=("\\x00004028", "\\x00020000"),
            error=pg_error("42704", "large object 16424 does not exist"),
            tx_status="failed",
        ),
    ]


def test_close_reports_pipelined_statements_left_open() -> None:
    analyzer = PgAnalyzer()
    run(
        [
            *LOGIN,
            client(
                parse("", "select 1") + bind("", "") + execute(),
                parse("", "select 2") + bind("", "") + execute(),
                sync(),
            ),
            server(parse_complete(), bind_complete(), data_row(b"1"), command_complete("SELECT 1")),
        ],
        analyzer,
    )
    assert [(s.sql, s.ended, s.tx_status, s.command_tag) for s in statements(analyzer.close(9))] == [
        ("select 1", 4.0, None, "SELECT 1"),
        ("select 2", None, None, None),
    ]


# -- faults --


@pytest.mark.parametrize(
    ("side", "data", "reason"),
    [
        ("server", b"Y\x00\x00\x00\x04", "server: unknown server message type b'Y'"),
        ("client", b"Z\x00\x00\x00\x04", "client: unknown client message type b'Z'"),
        ("server", b"C\x00\x00\x00\x03", "server: server message length 3 under 4"),
        ("server", parse_complete(), "server: ParseComplete without its request"),
        ("server", data_row(b"1"), "server: DataRow without a running statement"),
        ("server", ready("X"), "server: ReadyForQuery status b'X'"),
        ("server", ready(), "server: ReadyForQuery without a Sync or Query"),
        ("server", authentication(0), "server: authentication request after startup"),
        ("client", message(b"D", b"Xname\0"), "client: Describe of neither"),
    ],
)
def test_a_protocol_fault_stops_the_analysis(side: str, data: bytes, reason: str) -> None:
    analyzer = PgAnalyzer()
    run(LOGIN, analyzer)
    feed = analyzer.client_data if side == "client" else analyzer.server_data
    assert feed(data + query("select 1"), 3) == []
    assert analyzer.stopped is not None and analyzer.stopped.startswith(reason)
    assert analyzer.client_data(query("select 1"), 4) == []
    assert analyzer.server_data(command_complete("SELECT 1") + ready(), 5) == []
    assert analyzer.close(6) == []


@pytest.mark.parametrize(
    ("packet", "reason"),
    [
        (struct.pack(">II", 7, 196608), "client: startup packet length 7"),
        (struct.pack(">II", 10001, 196608), "client: startup packet length 10001"),
        (struct.pack(">II", 8, 0x00020000), "client: unsupported protocol 2.0"),
        (struct.pack(">III", 12, 80877103, 0), "client: encryption request of 12 bytes"),
        (struct.pack(">IIi", 15, 80877102, 1) + b"abc", "client: CancelRequest of 15 bytes"),
        (cancel_request(1, bytes(257)), "client: CancelRequest of 269 bytes"),
        (struct.pack(">II", 17, 196608) + b"user\0app\0", "client: StartupMessage without its final NUL"),
        (struct.pack(">II", 16, 196608) + b"user\0app", "client: string without its terminating NUL"),
    ],
)
def test_bad_startup_packets(packet: bytes, reason: str) -> None:
    analyzer = PgAnalyzer()
    assert analyzer.client_data(packet, 1) == []
    assert analyzer.stopped == reason


def test_a_bad_answer_to_an_encryption_request() -> None:
    analyzer = PgAnalyzer()
    analyzer.client_data(ssl_request(), 1)
    assert analyzer.server_data(b"G", 2) == []
    assert analyzer.stopped == "server: answer b'G' to a ssl request"


def test_error_fields_need_not_be_complete() -> None:
    events = run(
        [*LOGIN, client(query("x")), server(message(b"E", error_body([("M", "no severity")])), ready())]
    )
    assert statements(events)[0].error == PgError("", "", "no severity")
