"""Exchange -> FlowRecord: URL splitting, header decoding, bodies."""

from __future__ import annotations

import pytest

from lanner.record.convert import Origin, flow, pack, split_target
from lanner.wire.http_exchange import HttpAnalyzer

ORIGIN = Origin("abc.1", "forward", "127.0.0.1:5000", "alice")


@pytest.mark.parametrize(
    ("target", "host_header", "expected"),
    [
        ("http://Example.com/a?b=1", None, ("http", "example.com", 80, "/a?b=1")),
        ("http://example.com:8080", None, ("http", "example.com", 8080, "/")),
        ("http://user:pw@[::1]:81/x", None, ("http", "::1", 81, "/x")),
        ("/path", "api.example.com:9000", ("http", "api.example.com", 9000, "/path")),
        ("/path", None, ("http", "", 80, "/path")),
    ],
)
def test_split_target(target: str, host_header: str | None, expected: tuple[str, str, int, str]) -> None:
    assert split_target(target, ORIGIN, host_header) == expected


def test_tcp_listener_target_is_used_without_a_host_header() -> None:
    origin = Origin("abc.2", "api", "-", None, "http", "10.0.0.5", 8000)
    assert split_target("/x", origin, None) == ("http", "10.0.0.5", 8000, "/x")


def test_exchange_becomes_a_flow() -> None:
    analyzer = HttpAnalyzer()
    analyzer.client_data(
        b"POST http://h.example/p?q=1 HTTP/1.1\r\nHost: h.example\r\nX-Name: caf\xc3\xa9\r\nContent-Length: 2\r\n\r\nhi",
        1.0,
    )
    (exchange,) = analyzer.server_data(
        b"HTTP/1.1 201 Created\r\nContent-Length: 2\r\nX-Bin: \xff\r\n\r\nok", 2.0
    )
    record = flow(pack(exchange, ORIGIN))
    assert (record.method, record.host, record.port, record.path, record.status, record.reason) == (
        "POST",
        "h.example",
        80,
        "/p?q=1",
        201,
        "Created",
    )
    assert ("X-Name", "café") in record.request_headers
    assert ("X-Bin", "\\xff") in record.response_headers  # undecodable bytes are escaped, not lost
    assert record.request_body.data == b"hi" and record.response_body.data == b"ok"
    assert (record.conn_uid, record.listener, record.client, record.user) == (
        "abc.1",
        "forward",
        "127.0.0.1:5000",
        "alice",
    )
    assert record.url == "http://h.example/p?q=1" and record.duration == 1.0


def test_headers_survive_packing_even_with_a_nul() -> None:
    from lanner.record.convert import _pack_headers, headers

    raw = [(b"X-A", b"1"), (b"X-Nul", b"a\x00b"), (b"Empty", b"")]
    assert headers(_pack_headers(raw)) == [("X-A", "1"), ("X-Nul", "a\\x00b"), ("Empty", "")]
    assert headers(_pack_headers([])) == []
