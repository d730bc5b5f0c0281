"""The ClientHello of real handshakes, however it is split; nothing but ProtocolError on anything else."""

from __future__ import annotations

import ssl
from collections.abc import Iterable
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lanner.wire.errors import ProtocolError
from lanner.wire.tls_hello import ClientHello, HelloReader, looks_like_tls, server_name

TLS_1_3, TLS_1_2 = 0x0304, 0x0303


def client_hello(host: str | None, alpn: list[str] | None = None) -> bytes:
    """The first flight of Python's own TLS client, as it would cross the wire."""
    context = ssl.create_default_context()
    if alpn is not None:
        context.set_alpn_protocols(alpn)
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = context.wrap_bio(incoming, outgoing, server_hostname=host)
    try:
        tls.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return outgoing.read()


def record(fragment: bytes, content_type: int = 0x16) -> bytes:
    return bytes([content_type, 0x03, 0x01]) + len(fragment).to_bytes(2, "big") + fragment


def reframe(hello: bytes, sizes: Iterable[int]) -> bytes:
    """The handshake message of a one-record hello, re-cut into records of the given sizes (cycled)."""
    assert len(hello) == 5 + int.from_bytes(hello[3:5], "big")  # Python sends it as a single record
    message, framed = hello[5:], b""
    sizes = list(sizes) or [len(message)]
    while message:
        for size in sizes:
            framed += record(message[:size])
            message = message[size:]
            if not message:
                break
    return framed


def handmade_hello(extensions: bytes | None, extensions_length: int | None = None) -> bytes:
    """A ClientHello with one cipher suite and the given extension block (None: no block at all)."""
    body = b"\x03\x03" + bytes(32) + b"\x00" + b"\x00\x02\x13\x01" + b"\x01\x00"
    if extensions is not None:
        length = len(extensions) if extensions_length is None else extensions_length
        body += length.to_bytes(2, "big") + extensions
    return record(b"\x01" + len(body).to_bytes(3, "big") + body)


def extension(kind: int, content: bytes) -> bytes:
    return kind.to_bytes(2, "big") + len(content).to_bytes(2, "big") + content


def read(chunks: Iterable[bytes], max_bytes: int = 64 * 1024) -> list[ClientHello | None]:
    """What next_event answers after each chunk."""
    reader = HelloReader(max_bytes=max_bytes)
    answers = []
    for chunk in chunks:
        reader.receive_data(chunk)
        answers.append(reader.next_event())
    return answers


def verdict(chunks: Iterable[bytes]) -> ClientHello | None | str:
    try:
        return read(chunks)[-1]
    except ProtocolError:
        return "ProtocolError"


def split(data: bytes, cuts: Iterable[int]) -> list[bytes]:
    """`data` in non-empty chunks, cut at the given offsets (modulo its length)."""
    points = sorted({0, len(data), *(cut % (len(data) + 1) for cut in cuts)})
    return [data[start:end] for start, end in zip(points, points[1:], strict=False)] or [b""]


HELLO = client_hello("api.Example.com", alpn=["h2", "http/1.1"])
EXPECTED = ClientHello("api.example.com", ("h2", "http/1.1"), (TLS_1_3, TLS_1_2), len(HELLO))

cut_points = st.lists(st.integers(min_value=0, max_value=10_000), max_size=40)
record_sizes = st.lists(st.integers(min_value=1, max_value=600), min_size=1, max_size=8)


# -- server_name, the one-shot probe --


def test_server_name_of_a_real_client_hello() -> None:
    assert server_name(client_hello("api.Example.com")) == "api.example.com"


def test_no_sni_for_ip_literals() -> None:
    context_host = "127.0.0.1"  # clients send no SNI for an address (RFC 6066 section 3)
    hello = client_hello(context_host)
    assert looks_like_tls(hello)
    assert server_name(hello) is None


def test_a_cut_hello_proves_nothing() -> None:
    hello = client_hello("example.com")
    for end in range(0, len(hello), 7):
        assert server_name(hello[:end]) is None  # the record is incomplete
    assert server_name(hello[:60]) is None


def test_plain_http_is_not_tls() -> None:
    assert not looks_like_tls(b"GET / HTTP/1.1\r\n")
    assert server_name(b"GET / HTTP/1.1\r\n") is None


@given(st.binary(max_size=400))
@settings(max_examples=300, deadline=None)
def test_random_bytes_never_raise(data: bytes) -> None:
    server_name(data)
    server_name(b"\x16\x03\x01" + data)


# -- HelloReader: real hellos --


