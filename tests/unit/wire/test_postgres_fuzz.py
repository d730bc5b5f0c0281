"""PgAnalyzer whatever the chunking, whatever the input, within its bounds."""

from __future__ import annotations

import struct
import tracemalloc

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.unit.wire.chunking import bytewise, mutate, split_at
from tests.unit.wire.test_postgres import LOGIN, Step, client, run, server, statements
from tests.unit.wire.test_postgres_messages import (
    ASYNCPG_PREPARE_AND_FETCHVAL,
    PSYCOPG_PIPELINE_ERROR,
    SCRAM_LOGIN,
    bind,
    bind_complete,
    command_complete,
    copy_data,
    copy_done,
    copy_fail,
    copy_response,
    data_row,
    describe,
    empty_query,
    execute,
    function_call,
    function_result,
    gssenc_request,
    hex_steps,
    no_data,
    notice,
    notification,
    parameter_description,
    parameter_status,
    parse,
    parse_complete,
    portal_suspended,
    query,
    ready,
    row_description,
    server_error,
    ssl_request,
    startup,
    sync,
    terminate,
)

from lanner.wire.postgres import PgAnalyzer, PgEvent, StatementCompleted

SELECT_ONE = [row_description([("?column?", 23)]), data_row(b"1"), command_complete("SELECT 1"), ready()]

CONVERSATIONS: dict[str, list[Step]] = {
    "scram, notices, notify": [
        *hex_steps(SCRAM_LOGIN),
        client(query("select 1; select x; select 3")),
        server(
            *SELECT_ONE[:3],
            notice("01000", "careful " * 20, "WARNING"),
            server_error("42703", "no x"),
            ready("E"),
        ),
        client(query("")),
        server(
            empty_query(),
            notification(5, "chan", "payload " * 50),
            parameter_status("TimeZone", "UTC"),
            ready("E"),
        ),
        client(terminate()),
    ],
    "encryption refused, copy": [
        client(ssl_request()),
        server(b"N"),
        client(gssenc_request()),
        server(b"N"),
        *LOGIN,
        client(query("copy t from stdin")),
        server(copy_response(b"G", False, 3)),
        client(*(copy_data(b"%d\tname\t%s\n" % (i, b"x" * i)) for i in range(40)), copy_done()),
        server(command_complete("COPY 40"), ready()),
        client(query("copy t to stdout (format binary)")),
        server(
            copy_response(b"H", True, 3),
            *(copy_data(bytes(i)) for i in range(30)),
            copy_done(),
            command_complete("COPY 30"),
            ready(),
        ),
        client(query("copy t from stdin")),
        server(copy_response(b"G", False, 3)),
        client(copy_data(b"junk"), copy_fail("gave up")),
        server(server_error("57014", "COPY from stdin failed: gave up"), ready()),
    ],
    "extended": [
        *LOGIN,
        *hex_steps(ASYNCPG_PREPARE_AND_FETCHVAL),
        *hex_steps(PSYCOPG_PIPELINE_ERROR),
        client(query("rollback")),
        server(command_complete("ROLLBACK"), ready()),
        client(parse("s", "select * from t where a = $1 and b = $2"), describe("S", "s"), sync()),
        server(
            parse_complete(), parameter_description(23, 25), row_description([("a", 23), ("b", 25)]), ready()
        ),
        client(*(bind("", "s", [b"%d" % i, b"text " * i]) + execute("", 5) for i in range(10)), sync()),
        server(
            *(bind_complete() + data_row(b"1", b"x") * 5 + portal_suspended() for _ in range(10)), ready()
        ),
        client(
            parse("", "insert into t values ($1)"),
            bind("", "", [bytes(300)], [1]),
            describe("P", ""),
            execute(),
            sync(),
        ),
        server(parse_complete(), bind_complete(), no_data(), command_complete("INSERT 0 1"), ready()),
        client(function_call(957, [b"\x00\x06\x00\x00"])),
        server(function_result(b"\x00\x00\x40\x28"), ready()),
    ],
}


def feed_steps(analyzer: PgAnalyzer, steps: list[tuple[str, list[bytes]]]) -> list[PgEvent]:
    events: list[PgEvent] = []
    for now, (side, chunks) in enumerate(steps, start=1):
        feed = analyzer.client_data if side == "client" else analyzer.server_data
        for chunk in chunks:
            events += feed(chunk, float(now))
    events += analyzer.close(float(len(steps) + 1))
    return events


