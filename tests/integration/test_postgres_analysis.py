"""PostgreSQL through lanner: psql, asyncpg, psycopg 3 and pgbench against the machine's server.

A `type: tcp` listener to 127.0.0.1:5432 (analyze `auto`: port 5432 is postgres)
relays each connection untouched and records its statements; every test uses
a fresh table in database `test` whose name is also the marker its SQL carries,
so its flows are found with `sql:` filters, and checks them against what the
client itself saw.
"""

from __future__ import annotations

import asyncio
import json
import re
import socket
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import psycopg
import pytest

from tests.conftest import require, require_binary
from tests.integration import pg_helpers as pg
from tests.integration.raw import recv_until_close
from tests.integration.store_reads import wait_connection_records

PGBENCH_DB = "lanner_pgbench_test"
LISTENER = {"name": "pg", "type": "tcp", "target": "127.0.0.1:5432"}  # auto: port 5432 is postgres


@dataclass(frozen=True)
class Scratch:
    tag: str  # a marker unique to the test, in its SQL
    table: str  # a fresh table in database `test`: (id int primary key, name text); also a marker


@pytest.fixture(scope="module")
def lanner(module_lanner: Any) -> Any:
    require(pg.postgres_up(), "PostgreSQL is not running on 127.0.0.1:5432")
    return module_lanner({"listeners": [dict(LISTENER)]})


@pytest.fixture(scope="module")
def psql_bin() -> str:
    return require_binary("psql")


@pytest.fixture
def scratch() -> Iterator[Scratch]:
    require(pg.postgres_up(), "PostgreSQL is not running on 127.0.0.1:5432")
    tag = uuid.uuid4().hex[:10]
    table = f"lanner_t{tag}"
    with pg.direct() as conn:
        conn.execute(f"create table {table} (id int primary key, name text)")
    yield Scratch(tag, table)
    with pg.direct() as conn:
        conn.execute(f"drop table if exists {table}")


def store(lanner: Any) -> Path:
    return Path(lanner.store_path)


# --- 1. psql: simple queries ----------------------------------------------------------


def test_psql_multi_statement_query_gives_one_flow_per_statement(
    lanner: Any, psql_bin: str, scratch: Scratch
) -> None:
    t = scratch.tag
    out = pg.psql(psql_bin, pg.conninfo(lanner), "-A", "-c", f"select 1 as a_{t}; select 2 as b_{t}")
    assert out.stdout.splitlines() == [f"a_{t}", "1", "(1 row)", f"b_{t}", "2", "(1 row)"]
    first, second = pg.flows(store(lanner), 2, f"proto:postgres sql:{t}")
    assert [flow.command for flow in (first, second)] == [f"select 1 as a_{t}", f"select 2 as b_{t}"]
    assert json.loads(first.notes["columns"]) == [[f"a_{t}", 23]]  # int4
    assert json.loads(second.notes["columns"]) == [[f"b_{t}", 23]]
    assert first.statement == f"select $1 as a_{t}" and first.fingerprint
    assert first.conn_uid == second.conn_uid
    for flow in (first, second):
        assert (flow.proto, flow.method, flow.category, flow.notes["kind"]) == (
            "postgres", "SELECT", "simple", "simple",
        )  # fmt: skip
        assert (flow.reason, flow.rows, flow.error, flow.sqlstate) == ("SELECT 1", 1, None, None)
        assert (flow.listener, flow.host, flow.port) == ("pg", "127.0.0.1", 5432)
        assert flow.notes["transaction"] == "idle"
        assert flow.response_ended is not None and flow.started <= flow.response_ended


def test_psql_error_is_findable_by_sqlstate(lanner: Any, psql_bin: str, scratch: Scratch) -> None:
    t = scratch.tag
    out = pg.psql(psql_bin, pg.conninfo(lanner), "-c", f"select 1/0 as e_{t}", check=False)
    assert out.returncode == 1 and "division by zero" in out.stderr
    (flow,) = pg.flows(store(lanner), 1, f"sqlstate:22012 sql:{t}")
    assert flow.command == f"select 1/0 as e_{t}"
    assert (flow.method, flow.sqlstate, flow.rows) == ("SELECT", "22012", None)
    assert flow.error is not None and "division by zero" in flow.error
    assert flow.response_ended is not None  # the error is its result