def test_a_whole_hello() -> None:
    assert read([HELLO]) == [EXPECTED]


def test_a_hello_without_alpn_or_sni() -> None:
    hello = client_hello("127.0.0.1")
    assert read([hello]) == [ClientHello(None, (), (TLS_1_3, TLS_1_2), len(hello))]


def test_a_hello_with_no_extensions_at_all() -> None:
    hello = handmade_hello(None)  # legal up to TLS 1.2 (RFC 5246 section 7.4.1.2)
    assert read([hello]) == [ClientHello(None, (), (), len(hello))]


def test_byte_by_byte_answers_only_at_the_last_byte() -> None:
    answers = read(HELLO[i : i + 1] for i in range(len(HELLO)))
    assert answers == [None] * (len(HELLO) - 1) + [EXPECTED]


def test_eof_after_the_hello_changes_nothing() -> None:
    reader = HelloReader()
    reader.receive_data(HELLO)
    reader.receive_eof()
    assert reader.next_event() == EXPECTED
    assert reader.next_event() == EXPECTED


@given(cut_points)
@settings(max_examples=200, deadline=None)
def test_tcp_chunking_never_changes_the_hello(cuts: list[int]) -> None:
    answers = read(split(HELLO, cuts))
    assert answers[-1] == EXPECTED
    assert all(answer is None for answer in answers[:-1])


@given(record_sizes, cut_points)
@settings(max_examples=200, deadline=None)
def test_a_hello_fragmented_across_records(sizes: list[int], cuts: list[int]) -> None:
    framed = reframe(HELLO, sizes)
    expected = replace(EXPECTED, size=len(framed))
    assert read([framed]) == [expected]
    answers = read(split(framed, cuts))
    assert answers[-1] == expected
    assert all(answer is None for answer in answers[:-1])


def test_one_byte_records() -> None:
    framed = reframe(HELLO, [1])
    assert len(framed) == 6 * (len(HELLO) - 5)
    assert read([framed]) == [replace(EXPECTED, size=len(framed))]


def test_size_counts_only_the_records_of_the_hello() -> None:
    after = record(b"\x01", content_type=0x14) + record(b"early data", content_type=0x17)
    assert read([HELLO + after]) == [EXPECTED]


# -- HelloReader: what is not a ClientHello --


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"GET / HTTP/1.1\r\nHost: example.com\r\n\r\n", id="plain-http"),
        pytest.param(b"G", id="one-byte-of-http"),
        pytest.param(record(b"\x02\x28", content_type=0x15), id="alert"),
        pytest.param(record(b"hello", content_type=0x17), id="application-data"),
        pytest.param(b"\x16\x02\x00", id="record-version-2"),
        pytest.param(b"\x80\x2e\x01\x00\x02", id="sslv2-hello"),
        pytest.param(b"\x16\x03\x01\x48\x01", id="record-over-2^14+2048"),
        pytest.param(b"\x16\x03\x01\x00\x00", id="empty-handshake-record"),
        pytest.param(record(b"\x02\x00\x00\x00"), id="server-hello"),
        pytest.param(b"\x16\x03\x01\x40\x00\x02", id="wrong-type-in-a-cut-record"),
    ],
)
def test_not_a_client_hello(data: bytes) -> None:
    with pytest.raises(ProtocolError):
        read([data])
    with pytest.raises(ProtocolError):
        read(data[i : i + 1] for i in range(len(data)))


def test_the_largest_record_is_accepted() -> None:
    assert read([b"\x16\x03\x01\x48\x00\x01"]) == [None]  # 2^14 + 2048 bytes announced


def test_max_bytes_is_crossed_by_one_byte() -> None:
    message_size = len(HELLO) - 5
    assert read([HELLO], max_bytes=message_size) == [EXPECTED]
    with pytest.raises(ProtocolError, match="over the"):
        read([HELLO], max_bytes=message_size - 1)
    with pytest.raises(ProtocolError, match="over the"):
        read([HELLO[:9]], max_bytes=message_size - 1)  # the message header alone proves it


def test_a_non_handshake_record_inside_the_hello() -> None:
    framed = reframe(HELLO, [100])
    for content_type in (0x14, 0x15, 0x17):
        intruder = record(b"\x01", content_type=content_type)
        with pytest.raises(ProtocolError, match="interleaved"):
            read([framed[:105] + intruder + framed[105:]])


