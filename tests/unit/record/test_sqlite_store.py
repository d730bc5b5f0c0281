"""The SQLite flow store against real database files: writing, filters, retention, failures."""

from __future__ import annotations

import os
import sqlite3
from datetime import datetime
from pathlib import Path

import pytest

from lanner.record.filter import parse
from lanner.record.model import Body, ConnectionRecord, FlowRecord
from lanner.record.sqlite import SqliteStore
from lanner.record.store import StoreError

T0 = 1_700_000_000.0  # in the past: since:/until: count back from now


def make_flow(n: int, **changes: object) -> FlowRecord:
    record = FlowRecord(
        conn_uid=f"p.{n % 3}",
        proto="http",
        started=T0 + n,
        method="GET",
        host="api.example.com",
        port=80,
        path=f"/v1/items/{n}?tag=t{n}",
        request_headers=[("Host", "api.example.com"), ("X-Request-Id", f"req-{n}")],
        request_ended=T0 + n + 0.001,
        status=200,
        reason="OK",
        response_headers=[("Content-Type", "application/json")],
        response_body=Body(b'{"n": %d}' % n, len(b'{"n": %d}' % n)),
        response_started=T0 + n + 0.01,
        response_ended=T0 + n + 0.02,
        listener="forward",
        client="127.0.0.1:5000",
        search_text=f'{{"n": {n}}}',
    )
    for name, value in changes.items():
        setattr(record, name, value)
    return record


@pytest.fixture
def path(tmp_path: Path) -> str:
    return str(tmp_path / "deeper" / "lanner.db")  # parent directories are created


@pytest.fixture
def store(path: str) -> SqliteStore:
    opened = SqliteStore(path)
    yield opened  # type: ignore[misc]
    opened.close()


def ids(found: list[FlowRecord]) -> list[int]:
    return [record.id for record in found]


def test_round_trip_keeps_every_field(store: SqliteStore, path: str) -> None:
    body = os.urandom(300) * 10  # > 1 KiB: stored compressed (lz4)
    record = make_flow(
        1,
        method="POST",
        request_body=Body(body, len(body)),
        request_trailers=[("X-Checksum", "1")],
        response_trailers=[("X-Done", "yes")],
        interim=[100],
        notes={"response_decode_error": "gzip: bad"},
        user="alice",
        http_version="1.0",
        response_body=Body(b"head" + b"tail", 10_000_000, True, 4),
    )
    store.write(
        [ConnectionRecord("p.1", "forward", "127.0.0.1:5000", "http", T0, T0 + 5, sni="x.test")], [record]
    )
    assert record.id == 1
    reader = SqliteStore(path, readonly=True)
    try:
        back = reader.get(1)
        assert back is not None
        expected = make_flow(0)  # compare field by field, except what the store does not keep
        for name in FlowRecord.__slots__:  # type: ignore[attr-defined]
            if name == "search_text":
                continue
            assert getattr(back, name) == getattr(record, name), name
        assert back.search_text == "" and expected.id == 0
        summary = reader.flows(None)[0]
        assert summary.request_body.data == b"" and summary.request_body.size == len(body)
        assert summary.response_body.truncated and summary.request_headers == []
        assert reader.connection("p.1") == ConnectionRecord(
            "p.1", "forward", "127.0.0.1:5000", "http", T0, T0 + 5, sni="x.test"
        )
        assert reader.get(99) is None and reader.connection("nope") is None
    finally:
        reader.close()


def test_ids_are_assigned_in_order_across_batches(store: SqliteStore) -> None:
    first, second = [make_flow(n) for n in range(3)], [make_flow(n) for n in range(3, 5)]
    store.write([], first)
    store.write([], second)
    assert ids(first + second) == [1, 2, 3, 4, 5]
    assert ids(store.flows(None)) == [5, 4, 3, 2, 1]
    assert ids(store.flows(None, limit=2, before_id=4)) == [3, 2]
    assert ids(store.flows_after(None, 2, limit=2)) == [3, 4]