def test_psql_copy_in_and_out(lanner: Any, psql_bin: str, scratch: Scratch, tmp_path: Path) -> None:
    table = scratch.table
    source = tmp_path / "in.tsv"
    source.write_bytes(b"".join(b"%d\tname %d\n" % (n, n) for n in range(1, 6)))
    target = tmp_path / "out.tsv"
    info = pg.conninfo(lanner)
    assert (
        pg.psql(psql_bin, info, "-c", f"\\copy {table} (id, name) from '{source}'").stdout.strip() == "COPY 5"
    )
    assert pg.psql(psql_bin, info, "-c", f"\\copy {table} to '{target}'").stdout.strip() == "COPY 5"
    assert target.read_bytes() == source.read_bytes()
    size = len(source.read_bytes())
    copy_in, copy_out = pg.flows(store(lanner), 2, f"cmd:COPY sql:{table}")
    assert "FROM STDIN" in copy_in.command.upper() and "TO STDOUT" in copy_out.command.upper()
    for flow in (copy_in, copy_out):
        assert (flow.method, flow.reason, flow.rows, flow.error) == ("COPY", "COPY 5", 5, None)
    assert re.fullmatch(rf"in text: \d+ messages, {size} bytes", copy_in.notes["copy"]), copy_in.notes
    assert copy_out.notes["copy"] == f"out text: 5 messages, {size} bytes"  # one CopyData per row


def test_psql_listen_notify_records_the_notification(lanner: Any, psql_bin: str, scratch: Scratch) -> None:
    channel, payload = f"ch_{scratch.tag}", f"hello {scratch.tag}"
    out = pg.psql(psql_bin, pg.conninfo(lanner), "-c", f"listen {channel}; notify {channel}, '{payload}'")
    assert f'Asynchronous notification "{channel}" with payload "{payload}" received' in out.stdout
    listen, notify = pg.flows(store(lanner), 2, f"category:simple sql:{channel}")
    assert [listen.method, notify.method] == ["LISTEN", "NOTIFY"]
    (notification,) = pg.flows(store(lanner), 1, f"cmd:NOTIFICATION sql:{channel}")
    assert (notification.proto, notification.category) == ("postgres", "session")
    assert notification.command == channel
    assert notification.response_body.data == payload.encode()
    assert notification.conn_uid == listen.conn_uid == notify.conn_uid


def test_statement_flows_carry_the_session_database(lanner: Any, psql_bin: str, scratch: Scratch) -> None:
    t = scratch.tag
    pg.psql(psql_bin, pg.conninfo(lanner), "-c", f"select 1 as db_{t}")
    (flow,) = pg.flows(store(lanner), 1, f"sql:db_{t}")
    (startup,) = [f for f in pg.flows(store(lanner), 1, f"conn:{flow.conn_uid}") if f.method == "STARTUP"]
    assert startup.path == "/test"
    assert flow.path == "/test" and flow.url == "postgres://127.0.0.1/test"


# --- 2. asyncpg, fingerprints, cancel ---------------------------------------------------