@pytest.mark.parametrize(
    "extensions",
    [
        pytest.param(extension(0, b"\x00\x05\x00\x00\x09ab"), id="sni-overrun"),
        pytest.param(extension(0x10, b"\x00\x03\x05h2"), id="alpn-overrun"),
        pytest.param(extension(0x2B, b"\x03\x03\x04\x03"), id="odd-versions"),
        pytest.param(extension(0x2B, b"\x02\x03\x04") * 2, id="repeated-extension"),
        pytest.param(b"\x00\x00\x00\x09", id="extension-overrun"),
    ],
)
def test_malformed_inside(extensions: bytes) -> None:
    with pytest.raises(ProtocolError, match="ClientHello|twice"):
        read([handmade_hello(extensions)])


def test_malformed_vector_lengths() -> None:
    with pytest.raises(ProtocolError, match="malformed"):
        read([handmade_hello(b"", extensions_length=4)])
    with pytest.raises(ProtocolError, match="malformed"):
        read([handmade_hello(b"\x00\x00\x00\x00", extensions_length=2)])  # bytes after the block


def test_handmade_extensions_are_read() -> None:
    extensions = extension(0x10, b"\x00\x03\x02h2") + extension(0x2B, b"\x02\x03\x04")
    hello = handmade_hello(extensions)
    assert read([hello]) == [ClientHello(None, ("h2",), (TLS_1_3,), len(hello))]


def test_eof_before_the_hello_is_complete() -> None:
    for end in (0, 3, 5, 9, len(HELLO) - 1):
        reader = HelloReader()
        reader.receive_data(HELLO[:end])
        assert reader.next_event() is None
        reader.receive_eof()
        with pytest.raises(ProtocolError, match="connection closed"):
            reader.next_event()


def test_a_verdict_stays() -> None:
    reader = HelloReader()
    reader.receive_data(handmade_hello(b"\x00\x00\x00\x09"))
    for _ in range(2):
        with pytest.raises(ProtocolError, match="malformed"):
            reader.next_event()


# -- the bytes go on untouched --


def test_take_buffered_returns_exactly_what_was_received() -> None:
    reader = HelloReader()
    trailing = record(b"\x01", content_type=0x14)
    for chunk in (HELLO[:100], HELLO[100:], trailing):
        reader.receive_data(chunk)
    assert reader.buffered == len(HELLO + trailing)
    assert reader.take_buffered() == HELLO + trailing
    assert reader.buffered == 0
    assert reader.take_buffered() == b""
    assert reader.next_event() == EXPECTED


@given(cut_points, st.sets(st.integers(min_value=0, max_value=40)))
@settings(max_examples=200, deadline=None)
def test_taking_midway_does_not_disturb_the_reader(cuts: list[int], take_after: set[int]) -> None:
    reader, taken, answer = HelloReader(), b"", None
    for index, chunk in enumerate(split(HELLO + b"trailing", cuts)):
        reader.receive_data(chunk)
        answer = reader.next_event() or answer
        if index in take_after:
            taken += reader.take_buffered()
    assert answer == EXPECTED
    assert taken + reader.take_buffered() == HELLO + b"trailing"


# -- fuzz: only ProtocolError escapes, and chunking never changes the verdict --


@given(st.binary(max_size=600), cut_points)
@settings(max_examples=200, deadline=None)
def test_arbitrary_bytes(data: bytes, cuts: list[int]) -> None:
    assert verdict([data]) == verdict(split(data, cuts)) in (None, "ProtocolError")


@given(st.binary(max_size=600), cut_points)
@settings(max_examples=200, deadline=None)
def test_arbitrary_bytes_after_a_handshake_header(data: bytes, cuts: list[int]) -> None:
    data = b"\x16\x03\x01" + data
    assert verdict([data]) == verdict(split(data, cuts))


@given(
    record_sizes,
    st.lists(st.tuples(st.integers(min_value=0), st.integers(0, 255)), min_size=1, max_size=6),
    cut_points,
    st.booleans(),
)
@settings(max_examples=200, deadline=None)
def test_mutated_hellos(
    sizes: list[int], mutations: list[tuple[int, int]], cuts: list[int], eof: bool
) -> None:
    data = bytearray(reframe(HELLO, sizes))
    for position, value in mutations:
        data[position % len(data)] = value
    answer = verdict([bytes(data)])
    assert answer is None or answer == "ProtocolError" or isinstance(answer, ClientHello)
    assert verdict(split(bytes(data), cuts)) == answer
    if eof:
        reader = HelloReader()
        reader.receive_data(bytes(data))
        reader.receive_eof()
        try:
            assert isinstance(reader.next_event(), ClientHello)
        except ProtocolError:
            pass
