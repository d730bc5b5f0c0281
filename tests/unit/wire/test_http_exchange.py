"""HttpAnalyzer: both directions in, exchanges out; driven with bytes and a fake clock only."""

from __future__ import annotations

import random
from collections.abc import Iterable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lanner.wire.errors import ProtocolError
from lanner.wire.http_exchange import BodyCapture, Exchange, HttpAnalyzer

FUZZ = settings(max_examples=150, deadline=None)


def summary(exchange: Exchange) -> tuple[object, ...]:
    response = exchange.response
    return (
        exchange.request.method,
        exchange.request.target,
        exchange.request_body.data(),
        exchange.request_body.size,
        tuple(exchange.request_trailers),
        tuple(exchange.interim),
        response.status if response else None,
        exchange.response_body.data(),
        exchange.response_body.size,
        tuple(exchange.response_trailers),
        exchange.upgraded,
        exchange.error,
    )


def run(
    client: bytes,
    server: bytes,
    client_cuts: Iterable[int] = (),
    server_cuts: Iterable[int] = (),
    max_body: int = 1 << 20,
    client_first: bool = True,
) -> tuple[list[tuple[object, ...]], str | None]:
    """Feed every client piece, then every server piece (or interleaved), then close."""
    analyzer = HttpAnalyzer(max_body=max_body)
    done: list[Exchange] = []
    client_pieces = _split(client, client_cuts)
    server_pieces = _split(server, server_cuts)
    if client_first:
        for piece in client_pieces:
            done += analyzer.client_data(piece, 1.0)
        for piece in server_pieces:
            done += analyzer.server_data(piece, 2.0)
    else:
        for index in range(max(len(client_pieces), len(server_pieces))):
            if index < len(client_pieces):
                done += analyzer.client_data(client_pieces[index], 1.0)
            if index < len(server_pieces):
                done += analyzer.server_data(server_pieces[index], 2.0)
    done += analyzer.close(3.0)
    return [summary(exchange) for exchange in done], analyzer.stopped


def _split(data: bytes, cuts: Iterable[int]) -> list[bytes]:
    points = sorted({cut % (len(data) + 1) for cut in cuts})
    pieces, start = [], 0
    for point in points:
        pieces.append(data[start:point])
        start = point
    pieces.append(data[start:])
    return [piece for piece in pieces if piece]


PIPELINE_CLIENT = (
    b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n"
    b"POST /b HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nX-Sum: 9\r\n\r\n"
    b"HEAD /c HTTP/1.1\r\nHost: x\r\n\r\n"
    b"PUT /d HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\nabc"
    b"GET /e HTTP/1.1\r\nHost: x\r\n\r\n"
)
PIPELINE_SERVER = (
    b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc"
    b"HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nxyz\r\n0\r\nX-T: 1\r\n\r\n"
    b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n"
    b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n"
    b"HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n"
)


def test_pipelined_exchanges_pair_in_order_with_every_framing() -> None:
    exchanges, stopped = run(PIPELINE_CLIENT, PIPELINE_SERVER)
    assert [(e[0], e[1], e[6]) for e in exchanges] == [
        (b"GET", b"/a", 200),
        (b"POST", b"/b", 201),
        (b"HEAD", b"/c", 200),
        (b"PUT", b"/d", 204),
        (b"GET", b"/e", 304),
    ]
    post = exchanges[1]
    assert post[2] == b"hello world" and post[3] == 11  # chunk framing removed
    assert post[4] == ((b"X-Sum", b"9"),)
    assert post[7] == b"xyz" and post[9] == ((b"X-T", b"1"),)
    assert exchanges[2][7] == b""  # HEAD: no body despite Content-Length
    assert exchanges[3][5] == (100,)  # the interim response is kept
    assert exchanges[3][2] == b"abc"
    assert all(e[11] is None for e in exchanges)
    assert stopped == "connection closed"