def test_asyncpg_extended_protocol_binary_params_and_prepared_statement(
    lanner: Any, scratch: Scratch
) -> None:
    t, table = scratch.tag, scratch.table
    host, port = lanner.addr("pg")
    query = f"select $1::int4 + $2::int8 as total_{t}, $3::text as word, $4::text as nothing"
    insert_sql = f"insert into {table} (id, name) values ($1, $2)"

    async def run() -> Any:
        conn = await asyncpg.connect(host=host, port=port, user="postgres", database="test", timeout=10)
        try:
            rows = await conn.fetch(query, 1, 2, "ada", None)
            insert = await conn.prepare(insert_sql)
            for n in range(1, 4):
                assert await insert.fetch(n, f"name {n}") == []
            # fetchrow executes with a row limit of 1: the server suspends the portal after that row.
            assert await conn.fetchrow(f"select g as one_{t} from generate_series(1, 5) as g") == (1,)
            return rows
        finally:
            await conn.close()

    rows = asyncio.run(run())
    assert [tuple(row) for row in rows] == [(3, "ada", None)]
    with pg.direct() as conn:
        assert conn.execute(f"select id, name from {table} order by id").fetchall() == [
            (n, f"name {n}") for n in range(1, 4)
        ]
    (select,) = pg.flows(store(lanner), 1, f"cmd:SELECT sql:total_{t}")
    assert select.command == query
    assert (select.category, select.notes["kind"], select.reason, select.rows) == (
        "extended",
        "extended",
        "SELECT 1",
        1,
    )
    # asyncpg sends every parameter in binary: int4, int8, text (UTF-8 bytes), NULL
    assert json.loads(select.notes["params"]) == ["\\x00000001", "\\x0000000000000002", "\\x616461", None]
    assert json.loads(select.notes["columns"]) == [[f"total_{t}", 20], ["word", 25], ["nothing", 25]]
    assert select.notes["statement_name"].startswith("__asyncpg_stmt_")
    inserts = pg.flows(store(lanner), 3, f"cmd:INSERT sql:{table}")
    assert len(inserts) == 3
    assert [json.loads(flow.notes["params"]) for flow in inserts] == [
        [f"\\x{n:08x}", "\\x" + f"name {n}".encode().hex()] for n in range(1, 4)
    ]
    names = {flow.notes.get("statement_name") for flow in inserts}
    assert len(names) == 1  # one prepared statement, bound three times
    (name,) = names
    assert name is not None and name.startswith("__asyncpg_stmt_") and name != select.notes["statement_name"]
    for flow in inserts:
        assert (flow.command, flow.category, flow.reason, flow.rows) == (
            insert_sql,
            "extended",
            "INSERT 0 1",
            1,
        )
        assert flow.conn_uid == select.conn_uid
    assert len({flow.fingerprint for flow in inserts}) == 1
    (limited,) = pg.flows(store(lanner), 1, f"cmd:SELECT sql:one_{t}")
    assert (limited.method, limited.rows, limited.reason) == ("SELECT", 1, "")  # no CommandComplete
    assert "suspended" in limited.notes
    # conn.prepare(): Parse + Describe of the named statement, answered before its first Bind (asyncpg ends
    # them with Flush, not Sync: the Bind/Execute/Sync that follows is in the same Sync group).
    prepares = pg.flows(store(lanner), 1, f"cmd:PREPARE sql:{table}")
    assert [(flow.category, flow.notes.get("statement_name"), flow.command) for flow in prepares] == [
        ("prepare", name, insert_sql)
    ]


def test_same_query_with_other_literals_groups_under_one_fingerprint(
    lanner: Any, psql_bin: str, scratch: Scratch
) -> None:
    table = scratch.table
    with pg.direct() as conn:
        conn.execute(f"insert into {table} (id, name) values (1, 'a'), (2, 'b'), (3, 'c')")
    commands = [f"select name from {table} where id = {n}" for n in (1, 2, 3)]
    out = pg.psql(
        psql_bin, pg.conninfo(lanner), "-A", "-t", *[arg for sql in commands for arg in ("-c", sql)]
    )
    assert out.stdout.split() == ["a", "b", "c"]
    found = pg.flows(store(lanner), 3, f"cmd:SELECT sql:{table}")
    assert [flow.command for flow in found] == commands
    normalized = f"select name from {table} where id = $1"
    assert {flow.statement for flow in found} == {normalized}
    fingerprints = {flow.fingerprint for flow in found}
    assert len(fingerprints) == 1
    (fingerprint,) = fingerprints
    assert fingerprint
    assert [flow.id for flow in pg.flows(store(lanner), 3, f"fingerprint:{fingerprint}")] == [
        f.id for f in found
    ]
    stats = pg.cli(store(lanner), "stats", "proto:postgres")
    assert "FINGERPRINT" in stats
    line = next((line for line in stats.splitlines() if line.startswith(fingerprint)), None)
    assert line is not None, stats
    assert line.split()[1:4] == ["3", "0", "3"]  # calls, errors, rows
    assert line.rstrip().endswith(normalized)