LIMITS = [{}, {"max_message": 40, "max_sql": 10, "max_param": 3, "max_params": 2}]
WHOLE = {
    (name, index): (lambda a: (feed_steps(a, [(s, [d]) for s, d in steps]), a.stopped))(PgAnalyzer(**limits))
    for name, steps in CONVERSATIONS.items()
    for index, limits in enumerate(LIMITS)
}


def test_the_conversations_read_whole() -> None:
    for (name, index), (events, stopped) in WHOLE.items():
        if index == 0:
            assert stopped is None, name
            assert len(statements(events)) >= 3, name


@given(
    name=st.sampled_from(sorted(CONVERSATIONS)),
    index=st.sampled_from(range(len(LIMITS))),
    data=st.data(),
)
@settings(max_examples=200, deadline=None)
def test_random_chunking_gives_the_same_events(name: str, index: int, data: st.DataObject) -> None:
    steps = []
    for side, chunk in CONVERSATIONS[name]:
        cuts = data.draw(st.lists(st.integers(0, len(chunk)), max_size=6))
        steps.append((side, split_at(chunk, cuts)))
    analyzer = PgAnalyzer(**LIMITS[index])
    assert (feed_steps(analyzer, steps), analyzer.stopped) == WHOLE[name, index]


@pytest.mark.parametrize("name", sorted(CONVERSATIONS))
def test_byte_by_byte_gives_the_same_events(name: str) -> None:
    for index, limits in enumerate(LIMITS):
        analyzer = PgAnalyzer(**limits)
        steps = [(side, bytewise(chunk)) for side, chunk in CONVERSATIONS[name]]
        assert (feed_steps(analyzer, steps), analyzer.stopped) == WHOLE[name, index]


def checked(analyzer: PgAnalyzer, side: str, data: bytes, now: float) -> list[PgEvent]:
    """Feed `data`; once the analysis stopped, nothing more may come out."""
    stopped_before = analyzer.stopped is not None
    events = analyzer.client_data(data, now) if side == "client" else analyzer.server_data(data, now)
    if stopped_before:
        assert events == []
    return events


@given(
    chunks=st.lists(st.tuples(st.sampled_from(["client", "server"]), st.binary(max_size=300)), max_size=12),
    login=st.booleans(),
)
@settings(max_examples=200, deadline=None)
def test_random_bytes_never_raise(chunks: list[tuple[str, bytes]], login: bool) -> None:
    analyzer = PgAnalyzer(max_message=16)
    if login:
        run(LOGIN, analyzer)
    for now, (side, data) in enumerate(chunks):
        checked(analyzer, side, data, float(now))
    stopped = analyzer.stopped is not None
    closing = analyzer.close(99.0)
    assert not stopped or closing == []


@given(name=st.sampled_from(sorted(CONVERSATIONS)), data=st.data())
@settings(max_examples=200, deadline=None)
def test_mutated_conversations_never_raise(name: str, data: st.DataObject) -> None:
    steps = list(CONVERSATIONS[name])
    at = data.draw(st.integers(0, len(steps) - 1))
    side, chunk = steps[at]
    steps[at] = (side, mutate(data.draw, chunk))
    analyzer = PgAnalyzer(max_message=data.draw(st.sampled_from([16, 30, 1 << 20])))
    for now, (side, chunk) in enumerate(steps):
        for event in checked(analyzer, side, chunk, float(now)):
            if isinstance(event, StatementCompleted):
                assert len(event.sql) <= 64 * 1024 and len(event.params) <= 64


def feed_measured(analyzer: PgAnalyzer, side: str, chunks: list[bytes]) -> tuple[list[PgEvent], int]:
    """Feed prebuilt chunks (shared objects, so that only the analyzer allocates) under tracemalloc."""
    events: list[PgEvent] = []
    tracemalloc.start()
    try:
        for chunk in chunks:
            events += analyzer.client_data(chunk, 5) if side == "client" else analyzer.server_data(chunk, 5)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return events, peak


def test_a_50_mb_datarow_stream_is_counted_not_kept() -> None:
    analyzer = PgAnalyzer()
    run([*LOGIN, client(query("select payload from big"))], analyzer)
    block = data_row(bytes(1000)) * 1024  # 1 MiB of rows, cut across message boundaries below
    block_chunks = split_at(block, range(1 << 16, len(block), 1 << 16))
    huge = 25 << 20
    zeros = bytes(1 << 16)
    chunks = [
        row_description([("payload", 17)]),
        *block_chunks * 25,
        b"D" + struct.pack(">Ihi", 4 + 2 + 4 + huge, 1, huge),
        *[zeros] * (huge >> 16),
        command_complete("SELECT 25601") + ready(),
    ]
    events, peak = feed_measured(analyzer, "server", chunks)
    assert peak < 256 << 10
    (select,) = statements(events)
    assert (select.data_rows, select.rows, analyzer.stopped) == (25 * 1024 + 1, 25601, None)