def test_timings_are_the_callers_clock() -> None:
    analyzer = HttpAnalyzer()
    assert analyzer.client_data(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", 10.0) == []
    assert analyzer.server_data(b"HTTP/1.1 200 OK\r\nContent-", 11.0) == []
    (exchange,) = analyzer.server_data(b"Length: 2\r\n\r\nok", 12.5)
    assert (exchange.started, exchange.request_ended) == (10.0, 10.0)
    assert (exchange.response_started, exchange.response_ended) == (11.0, 12.5)


def test_close_delimited_response_ends_at_server_eof() -> None:
    analyzer = HttpAnalyzer()
    analyzer.client_data(b"GET / HTTP/1.0\r\n\r\n", 1.0)
    assert analyzer.server_data(b"HTTP/1.0 200 OK\r\n\r\npart one ", 2.0) == []
    assert analyzer.server_data(b"part two", 2.0) == []
    (exchange,) = analyzer.server_eof(3.0)
    assert exchange.response_body.data() == b"part one part two"
    assert exchange.error is None


def test_connect_hands_over_to_a_tunnel() -> None:
    exchanges, stopped = run(
        b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n\x16\x03\x01garbage",
        b"HTTP/1.1 200 Connection established\r\n\r\n\x16\x03\x03more garbage",
    )
    assert [(e[0], e[6], e[10]) for e in exchanges] == [(b"CONNECT", 200, True)]
    assert stopped == "tunnel"


def test_refused_connect_goes_back_to_http() -> None:
    exchanges, _ = run(
        b"CONNECT example.com:443 HTTP/1.1\r\n\r\nGET /next HTTP/1.1\r\nHost: x\r\n\r\n",
        b"HTTP/1.1 403 Forbidden\r\nContent-Length: 2\r\n\r\nnoHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
    )
    assert [(e[0], e[6], e[10]) for e in exchanges] == [(b"CONNECT", 403, False), (b"GET", 200, False)]


def test_upgrade_hands_over_after_101() -> None:
    exchanges, stopped = run(
        b"GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n\x81\x05hello",
        b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n\x81\x02hi",
    )
    assert [(e[1], e[6], e[10]) for e in exchanges] == [(b"/ws", 101, True)]
    assert stopped == "upgraded"


def test_declined_upgrade_stays_http() -> None:
    exchanges, _ = run(
        b"GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\nGET /2 HTTP/1.1\r\nHost: x\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\naHTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nb",
    )
    assert [(e[1], e[7]) for e in exchanges] == [(b"/ws", b"a"), (b"/2", b"b")]


def test_garbage_stops_analysis_and_reports_open_exchanges() -> None:
    exchanges, stopped = run(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", b"SSH-2.0-OpenSSH_9.6\r\n\r\n")
    assert len(exchanges) == 1 and exchanges[0][6] is None
    assert "incomplete" in str(exchanges[0][11])
    assert stopped is not None and stopped.startswith("not HTTP/1.x")


def test_response_without_request_stops_analysis() -> None:
    exchanges, stopped = run(b"", b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
    assert exchanges == []
    assert stopped is not None and "without a request" in stopped


def test_cut_connection_marks_the_exchange_incomplete() -> None:
    exchanges, _ = run(
        b"POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n12345",
        b"",
    )
    assert len(exchanges) == 1
    assert exchanges[0][2] == b"12345" and "incomplete" in str(exchanges[0][11])


def test_early_response_completes_when_the_request_ends() -> None:
    analyzer = HttpAnalyzer()
    analyzer.client_data(b"POST /big HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nab", 1.0)
    assert analyzer.server_data(b"HTTP/1.1 413 Too Large\r\nContent-Length: 0\r\n\r\n", 2.0) == []
    (exchange,) = analyzer.client_data(b"cd", 3.0)
    assert exchange.response is not None and exchange.response.status == 413
    assert exchange.request_body.data() == b"abcd"


def test_bodies_past_the_limit_keep_head_and_tail() -> None:
    body = bytes(range(256)) * 40  # 10240 bytes
    client = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(body) + body
    server = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
    analyzer = HttpAnalyzer(max_body=1000)
    for start in range(0, len(client), 333):
        analyzer.client_data(client[start : start + 333], 1.0)
    (exchange,) = analyzer.server_data(server, 2.0)
    capture = exchange.request_body
    assert capture.size == len(body) and capture.truncated
    assert capture.data() == body[:500] + body[-500:]


@given(st.lists(st.binary(max_size=700), max_size=30), st.integers(0, 64))
@FUZZ
def test_body_capture_is_bounded_and_exact(pieces: list[bytes], limit: int) -> None:
    capture = BodyCapture(limit)
    for piece in pieces:
        capture.add(piece)
    whole = b"".join(pieces)
    assert capture.size == len(whole)
    if len(whole) <= limit:
        assert capture.data() == whole and not capture.truncated
    else:
        tail = limit // 2
        assert capture.data() == whole[: limit - tail] + (whole[-tail:] if tail else b"")
        assert capture.truncated


@given(
    st.lists(st.integers(0, 2000), max_size=12), st.lists(st.integers(0, 2000), max_size=12), st.booleans()
)
@FUZZ
def test_any_chunking_gives_the_same_exchanges(
    client_cuts: list[int], server_cuts: list[int], client_first: bool
) -> None:
    expected = run(PIPELINE_CLIENT, PIPELINE_SERVER)
    assert (
        run(PIPELINE_CLIENT, PIPELINE_SERVER, client_cuts, server_cuts, client_first=client_first) == expected
    )


def test_byte_by_byte_gives_the_same_exchanges() -> None:
    every = range(max(len(PIPELINE_CLIENT), len(PIPELINE_SERVER)))
    assert run(PIPELINE_CLIENT, PIPELINE_SERVER, every, every) == run(PIPELINE_CLIENT, PIPELINE_SERVER)


def _mutate(data: bytes, seed: int) -> bytes:
    rng = random.Random(seed)
    buf = bytearray(data)
    for _ in range(rng.randint(1, 8)):
        action = rng.randrange(3)
        at = rng.randrange(len(buf) + 1)
        if action == 0 and buf:
            del buf[at : at + rng.randint(1, 6)]
        elif action == 1:
            buf[at:at] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 6)))
        elif buf:
            buf[min(at, len(buf) - 1)] = rng.randrange(256)
    return bytes(buf)


@given(st.integers(0, 2**32), st.integers(0, 2**32), st.lists(st.integers(0, 2000), max_size=6))
@FUZZ
def test_mutated_input_never_raises(client_seed: int, server_seed: int, cuts: list[int]) -> None:
    client, server = _mutate(PIPELINE_CLIENT, client_seed), _mutate(PIPELINE_SERVER, server_seed)
    exchanges, stopped = run(client, server, cuts, cuts, client_first=bool(client_seed % 2))
    assert stopped is not None
    assert len(exchanges) <= 6


@given(st.binary(max_size=600), st.binary(max_size=600))
@FUZZ
def test_random_input_never_raises(client: bytes, server: bytes) -> None:
    run(client, server)
    try:
        run(client, server, range(0, 600, 7), range(0, 600, 5))
    except ProtocolError:  # pragma: no cover - the analyzer must absorb its own errors
        pytest.fail("ProtocolError escaped the analyzer")