def test_asyncpg_cancel_is_recorded_and_names_its_session(lanner: Any, scratch: Scratch) -> None:
    t = scratch.tag
    host, port = lanner.addr("pg")

    async def run() -> int:
        conn = await asyncpg.connect(host=host, port=port, user="postgres", database="test", timeout=10)
        try:
            pid = int(conn.get_server_pid())
            with pytest.raises(TimeoutError):  # asyncpg cancels it on a connection of its own
                await conn.fetch(f"select pg_sleep(5) as sleep_{t}", timeout=0.3)
            assert await conn.fetchval(f"select 'usable_{t}'") == f"usable_{t}"
            return pid
        finally:
            await conn.close()

    pid = asyncio.run(run())
    (sleep,) = pg.flows(store(lanner), 1, f"cmd:SELECT sql:sleep_{t} sqlstate:57014")
    assert sleep.method == "SELECT" and sleep.category == "extended"
    assert sleep.error is not None and "canceling statement due to user request" in sleep.error
    cancel = pg.matching(store(lanner), "cmd:CANCEL", lambda flow: flow.notes.get("backend_pid") == str(pid))
    assert cancel.notes.get("cancels") == sleep.conn_uid
    assert cancel.conn_uid != sleep.conn_uid and cancel.category == "session"
    assert cancel.command == f"backend {pid} (connection {sleep.conn_uid})"
    (usable,) = pg.flows(store(lanner), 1, f"cmd:SELECT sql:usable_{t}")
    assert usable.conn_uid == sleep.conn_uid and usable.error is None


# --- 3. psycopg 3 --------------------------------------------------------------------


def test_psycopg_pipeline_error_skips_the_rest_of_its_sync(lanner: Any, scratch: Scratch) -> None:
    table = scratch.table
    insert = f"insert into {table} (id, name) values (%t, %t)"
    with psycopg.connect(pg.conninfo(lanner), autocommit=True) as conn:
        with pytest.raises(psycopg.errors.DivisionByZero):
            with conn.pipeline():
                conn.execute(insert, ("1", "one"))
                conn.execute(f"select 1/0 as {table}_boom")
                conn.execute(insert, ("3", "three"))  # never run: the server skips to the Sync
        assert conn.execute("select 1").fetchone() == (1,)  # the connection goes on
    with pg.direct() as check:  # one implicit transaction up to the Sync: rolled back
        assert check.execute(f"select count(*) from {table}").fetchone() == (0,)
    first, boom, third = pg.flows(store(lanner), 3, f"sql:{table}")
    sent = f"insert into {table} (id, name) values ($1, $2)"
    assert (first.command, first.method, first.reason, first.rows) == (sent, "INSERT", "INSERT 0 1", 1)
    assert json.loads(first.notes["params"]) == ["1", "one"] and "skipped" not in first.notes
    assert (boom.method, boom.sqlstate) == ("SELECT", "22012")
    assert (third.command, third.method, third.reason) == (sent, "INSERT", "skipped")
    assert "skipped" in third.notes and third.error is None and third.sqlstate is None and third.rows is None
    assert json.loads(third.notes["params"]) == ["3", "three"]
    for flow in (first, boom, third):
        assert flow.category == "extended" and flow.notes["transaction"] == "idle"
        assert flow.conn_uid == first.conn_uid


