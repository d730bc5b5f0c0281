"""PostgreSQL message builders for the analyzer tests, checked against bytes PostgreSQL 15 sent.

The builders write messages the way the server and libpq, asyncpg and psycopg 3 do
(protocol chapter 55.7); the captures below were recorded through a relay in front of
PostgreSQL 15.20 and show that they agree byte for byte. The decoders of
`lanner.wire.postgres_messages` are tested here too.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lanner.wire import postgres_messages as decoders
from lanner.wire.errors import ProtocolError
from lanner.wire.postgres_events import PgError
from lanner.wire.postgres_messages import ParamLimits, error_fields, tag_rows

# -- framing --


def message(kind: bytes, body: bytes = b"") -> bytes:
    return kind + struct.pack(">I", len(body) + 4) + body


def cstr(text: str) -> bytes:
    return text.encode() + b"\0"


def int16s(values: Sequence[int]) -> bytes:
    return struct.pack(f">h{len(values)}h", len(values), *values)


def values(items: Sequence[bytes | None]) -> bytes:
    out = struct.pack(">h", len(items))
    for item in items:
        out += struct.pack(">i", -1) if item is None else struct.pack(">i", len(item)) + item
    return out


# -- frontend: untagged packets --


def startup(params: Iterable[tuple[str, str]], version: tuple[int, int] = (3, 0)) -> bytes:
    body = struct.pack(">hh", *version) + b"".join(cstr(k) + cstr(v) for k, v in params) + b"\0"
    return struct.pack(">I", len(body) + 4) + body


def ssl_request() -> bytes:
    return struct.pack(">II", 8, 80877103)


def gssenc_request() -> bytes:
    return struct.pack(">II", 8, 80877104)


def cancel_request(pid: int, key: bytes) -> bytes:
    return struct.pack(">IIi", 12 + len(key), 80877102, pid) + key


# -- frontend: tagged messages --


def query(sql: str) -> bytes:
    return message(b"Q", cstr(sql))


def parse(name: str, sql: str, types: Sequence[int] = ()) -> bytes:
    return message(b"P", cstr(name) + cstr(sql) + struct.pack(f">h{len(types)}I", len(types), *types))


def bind(
    portal: str,
    statement: str,
    params: Sequence[bytes | None] = (),
    formats: Sequence[int] = (),
    result_formats: Sequence[int] = (),
) -> bytes:
    return message(
        b"B", cstr(portal) + cstr(statement) + int16s(formats) + values(params) + int16s(result_formats)
    )


def describe(target: str, name: str) -> bytes:
    return message(b"D", target.encode() + cstr(name))


def execute(portal: str = "", max_rows: int = 0) -> bytes:
    return message(b"E", cstr(portal) + struct.pack(">i", max_rows))


def close(target: str, name: str) -> bytes:
    return message(b"C", target.encode() + cstr(name))


def sync() -> bytes:
    return message(b"S")


def flush() -> bytes:
    return message(b"H")


def terminate() -> bytes:
    return message(b"X")


def function_call(
    oid: int, args: Sequence[bytes | None], formats: Sequence[int] = (1,), result: int = 1
) -> bytes:
    return message(b"F", struct.pack(">I", oid) + int16s(formats) + values(args) + struct.pack(">h", result))


def copy_data(data: bytes) -> bytes:
    return message(b"d", data)


def copy_done() -> bytes:
    return message(b"c")


def copy_fail(reason: str) -> bytes:
    return message(b"f", cstr(reason))


def password(secret: bytes) -> bytes:
    """PasswordMessage, SASLResponse and GSSResponse alike."""
    return message(b"p", secret)


def sasl_initial(mechanism: str, data: bytes) -> bytes:
    return message(b"p", cstr(mechanism) + struct.pack(">i", len(data)) + data)


# -- backend --


def authentication(code: int, data: bytes = b"") -> bytes:
    return message(b"R", struct.pack(">i", code) + data)


def auth_sasl(*mechanisms: str) -> bytes:
    return authentication(10, b"".join(cstr(m) for m in mechanisms) + b"\0")


def parameter_status(name: str, value: str) -> bytes:
    return message(b"S", cstr(name) + cstr(value))


def backend_key(pid: int, key: bytes) -> bytes:
    return message(b"K", struct.pack(">i", pid) + key)


def ready(status: str = "I") -> bytes:
    return message(b"Z", status.encode())


Column = tuple[str, int] | tuple[str, int, int, int, int, int]  # name, type, [table, attnum, typlen, typmod]
TYPLEN = {16: 1, 20: 8, 21: 2, 23: 4, 26: 4, 2278: 4}


def row_description(columns: Sequence[Column]) -> bytes:
    body = struct.pack(">h", len(columns))
    for column in columns:
        if len(column) == 2:
            name, oid = column
            table, attnum, typlen, typmod = 0, 0, TYPLEN.get(oid, -1), -1
        else:
            name, oid, table, attnum, typlen, typmod = column
        body += cstr(name) + struct.pack(">IhIhih", table, attnum, oid, typlen, typmod, 0)
    return message(b"T", body)


def data_row(*columns: bytes | None) -> bytes:
    return message(b"D", values(columns))


def command_complete(tag: str) -> bytes:
    return message(b"C", cstr(tag))


def error_body(fields: Sequence[tuple[str, str]]) -> bytes:
    return b"".join(code.encode() + cstr(value) for code, value in fields) + b"\0"


def server_error(
    sqlstate: str,
    text: str,
    severity: str = "ERROR",
    extra: Sequence[tuple[str, str]] = (),
    kind: bytes = b"E",
) -> bytes:
    """An ErrorResponse (or NoticeResponse with kind=b"N") as the server writes it."""
    fields = [("S", severity), ("V", severity), ("C", sqlstate), ("M", text), *extra]
    return message(kind, error_body(fields))


def notice(
    sqlstate: str, text: str, severity: str = "NOTICE", extra: Sequence[tuple[str, str]] = ()
) -> bytes:
    return server_error(sqlstate, text, severity, extra, kind=b"N")


def parse_complete() -> bytes:
    return message(b"1")


def bind_complete() -> bytes:
    return message(b"2")


def close_complete() -> bytes:
    return message(b"3")


def no_data() -> bytes:
    return message(b"n")


def empty_query() -> bytes:
    return message(b"I")


def portal_suspended() -> bytes:
    return message(b"s")


def parameter_description(*oids: int) -> bytes:
    return message(b"t", struct.pack(f">h{len(oids)}I", len(oids), *oids))


def copy_response(kind: bytes, binary: bool, columns: int) -> bytes:
    """CopyInResponse (b"G"), CopyOutResponse (b"H") or CopyBothResponse (b"W")."""
    code = 1 if binary else 0
    return message(kind, struct.pack(f">bh{columns}h", code, columns, *[code] * columns))


def notification(pid: int, channel: str, payload: str) -> bytes:
    return message(b"A", struct.pack(">i", pid) + cstr(channel) + cstr(payload))


def function_result(value: bytes | None) -> bytes:
    return message(b"V", values([value])[2:])


def negotiate_protocol(minor: int, unknown: Sequence[str] = ()) -> bytes:
    return message(b"v", struct.pack(">ii", minor, len(unknown)) + b"".join(cstr(o) for o in unknown))


def server_startup(pid: int = 11196, key: bytes = b"\x57\xec\x95\x87", status: str = "I") -> bytes:
    """What PostgreSQL 15 sends after a trust login, as seen from psql."""
    params = [
        ("application_name", "psql"),
        ("client_encoding", "UTF8"),
        ("DateStyle", "ISO, MDY"),
        ("server_version", "15.20 (Debian 15.20-0+deb12u1)"),
    ]
    return (
        authentication(0)
        + b"".join(parameter_status(k, v) for k, v in params)
        + backend_key(pid, key)
        + ready(status)
    )


# -- captures: PostgreSQL 15.20 and its clients, through a relay --

# psql logging in with SCRAM-SHA-256 (a throwaway user on a scratch server), one
# entry per read, client first.
SCRAM_LOGIN = [
    (
        "client",
        "00000041000300007573657200736372616d5f7573657200646174616261736500706f737467726573006170706c"
        "69636174696f6e5f6e616d65007073716c0000",
    ),
    ("server", "52000000170000000a534352414d2d5348412d3235360000"),
    (
        "client",
        "7000000036534352414d2d5348412d32353600000000206e2c2c6e3d2c723d716f545341625a36305a494b48527"
        "96e6f70496e396a5972",
    ),
    (
        "server",
        "520000005c0000000b723d716f545341625a36305a494b4852796e6f70496e396a597259472b5834742b50536c7947"
        "64345642373333736a3041652c733d2b65744d53565351526f5347343731304a6a746f46673d3d2c693d34303936",
    ),
    (
        "client",
        "700000006c633d626977732c723d716f545341625a36305a494b4852796e6f70496e396a597259472b5834742b5053"
        "6c794764345642373333736a3041652c703d562b2f455172396e336c4a4c3847414a49646b7557754f6f644a416e32"
        "6b706f584233346a44434955426b3d",
    ),
    (
        "server",
        "52000000360000000c763d55447530476c63446a6e6857787854352b5a6d6f613969434645503177546a6671546630"
        "5a6842343777673d520000000800000000530000001a6170706c69636174696f6e5f6e616d65007073716c00530000"
        "0019636c69656e745f656e636f64696e670055544638005300000017446174655374796c650049534f2c204d445900"
        "530000002664656661756c745f7472616e73616374696f6e5f726561645f6f6e6c79006f6666005300000017696e5f"
        "686f745f7374616e646279006f6666005300000019696e74656765725f6461746574696d6573006f6e00530000001b"
        "496e74657276616c5374796c6500706f73746772657300530000001569735f737570657275736572006f6666005300"
        "0000197365727665725f656e636f64696e6700555446380053000000327365727665725f76657273696f6e0031352e"
        "3230202844656269616e2031352e32302d302b646562313275312900530000002573657373696f6e5f617574686f72"
        "697a6174696f6e00736372616d5f757365720053000000237374616e646172645f636f6e666f726d696e675f737472"
        "696e6773006f6e00530000001554696d655a6f6e65004574632f555443004b0000000c00002bbc57ec95875a000000"
        "0549",
    ),
]
SCRAM_CLIENT_PROOF = b"V+/EQr9n3lJL8GAJIdkuWuOodJAn2kpoXB34jDCIUBk="
SCRAM_SERVER_SIGNATURE = b"UDu0GlcDjnhWxxT5+Zmoa9iCFEP1wTjfqTf0ZhB47wg="

# asyncpg: `await conn.prepare(sql)` (Parse, Describe, Flush) then `fetchval(1)` (Bind,
# Execute with a row limit of 1, Sync).
ASYNCPG_PREPARE_AND_FETCHVAL = [
    (
        "client",
        "500000003e5f5f6173796e6370675f73746d745f335f5f0073656c656374206e616d652066726f6d206361705f74"
        "207768657265206964203d2024310000004400000018535f5f6173796e6370675f73746d745f335f5f004800000004",
    ),
    (
        "server",
        "3100000004740000000a000100000017540000001d00016e616d6500000040ab000200000019ffffffffffff0000",
    ),
    (
        "client",
        "420000002a005f5f6173796e6370675f73746d745f335f5f00000100010001000000040000000100010001450000"
        "000900000000015300000004",
    ),
    ("server", "3200000004440000000d0001000000036f6e6573000000045a0000000549"),
]

# psycopg 3, pipeline mode: three statements, then Sync and Flush, the second failing.
PSYCOPG_PIPELINE_ERROR = [
    (
        "client",
        "500000001a0073656c6563742024313a3a696e7400000100000015420000001600000001000100010000000200010001"
        "00004400000006500045000000090000000000",
    ),
    (
        "client",
        "50000000120073656c65637420312f30000000420000000e00000000000000010000440000000650004500000009000000"
        "0000",
    ),
    (
        "client",
        "500000001a0073656c6563742024313a3a696e7400000100000015420000001600000001000100010000000200020001"
        "0000440000000650004500000009000000000053000000044800000004",
    ),
    (
        "server",
        "31000000043200000004540000001d0001696e743400000000000000000000170004ffffffff0000440000000b000100"
        "00000131430000000d53454c45435420310031000000044500000041534552524f5200564552524f5200433232303132"
        "004d6469766973696f6e206279207a65726f0046696e742e63004c3836390052696e74346469760000",
    ),
    ("server", "5a0000000545"),
]


def hex_steps(steps: list[tuple[str, str]]) -> list[tuple[str, bytes]]:
    return [(side, bytes.fromhex(data)) for side, data in steps]


def test_builders_write_what_psql_and_postgres_sent() -> None:
    (_, client_startup), (_, sasl), (_, initial), _, _, (_, final) = hex_steps(SCRAM_LOGIN)
    assert client_startup == startup(
        [("user", "scram_user"), ("database", "postgres"), ("application_name", "psql")]
    )
    assert sasl == auth_sasl("SCRAM-SHA-256")
    assert initial == sasl_initial("SCRAM-SHA-256", b"n,,n=,r=qoTSAbZ60ZIKHRynopIn9jYr")
    assert final.endswith(backend_key(11196, b"\x57\xec\x95\x87") + ready("I"))
    assert final.startswith(authentication(12, b"v=" + SCRAM_SERVER_SIGNATURE) + authentication(0))


def test_builders_write_what_asyncpg_and_postgres_sent() -> None:
    (_, prepare), (_, described), (_, fetch), (_, fetched) = hex_steps(ASYNCPG_PREPARE_AND_FETCHVAL)
    name = "__asyncpg_stmt_3__"
    assert prepare == parse(name, "select name from cap_t where id = $1") + describe("S", name) + flush()
    assert described == parse_complete() + parameter_description(23) + row_description(
        [("name", 25, 16555, 2, -1, -1)]
    )
    int4 = (1).to_bytes(4, "big")
    assert fetch == bind("", name, [int4], formats=[1], result_formats=[1]) + execute("", 1) + sync()
    assert fetched == bind_complete() + data_row(b"one") + portal_suspended() + ready("I")


def test_builders_write_what_psycopg_and_postgres_sent() -> None:
    steps = hex_steps(PSYCOPG_PIPELINE_ERROR)
    pipeline = b"".join(data for side, data in steps if side == "client")
    answers = b"".join(data for side, data in steps if side == "server")

    def statement(sql: str, params: Sequence[bytes], types: Sequence[int]) -> bytes:
        formats = [1] * len(params)
        return parse("", sql, types) + bind("", "", params, formats, [0]) + describe("P", "") + execute()

    assert pipeline == (
        statement("select $1::int", [b"\x00\x01"], [21])
        + statement("select 1/0", [], [])
        + statement("select $1::int", [b"\x00\x02"], [21])
        + sync()
        + flush()
    )
    assert answers == (
        parse_complete()
        + bind_complete()
        + row_description([("int4", 23)])
        + data_row(b"1")
        + command_complete("SELECT 1")
        + parse_complete()
        + server_error("22012", "division by zero", extra=[("F", "int.c"), ("L", "869"), ("R", "int4div")])
        + ready("E")
    )


# -- decoders --

LIMITS = ParamLimits(max_param=8, max_params=3, redact=False)


def test_bind_parameters_in_text_binary_and_null() -> None:
    body = bind("p", "s", [b"hello world", None, b"\x00\xff\x10\x20\x30\x40"], formats=[0, 0, 1])[5:]
    assert decoders.bind(body, False, LIMITS) == ("p", "s", ("hello wo", None, "\\x00ff10"))


@pytest.mark.parametrize(
    ("formats", "expected"),
    [
        ([], ("ab", "cd")),
        ([1], ("\\x6162", "\\x6364")),
        ([1, 0], ("\\x6162", "cd")),
        ([1, 1, 1], ("\\x6162", "\\x6364")),
    ],
)
def test_bind_format_codes(formats: list[int], expected: tuple[str, ...]) -> None:
    assert decoders.bind(bind("", "", [b"ab", b"cd"], formats)[5:], False, LIMITS)[2] == expected


def test_fewer_format_codes_than_parameters() -> None:
    # The server refuses such a Bind; reading it must not fail.
    assert decoders.bind(bind("", "", [b"ab", b"cd", b"ef"], [1, 1])[5:], False, LIMITS)[2] == (
        "\\x6162",
        "\\x6364",
        "ef",
    )


@given(
    names=st.tuples(st.text(max_size=5), st.text(max_size=5)),
    formats=st.lists(st.integers(-1, 2), max_size=4),
    params=st.lists(st.one_of(st.none(), st.binary(max_size=20)), max_size=6),
    cut=st.integers(0, 200),
)
@settings(max_examples=200, deadline=None)
def test_any_bind_decodes_or_is_refused(
    names: tuple[str, str], formats: list[int], params: list[bytes | None], cut: int
) -> None:
    body = bind(names[0].replace("\0", ""), names[1].replace("\0", ""), params, formats)[5:]
    portal, statement, decoded = decoders.bind(body, False, LIMITS)
    assert len(decoded) == min(len(params), LIMITS.max_params)
    assert [value is None for value in decoded] == [param is None for param in params][: LIMITS.max_params]
    try:
        decoders.bind(body[:cut], cut < len(body), LIMITS)
    except ProtocolError:
        pass


def test_bind_keeps_max_params_and_redacts() -> None:
    body = bind("", "", [b"1", b"2", None, b"4"])[5:]
    assert decoders.bind(body, False, LIMITS)[2] == ("1", "2", None)
    assert decoders.bind(body, False, ParamLimits(8, 10, True))[2] == ("<redacted>",) * 4


def test_a_cut_bind_keeps_what_it_has() -> None:
    body = bind("", "s", [b"x" * 100, b"y"])[5:]
    assert decoders.bind(body[:30], True, LIMITS) == ("", "s", ("xxxxxxxx",))
    with pytest.raises(ProtocolError):
        decoders.bind(body[:30], False, LIMITS)


def test_query_and_parse_cut_to_max_sql() -> None:
    sql = "select 'é' || repeat('x', 50)"
    assert decoders.query(query(sql)[5:], False, 10) == (sql[:10], True)
    assert decoders.query(query(sql)[5:], False, 1000) == (sql, False)
    assert decoders.query(query(sql)[5:20], True, 1000) == ("select 'é' || ", True)
    assert decoders.parse(parse("n", sql, [23, 25])[5:], False, 1000) == ("n", sql, False, (23, 25))
    assert decoders.parse(parse("n", sql, [23])[5:12], True, 1000) == ("n", "selec", True, ())


def test_row_description_and_errors() -> None:
    columns = row_description([("id", 23), ("név", 25)])[5:]
    assert decoders.row_description(columns, False) == (("id", 23), ("név", 25))
    assert decoders.row_description(columns[:30], True) == (("id", 23),)
    with pytest.raises(ProtocolError):
        decoders.row_description(columns[:30], False)
    body = server_error("23505", "duplicate", extra=[("D", "Key exists"), ("s", "public"), ("t", "orders")])[
        5:
    ]
    assert error_fields(body, False) == PgError(
        "ERROR", "23505", "duplicate", detail="Key exists", extra=(("s", "public"), ("t", "orders"))
    )
    assert error_fields(body[:18], True).sqlstate == "235"
    with pytest.raises(ProtocolError):
        error_fields(body[:18], False)


@pytest.mark.parametrize(
    ("tag", "rows"),
    [
        ("SELECT 3", 3),
        ("INSERT 0 1", 1),
        ("UPDATE 2", 2),
        ("DELETE 0", 0),
        ("MERGE 5", 5),
        ("FETCH 2", 2),
        ("MOVE 4", 4),
        ("COPY 7", 7),
        ("CREATE TABLE", None),
        ("BEGIN", None),
        ("SELECT " + "9" * 5000, None),
    ],
)
def test_tag_rows(tag: str, rows: int | None) -> None:
    assert tag_rows(tag) == rows