@pytest.fixture
def varied(store: SqliteStore) -> SqliteStore:
    store.write(
        [],
        [
            make_flow(1),
            make_flow(2, method="POST", status=500, host="Other.example.com", path="/v2/orders"),
            make_flow(3, status=None, response_ended=None, error="upstream refused the connection"),
            make_flow(4, status=404, user="alice", search_text="the zebracorn is here"),
            make_flow(
                5, response_ended=T0 + 5 + 1.5, path="/v1/[weird]?x", response_body=Body(b"", 5_000_000)
            ),
            make_flow(6, request_headers=[("X-Trace", "abc-def")], client="10.0.0.7:1"),
        ],
    )
    return store


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("host:api.example.com", [6, 5, 4, 3, 1]),
        ("host:other.example.com", [2]),
        ("host:*.example.com", [6, 5, 4, 3, 2, 1]),
        ("method:POST", [2]),
        ("status:>=500", [2]),
        ("status:4xx", [4]),
        ("status:200-404", [6, 5, 4, 1]),
        ("-status:200", [4, 3, 2]),  # no status (3) is "not 200"
        ("path:/v1/*", [6, 5, 4, 3, 1]),
        ("path:/v2/orders", [2]),
        ("path:/v1/[weird]*", [5]),  # glob characters in the value are literal
        ("url:*tag=t4*", [4]),
        ("duration:>1s", [5]),
        ("duration:<=20ms", [6, 4, 2, 1]),
        ("size:>1MiB", [5]),
        ("error:*", [3]),
        ("error:*refused*", [3]),
        ("user:alice", [4]),
        ("-user:alice", [6, 5, 3, 2, 1]),
        ("client:10.0.0.*", [6]),
        ("conn:p.1", [4, 1]),
        ("id:>4", [6, 5]),
        ("since:1s", []),
        (f"until:{datetime.fromtimestamp(T0 + 2.5).isoformat()}", [2, 1]),
        ("zebracorn", [4]),
        ('body:"zebracorn is"', [4]),
        ("header:abc-def", [6]),
        ('"req-2"', [2]),
        ("status:5xx or error:*", [3, 2]),
        ("(status:5xx or error:*) and not host:other.example.com", [3]),
        ("listener:forward proto:http scheme:http", [6, 5, 4, 3, 2, 1]),
    ],
)
def test_filters(varied: SqliteStore, text: str, expected: list[int]) -> None:
    query = parse(text)
    assert ids(varied.flows(query)) == expected
    assert varied.count(query) == len(expected)


def test_stats(varied: SqliteStore) -> None:
    stats = varied.stats(None)
    assert stats.flows == 6 and stats.connections == 0
    assert stats.status_classes == {"none": 1, "2xx": 3, "4xx": 1, "5xx": 1}
    groups = {(host, group): (count, p50) for host, group, count, p50, _, _ in stats.latency}
    assert groups[("api.example.com", "/v1")][0] == 5
    assert groups[("other.example.com", "/v2")] == (1, pytest.approx(20.0))
    assert stats.db_bytes > 0
    assert varied.stats(parse("status:5xx")).flows == 1