def test_psycopg_prepared_statement_gives_a_prepare_flow(lanner: Any, scratch: Scratch) -> None:
    t = scratch.tag
    query = f"select %t::int * 2 as twice_{t}"
    with psycopg.connect(pg.conninfo(lanner), autocommit=True) as conn:
        for n in range(1, 4):  # prepare=True: Parse + Sync first, then Bind/Execute of the named statement
            assert conn.execute(query, (str(n),), prepare=True).fetchone() == (2 * n,)
    sent = f"select $1::int * 2 as twice_{t}"
    (prepare,) = pg.flows(store(lanner), 1, f"cmd:PREPARE sql:twice_{t}")
    assert (prepare.command, prepare.category, prepare.rows) == (sent, "prepare", None)
    name = prepare.notes.get("statement_name")
    assert name is not None and name.startswith("_pg3_")
    executed = pg.flows(store(lanner), 3, f"cmd:SELECT sql:twice_{t}")
    assert [json.loads(flow.notes["params"]) for flow in executed] == [["1"], ["2"], ["3"]]
    for flow in executed:
        assert (flow.category, flow.notes.get("statement_name"), flow.reason) == (
            "extended",
            name,
            "SELECT 1",
        )
        assert json.loads(flow.notes["columns"]) == [[f"twice_{t}", 23]]
        assert flow.conn_uid == prepare.conn_uid and flow.id > prepare.id


def test_psycopg_copy_from_stdin_and_to_stdout(lanner: Any, scratch: Scratch) -> None:
    table = scratch.table
    data = b"".join(b"%d\tname %d\n" % (n, n) for n in range(1, 8))
    with psycopg.connect(pg.conninfo(lanner), autocommit=True) as conn, conn.cursor() as cur:
        with cur.copy(f"copy {table} (id, name) from stdin") as copy:
            copy.write(data)
        assert cur.rowcount == 7
        with cur.copy(f"copy {table} (id, name) to stdout") as copy:
            blocks = [bytes(block) for block in copy]  # one per CopyData message
        assert cur.rowcount == 7
    assert b"".join(blocks) == data
    copy_in, copy_out = pg.flows(store(lanner), 2, f"cmd:COPY sql:{table}")
    assert copy_in.command == f"copy {table} (id, name) from stdin"
    assert copy_out.command == f"copy {table} (id, name) to stdout"
    for flow in (copy_in, copy_out):
        assert (flow.reason, flow.rows, flow.error) == ("COPY 7", 7, None)
    assert re.fullmatch(rf"in text: \d+ messages, {len(data)} bytes", copy_in.notes["copy"]), copy_in.notes
    assert copy_out.notes["copy"] == f"out text: {len(blocks)} messages, {len(data)} bytes"


# --- 4. Session ----------------------------------------------------------------------


def test_startup_records_user_database_application_and_refused_ssl(
    lanner: Any, psql_bin: str, scratch: Scratch
) -> None:
    t = scratch.tag
    app = f"app_{t}"
    info = pg.conninfo(lanner, application_name=app, sslmode="prefer", gssencmode="disable")
    out = pg.psql(
        psql_bin,
        info,
        "-A",
        "-t",
        "-c",
        f"select current_setting('application_name'), pg_backend_pid() as m_{t}",
    )
    shown_app, pid = out.stdout.strip().split("|")
    assert shown_app == app
    (select,) = pg.flows(store(lanner), 1, f"cmd:SELECT sql:m_{t}")
    session = pg.flows(store(lanner), 5, f"conn:{select.conn_uid}")
    assert [flow.method for flow in session] == ["SSLREQUEST", "STARTUP", "AUTH", "SELECT", "TERMINATE"]
    ssl, startup, auth = session[:3]
    assert (ssl.command, ssl.reason, ssl.category) == ("ssl", "refused", "session")  # the server has ssl off
    assert (startup.category, startup.path, startup.notes["protocol"]) == ("session", "/test", "3.0")
    assert {"user=postgres", "database=test", f"application_name={app}"} <= set(startup.command.split())
    assert (auth.notes["auth"], auth.notes["backend_pid"], auth.error) == ("trust", pid, None)
    assert auth.reason == "trust ok"