def test_a_huge_query_keeps_max_sql_characters() -> None:
    analyzer = PgAnalyzer(max_sql=1000)
    run(LOGIN, analyzer)
    values = b"(1)," * (1 << 14)
    start = b"insert into t values "
    chunks = [
        b"Q" + struct.pack(">I", 4 + len(start) + 320 * len(values) + 1) + start,
        *[values] * 320,
        b"\0",
    ]
    events, peak = feed_measured(analyzer, "client", chunks)
    assert events == [] and peak < 256 << 10
    events = analyzer.server_data(command_complete("INSERT 0 5242880") + ready(), 6)
    (insert,) = statements(events)
    assert (insert.sql, insert.truncated, insert.rows) == ((start + values)[:1000].decode(), True, 5 << 20)


def test_a_bind_over_max_message_keeps_its_first_parameters() -> None:
    analyzer = PgAnalyzer(max_message=1 << 16, max_param=10)
    steps = [
        *LOGIN,
        client(
            parse("", "insert into t values ($1, $2, $3)"),
            bind("", "", [b"small", bytes(1 << 20), b"lost"]),
            execute(),
            sync(),
        ),
        server(parse_complete(), bind_complete(), command_complete("INSERT 0 1"), ready()),
    ]
    (insert,) = statements(run(steps, analyzer))
    assert insert.params == ("small", "\0" * 10)


def test_an_error_over_max_message_is_cut() -> None:
    analyzer = PgAnalyzer(max_message=100)
    events = run(
        [*LOGIN, client(query("x")), server(server_error("22P02", "invalid input: " + "x" * 500), ready())],
        analyzer,
    )
    error = statements(events)[0].error
    assert error is not None and error.sqlstate == "22P02" and error.message.startswith("invalid input: xxx")
    assert len(error.message) < 100


def test_max_pending_stops_an_endless_pipeline() -> None:
    analyzer = PgAnalyzer(max_pending=100)
    run(LOGIN, analyzer)
    analyzer.client_data((bind("", "") + execute()) * 50, 3)
    assert analyzer.stopped is None
    analyzer.client_data(bind("", "") + execute(), 4)
    assert analyzer.stopped == "client: more than 100 messages await an answer"


def test_max_notices_per_statement() -> None:
    events = run(
        [
            *LOGIN,
            client(query("do $$ $$")),
            server(*(notice("00000", f"n{i}") for i in range(10)), command_complete("DO"), ready()),
        ],
        PgAnalyzer(max_notices=3),
    )
    assert [n.message for n in statements(events)[0].notices] == ["n0", "n1", "n2"]


def test_max_statements_forgets_the_oldest() -> None:
    analyzer = PgAnalyzer(max_statements=2)
    steps = [*LOGIN]
    for name in ("a", "b", "c"):
        steps += [client(parse(name, f"select '{name}'"), sync()), server(parse_complete(), ready())]
    steps += [
        client(bind("", "a"), execute(), bind("", "c"), execute(), sync()),
        server(
            bind_complete(),
            command_complete("SELECT 1"),
            bind_complete(),
            command_complete("SELECT 1"),
            ready(),
        ),
    ]
    events = statements(run(steps, analyzer))
    assert [(s.kind, s.statement, s.sql) for s in events[3:]] == [
        ("extended", "a", ""),
        ("extended", "c", "select 'c'"),
    ]


def test_startup_packets_are_bounded() -> None:
    analyzer = PgAnalyzer()
    assert analyzer.client_data(startup([("user", "u"), ("options", "x" * 9900)]), 1) != []
    analyzer = PgAnalyzer()
    analyzer.client_data(startup([("user", "u"), ("options", "x" * 10000)]), 1)
    assert analyzer.stopped is not None and analyzer.stopped.startswith("client: startup packet length")


@pytest.mark.parametrize("limits", [{"max_sql": -1}, {"max_pending": -1}, {"max_message": 15}])
def test_impossible_limits_are_refused(limits: dict[str, int]) -> None:
    with pytest.raises(ValueError):
        PgAnalyzer(**limits)