def test_prune_by_age_and_by_size(path: str, store: SqliteStore) -> None:
    store.write(
        [ConnectionRecord(f"p.{n}", "f", "c", "http", T0 + n, T0 + n + 1) for n in range(3)],
        [make_flow(n, response_body=Body(os.urandom(20_000), 20_000)) for n in range(300)],
    )
    assert store.prune(max_age=100.5, max_bytes=None, now=T0 + 200) == 100  # flows 0..99 are older
    assert store.flows_after(None, 0, limit=1)[0].started == T0 + 100
    assert store.connections() == []  # all three connections ended before the cutoff
    before, file_before = store.size(), os.path.getsize(path)
    assert store.prune(max_age=None, max_bytes=before // 2, now=T0 + 200) > 0
    assert store.size() <= before // 2
    assert os.path.getsize(path) < file_before * 0.75  # pages go back to the file system (incremental vacuum)


def test_prune_of_nothing(store: SqliteStore) -> None:
    store.write([], [make_flow(1)])
    assert store.prune(max_age=3600, max_bytes=1024**3, now=T0 + 10) == 0
    assert ids(store.flows(None)) == [1]


def test_reader_sees_writes_while_the_writer_is_open(store: SqliteStore, path: str) -> None:
    store.write([], [make_flow(1)])
    reader = SqliteStore(path, readonly=True)
    try:
        assert ids(reader.flows(None)) == [1]
        store.write([], [make_flow(2)])
        assert ids(reader.flows(None)) == [2, 1]
    finally:
        reader.close()


def test_missing_store_for_a_reader(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="no flow store"):
        SqliteStore(str(tmp_path / "none.db"), readonly=True)


def test_not_a_database(tmp_path: Path) -> None:
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is not sqlite" * 1000)
    with pytest.raises(StoreError, match="corrupt"):
        SqliteStore(str(junk))
    with pytest.raises(StoreError, match="corrupt"):
        SqliteStore(str(junk), readonly=True)


def test_other_sqlite_database_is_refused(tmp_path: Path) -> None:
    other = tmp_path / "other.db"
    with sqlite3.connect(other) as db:
        db.execute("PRAGMA user_version = 42")
    with pytest.raises(StoreError, match="schema version 42"):
        SqliteStore(str(other))


def test_unwritable_directory(tmp_path: Path) -> None:
    if os.geteuid() == 0:
        target = "/proc/lanner-cannot-be-here/lanner.db"  # even root cannot create this
    else:
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        target = str(locked / "sub" / "lanner.db")
    with pytest.raises(StoreError, match="readonly"):
        SqliteStore(target)


def test_locked_database(path: str, store: SqliteStore) -> None:
    store.write([], [make_flow(1)])
    other = SqliteStore(path, busy_timeout=0.05)  # a second writer, open before the lock is taken
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    batch = [make_flow(2)]
    try:
        with pytest.raises(StoreError, match="locked"):
            other.write([], batch)
        assert batch[0].id == 0  # the ids a failed batch was given are taken back
        with pytest.raises(StoreError, match="locked"):
            SqliteStore(path, busy_timeout=0.05)  # opening fails the same way
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    other.write([], batch)
    assert batch[0].id == 2  # no hole where the failed batch was
    other.close()


def test_writing_to_a_readonly_store_fails_cleanly(store: SqliteStore, path: str) -> None:
    store.write([], [make_flow(1)])
    reader = SqliteStore(path, readonly=True)
    try:
        with pytest.raises(StoreError, match="readonly"):
            reader.write([], [make_flow(2)])
    finally:
        reader.close()


def test_any_filter_that_parses_can_be_run(tmp_path: Path) -> None:
    """Whatever text a filter holds (the admin API takes it from anyone), the store runs it or it fails to parse."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    from lanner.record.filter import FilterError

    store = SqliteStore(str(tmp_path / "f.db"))
    store.write([], [make_flow(n) for n in range(3)])
    fields = st.sampled_from(["", "body:", "header:", "host:", "path:", "sql:", "key:", "cmd:", "status:", "text:"])

    @given(st.tuples(fields, st.text(max_size=20)).map("".join))
    @settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
    def runs(text: str) -> None:
        try:
            query = parse(text)
        except FilterError:
            return
        store.flows(query, limit=5)
        store.count(query)

    runs()
    assert [f.id for f in store.flows(parse('"a\x00b" OR body:"x\x00"'))] == []
    store.close()


def test_a_reader_tells_a_store_being_created_from_a_foreign_file(tmp_path: Path) -> None:
    from lanner.record.store import StoreNotCreated

    empty = tmp_path / "empty.db"
    sqlite3.connect(empty).close()  # the file exists; the writer has not committed its schema yet
    with pytest.raises(StoreNotCreated):
        SqliteStore(str(empty), readonly=True)
    foreign = tmp_path / "foreign.db"
    with sqlite3.connect(foreign) as db:
        db.execute("CREATE TABLE t (x)")
    with pytest.raises(StoreError) as raised:
        SqliteStore(str(foreign), readonly=True)
    assert not isinstance(raised.value, StoreNotCreated)