def test_transaction_status_follows_begin_errors_and_commit(
    lanner: Any, psql_bin: str, scratch: Scratch
) -> None:
    table = scratch.table
    steps = [
        "begin",
        f"insert into {table} (id, name) values (1, 'rolled back')",
        f"select 1/0 as {table}_boom",
        f"select id from {table}",  # refused: the transaction has failed
        "rollback",
        "begin",
        f"insert into {table} (id, name) values (2, 'kept')",
        "commit",
    ]
    out = pg.psql(psql_bin, pg.conninfo(lanner), *[arg for sql in steps for arg in ("-c", sql)], check=False)
    assert "division by zero" in out.stderr and "current transaction is aborted" in out.stderr
    with pg.direct() as conn:
        assert conn.execute(f"select id, name from {table}").fetchall() == [(2, "kept")]
    (marked, _) = pg.flows(store(lanner), 2, f"cmd:INSERT sql:{table}")
    statements = pg.flows(store(lanner), len(steps), f"conn:{marked.conn_uid} category:simple")
    assert [flow.command for flow in statements] == steps
    assert [(flow.method, flow.notes.get("transaction"), flow.sqlstate) for flow in statements] == [
        ("BEGIN", "transaction", None),
        ("INSERT", "transaction", None),
        ("SELECT", "failed", "22012"),
        ("SELECT", "failed", "25P02"),
        ("ROLLBACK", "idle", None),
        ("BEGIN", "transaction", None),
        ("INSERT", "transaction", None),
        ("COMMIT", "idle", None),
    ]


# --- 5. lanner flows show ------------------------------------------------------------


def test_flows_show_renders_statement_parameters_and_result(lanner: Any, scratch: Scratch) -> None:
    t = scratch.tag
    with psycopg.connect(pg.conninfo(lanner), autocommit=True) as conn:
        row = conn.execute(
            f"select %t::int + 1 as answer_{t}, %t::text as word, %t::text as nothing", ("41", "ada", None)
        ).fetchone()
        assert row == (42, "ada", None)
        with pytest.raises(psycopg.errors.DivisionByZero):
            conn.execute(f"select %t::int / 0 as broken_{t}", ("7",))
    (flow,) = pg.flows(store(lanner), 1, f"cmd:SELECT sql:answer_{t}")
    shown = pg.cli(store(lanner), "show", str(flow.id)).splitlines()
    text = "\n".join(shown)
    assert shown[0].startswith(f"flow {flow.id}  postgres SELECT  postgres://127.0.0.1"), text
    for line in (
        "  category  extended",
        "  note      kind: extended",
        "  note      transaction: idle",
        f"> select $1::int + 1 as answer_{t}, $2::text as word, $3::text as nothing",
        "    $1 = 41",
        "    $2 = ada",
        "    $3 = NULL",
        f"< columns: answer_{t} (23), word (25), nothing (25)",
        "< SELECT 1 (1 rows)",
    ):
        assert line in shown, f"{line!r} not in:\n{text}"
    assert any(line.startswith("  fingerprint ") for line in shown), text
    (broken,) = pg.flows(store(lanner), 1, f"sql:broken_{t}")
    shown = pg.cli(store(lanner), "show", str(broken.id)).splitlines()
    text = "\n".join(shown)
    for line in (
        "  error     ERROR 22012: division by zero",
        f"> select $1::int / 0 as broken_{t}",
        "    $1 = 7",
        "< ERROR 22012: division by zero",
    ):
        assert line in shown, f"{line!r} not in:\n{text}"


# --- 6. pgbench ----------------------------------------------------------------------


def test_pgbench_through_lanner_records_every_select(start_lanner: Any) -> None:
    bench = require_binary("pgbench")
    require(pg.postgres_up(), "PostgreSQL is not running on 127.0.0.1:5432")
    with pg.direct() as conn:
        if conn.execute("select 1 from pg_database where datname = %s", (PGBENCH_DB,)).fetchone() is None:
            conn.execute(f"create database {PGBENCH_DB}")
    server = ["-h", "127.0.0.1", "-p", "5432", "-U", "postgres", PGBENCH_DB]
    init = subprocess.run(
        [bench, "-i", "-s", "1", "-q", *server], capture_output=True, text=True, timeout=120
    )
    assert init.returncode == 0, init.stderr
    lanner = start_lanner({"listeners": [dict(LISTENER)]})
    host, port = lanner.addr("pg")
    through = ["-h", host, "-p", str(port), "-U", "postgres", PGBENCH_DB]
    processed = {}
    for mode in ("simple", "extended"):
        out = subprocess.run(
            [bench, "-n", "-S", "-c", "4", "-j", "2", "-t", "200", "-M", mode, *through],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        said = out.stdout + out.stderr
        assert out.returncode == 0, said
        assert "error" not in said.lower() and "abort" not in said.lower(), said
        done = re.search(r"number of transactions actually processed: (\d+)/(\d+)", out.stdout)
        assert done is not None and done.group(1) == done.group(2) == "800", said
        failed = re.search(r"number of failed transactions: (\d+)", out.stdout)
        assert failed is None or failed.group(1) == "0", said
        processed[mode] = int(done.group(1))  # -S: one SELECT per transaction
    selects = 'cmd:SELECT sql:"from pgbench_accounts where aid"'
    for mode, expected in processed.items():

        def enough(query: str = f"{selects} category:{mode}", expected: int = expected) -> int | None:
            recorded = pg.count(store(lanner), query)
            return recorded if recorded >= expected else None

        assert pg.wait_for(enough, f"{expected} {mode} SELECT flows", timeout=30) >= expected
    sample = pg.matching(store(lanner), f"{selects} category:extended", lambda flow: True)
    assert sample.command.startswith("SELECT abalance FROM pgbench_accounts WHERE aid = $1")
    (aid,) = json.loads(sample.notes["params"])
    assert aid is not None and 1 <= int(aid) <= 100000
    log = lanner.log()
    assert "records dropped" not in log and "analysis failed" not in log, log[-4000:]


# --- 7. Analysis never breaks a connection ---------------------------------------------


def test_garbage_after_startup_stops_analysis_but_not_the_connection(
    lanner: Any, psql_bin: str, scratch: Scratch
) -> None:
    t = scratch.tag
    app = f"garbage_{t}"
    hello = pg.startup_message(user="postgres", database="test", application_name=app)
    # A valid query, then a message whose length (2) is below the minimum of 4: a protocol violation the
    # server answers by closing, after it has answered the query.
    rest = pg.query_message(f"select g, 'row_{t}' from generate_series(1, 2000) as g") + b"Q\x00\x00\x00\x02"
    transcripts = []
    for address in (lanner.addr("pg"), pg.POSTGRES):
        with socket.create_connection(address, timeout=10) as sock:
            sock.sendall(hello)
            ready = pg.read_until_ready(sock)
            sock.sendall(rest)
            transcripts.append(ready + recv_until_close(sock))
    through, direct = transcripts
    kinds = [kind for kind, _ in pg.messages(direct)]
    assert kinds.count(b"D") == 2000 and kinds[-2:] == [b"C", b"Z"]
    assert pg.masked(through) == pg.masked(direct)  # byte for byte but the backend's pid and key
    (startup,) = pg.flows(store(lanner), 1, f"cmd:STARTUP sql:{app}")
    record = wait_connection_records(store(lanner), lambda conn: conn.uid == startup.conn_uid)
    assert record.detail is not None and record.detail.startswith("analysis:"), record
    assert "failed" not in record.detail, record.detail  # stopped by the analyzer, not its crash boundary
    assert (record.up, record.down) == (len(hello) + len(rest), len(through))
    out = pg.psql(psql_bin, pg.conninfo(lanner), "-A", "-t", "-c", f"select 'after_{t}'")
    assert out.stdout.strip() == f"after_{t}"
    (after,) = pg.flows(store(lanner), 1, f"sql:after_{t}")
    assert (after.method, after.reason, after.conn_uid != startup.conn_uid) == ("SELECT", "SELECT 1", True)
