"""WebSocket messages read from frames built by the `websockets` library, whatever the chunking."""

from __future__ import annotations

import dataclasses
import os
import tracemalloc

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from websockets.client import ClientProtocol
from websockets.extensions.permessage_deflate import (
    ClientPerMessageDeflateFactory,
    PerMessageDeflate,
    ServerPerMessageDeflateFactory,
)
from websockets.frames import Close, Frame
from websockets.frames import Opcode as LibOpcode
from websockets.server import ServerProtocol
from websockets.uri import parse_uri

from lanner.wire.websocket import (
    DEFAULT_MAX_MESSAGE,
    DeflateParams,
    Opcode,
    WsAnalyzer,
    WsMessage,
    negotiated_deflate,
)

MASK = b"\x37\xfa\x21\x3d"  # the masking key of the RFC 6455 section 5.7 examples


def frame(
    opcode: int, data: bytes, *, from_client: bool, fin: bool = True, deflate: PerMessageDeflate | None = None
) -> bytes:
    """A frame as the `websockets` library writes it (clients mask with a random key)."""
    extensions = [deflate] if deflate is not None else None
    return Frame(LibOpcode(opcode), data, fin).serialize(mask=from_client, extensions=extensions)


def sender_deflate(params: DeflateParams, from_client: bool) -> PerMessageDeflate:
    """The compressor of the peer that sends, bound by what the server accepted."""
    client = (params.client_no_context_takeover, params.client_max_window_bits)
    server = (params.server_no_context_takeover, params.server_max_window_bits)
    local, remote = (client, server) if from_client else (server, client)
    return PerMessageDeflate(remote[0], local[0], remote[1], local[1])


def feed(analyzer: WsAnalyzer, data: bytes, from_client: bool, now: float = 0.0) -> list[WsMessage]:
    return analyzer.client_data(data, now) if from_client else analyzer.server_data(data, now)


def untimed(messages: list[WsMessage]) -> list[WsMessage]:
    return [dataclasses.replace(message, time=0.0) for message in messages]


def message(
    from_client: bool,
    opcode: Opcode,
    data: bytes,
    *,
    size: int | None = None,
    compressed: bool = False,
    truncated: bool = False,
    time: float = 0.0,
    close_code: int | None = None,
    close_reason: str = "",
) -> WsMessage:
    size = len(data) if size is None else size
    return WsMessage(from_client, opcode, data, size, compressed, truncated, time, close_code, close_reason)


both_directions = pytest.mark.parametrize("from_client", [True, False], ids=["client", "server"])


@both_directions
def test_text_and_binary(from_client: bool) -> None:
    text, binary = "héllo wörld".encode(), bytes(range(256))
    stream = frame(1, text, from_client=from_client) + frame(2, binary, from_client=from_client)
    assert feed(WsAnalyzer(), stream, from_client, now=3.5) == [
        message(from_client, Opcode.TEXT, text, time=3.5),
        message(from_client, Opcode.BINARY, binary, time=3.5),
    ]


def test_rfc_6455_examples() -> None:
    # RFC 6455 section 5.7, byte for byte.
    hello = b"Hello"
    analyzer = WsAnalyzer()
    assert analyzer.client_data(b"\x81\x85" + MASK + b"\x7f\x9f\x4d\x51\x58", 1) == [
        message(True, Opcode.TEXT, hello, time=1)
    ]
    assert analyzer.server_data(b"\x81\x05Hello\x01\x03Hel\x80\x02lo\x89\x05Hello", 2) == [
        message(False, Opcode.TEXT, hello, time=2),
        message(False, Opcode.TEXT, hello, time=2),
        message(False, Opcode.PING, hello, time=2),
    ]
    assert analyzer.client_data(b"\x8a\x85" + MASK + b"\x7f\x9f\x4d\x51\x58", 3) == [
        message(True, Opcode.PONG, hello, time=3)
    ]
    payload = os.urandom(65536)
    assert analyzer.server_data(b"\x82\x7e\x01\x00" + payload[:256], 4) == [
        message(False, Opcode.BINARY, payload[:256], time=4)
    ]
    assert analyzer.server_data(b"\x82\x7f\x00\x00\x00\x00\x00\x01\x00\x00" + payload, 5) == [
        message(False, Opcode.BINARY, payload, time=5)
    ]
    assert analyzer.stopped is None


@both_directions
@pytest.mark.parametrize("size", [0, 125, 126, 65535, 65536, 200_000])
def test_7_16_and_64_bit_lengths(from_client: bool, size: int) -> None:
    payload = os.urandom(size)
    data = frame(2, payload, from_client=from_client)
    assert data[1] & 0x7F == (size if size < 126 else 126 if size < 65536 else 127)
    assert feed(WsAnalyzer(), data, from_client) == [message(from_client, Opcode.BINARY, payload)]


def test_the_time_is_that_of_the_chunk_that_completes_the_message() -> None:
    data = frame(1, b"split in two", from_client=True)
    analyzer = WsAnalyzer()
    assert analyzer.client_data(data[:5], 1.0) == []
    assert [m.time for m in analyzer.client_data(data[5:], 2.0)] == [2.0]


@both_directions
def test_fragments_are_reassembled_around_interleaved_control_frames(from_client: bool) -> None:
    parts = [
        frame(1, b"Hel", from_client=from_client, fin=False),
        frame(9, b"are you there", from_client=from_client),
        frame(0, b"lo ", from_client=from_client, fin=False),
        frame(10, b"", from_client=from_client),
        frame(0, b"world", from_client=from_client),
    ]
    analyzer = WsAnalyzer()
    received = [m for now, part in enumerate(parts) for m in feed(analyzer, part, from_client, now)]
    assert received == [
        message(from_client, Opcode.PING, b"are you there", time=1),
        message(from_client, Opcode.PONG, b"", time=3),
        message(from_client, Opcode.TEXT, b"Hello world", time=4),
    ]


@both_directions
def test_close_frames(from_client: bool) -> None:
    body = Close(1001, "going away, ünïcode").serialize()
    stream = frame(8, body, from_client=from_client) + frame(8, b"", from_client=from_client)
    assert feed(WsAnalyzer(), stream, from_client) == [
        message(from_client, Opcode.CLOSE, body, close_code=1001, close_reason="going away, ünïcode"),
        message(from_client, Opcode.CLOSE, b""),
    ]


def handshake(
    client_factory: ClientPerMessageDeflateFactory, server_factory: ServerPerMessageDeflateFactory
) -> tuple[ClientProtocol, ServerProtocol, str | None]:
    client = ClientProtocol(parse_uri("ws://example.com/chat"), extensions=[client_factory])
    server = ServerProtocol(extensions=[server_factory])
    client.send_request(client.connect())
    server.receive_data(b"".join(client.data_to_send()))
    response = server.accept(server.events_received()[0])  # type: ignore[arg-type]
    server.send_response(response)
    client.receive_data(b"".join(server.data_to_send()))
    return client, server, response.headers.get("Sec-WebSocket-Extensions")


@pytest.mark.parametrize("server_no_context_takeover", [False, True])
@pytest.mark.parametrize("client_no_context_takeover", [False, True])
def test_a_real_compressed_conversation(
    server_no_context_takeover: bool, client_no_context_takeover: bool
) -> None:
    client, server, header = handshake(
        ClientPerMessageDeflateFactory(client_max_window_bits=True),
        ServerPerMessageDeflateFactory(
            server_no_context_takeover=server_no_context_takeover,
            client_no_context_takeover=client_no_context_takeover,
            server_max_window_bits=12,
            client_max_window_bits=11,
        ),
    )
    analyzer = WsAnalyzer(negotiated_deflate(header))
    texts = [f"message {i}: the same words again and again".encode() for i in range(5)]
    received: list[WsMessage] = []
    for text in texts:
        client.send_text(text)
        received += analyzer.client_data(b"".join(client.data_to_send()), 1)
        server.send_binary(text * 3)
        received += analyzer.server_data(b"".join(server.data_to_send()), 2)
    assert analyzer.stopped is None
    assert [(m.from_client, m.opcode, m.data, m.compressed) for m in received] == [
        pair
        for text in texts
        for pair in ((True, Opcode.TEXT, text, True), (False, Opcode.BINARY, text * 3, True))
    ]
    assert all(m.size < len(m.data) for m in received)


@both_directions
@pytest.mark.parametrize("no_context_takeover", [False, True])
def test_compressed_messages_with_and_without_context_takeover(
    from_client: bool, no_context_takeover: bool
) -> None:
    params = DeflateParams(
        server_no_context_takeover=no_context_takeover and not from_client,
        client_no_context_takeover=no_context_takeover and from_client,
    )
    compressor = sender_deflate(params, from_client)
    text = b"a sentence long enough that a second copy is all back-references. " * 3
    frames = [frame(1, text, from_client=from_client, deflate=compressor) for _ in range(4)]
    assert (len(frames[1]) < len(frames[0])) is not no_context_takeover  # later copies refer to the first
    analyzer = WsAnalyzer(params)
    received = feed(analyzer, b"".join(frames), from_client)
    header = 2 + (4 if from_client else 0)
    assert received == [
        message(from_client, Opcode.TEXT, text, size=len(f) - header, compressed=True) for f in frames
    ]


def test_context_taken_over_cannot_be_read_without_it() -> None:
    compressor = sender_deflate(DeflateParams(), from_client=True)
    text = b"the same text twice, the same text twice, the same text twice"
    stream = b"".join(frame(1, text, from_client=True, deflate=compressor) for _ in range(2))
    analyzer = WsAnalyzer(DeflateParams(client_no_context_takeover=True))
    assert [m.data for m in analyzer.client_data(stream, 0)] == [text]
    assert analyzer.stopped is not None and analyzer.stopped.startswith("client: inflate failed")


def test_rfc_7692_examples() -> None:
    analyzer = WsAnalyzer(DeflateParams())
    hello = b"Hello"
    stream = [
        b"\xc1\x07\xf2\x48\xcd\xc9\xc9\x07\x00",  # section 7.2.3.1
        b"\x41\x03\xf2\x48\xcd\x80\x04\xc9\xc9\x07\x00",  # 7.2.3.1, fragmented
        b"\xc1\x0b\x00\x05\x00\xfa\xff\x48\x65\x6c\x6c\x6f\x00",  # 7.2.3.3, a stored block
        b"\xc1\x08\xf3\x48\xcd\xc9\xc9\x07\x00\x00",  # 7.2.3.4, BFINAL set
        b"\xc1\x07\xf2\x48\xcd\xc9\xc9\x07\x00",  # a fresh stream after BFINAL
        b"\xc1\x05\xf2\x00\x11\x00\x00",  # 7.2.3.2, the LZ77 window shared with the one before
    ]
    received = [m for part in stream for m in analyzer.server_data(part, 0)]
    assert [m.data for m in received] == [hello] * 6
    assert [m.size for m in received] == [7, 7, 11, 8, 7, 5]


@both_directions
@pytest.mark.parametrize("size", [99, 100, 101, 10_000])
def test_payloads_over_max_message_are_cut_but_counted(from_client: bool, size: int) -> None:
    payload = os.urandom(size)
    analyzer = WsAnalyzer(max_message=100)
    stream = frame(2, payload[:7], from_client=from_client, fin=False) + frame(
        0, payload[7:], from_client=from_client
    )
    ping = os.urandom(120)
    stream += frame(9, ping, from_client=from_client)
    assert feed(analyzer, stream, from_client) == [
        message(from_client, Opcode.BINARY, payload[:100], size=size, truncated=size > 100),
        message(from_client, Opcode.PING, ping[:100], size=120, truncated=True),
    ]


@both_directions
@pytest.mark.parametrize("no_context_takeover", [False, True])
def test_compressed_messages_over_max_message_are_cut(from_client: bool, no_context_takeover: bool) -> None:
    params = DeflateParams(
        server_no_context_takeover=no_context_takeover, client_no_context_takeover=no_context_takeover
    )
    compressor = sender_deflate(params, from_client)
    long, short = bytes(range(256)) * 40, b"short, and it refers back: " + bytes(range(256))
    frames = [
        frame(2, data, from_client=from_client, deflate=compressor) for data in (long, short, long[:100])
    ]
    received = feed(WsAnalyzer(params, max_message=100), b"".join(frames), from_client)
    assert [(m.data, m.truncated) for m in received] == [
        (long[:100], True),
        (short[:100], True),
        (long[:100], False),
    ]


@both_directions
@pytest.mark.parametrize("no_context_takeover", [False, True])
def test_a_deflate_bomb_stays_within_max_message(from_client: bool, no_context_takeover: bool) -> None:
    params = DeflateParams(
        server_no_context_takeover=no_context_takeover, client_no_context_takeover=no_context_takeover
    )
    compressor = sender_deflate(params, from_client)
    bomb = frame(2, bytes(64 << 20), from_client=from_client, deflate=compressor)
    after = frame(1, b"still in step", from_client=from_client, deflate=compressor)
    analyzer = WsAnalyzer(params, max_message=1 << 20)
    tracemalloc.start()
    try:
        received = feed(analyzer, bomb + after, from_client)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 << 20  # for 64 MiB inflated
    assert [(m.data, m.truncated) for m in received] == [(bytes(1 << 20), True), (b"still in step", False)]
    assert received[0].size < 100_000


def test_data_after_a_final_deflate_block_is_not_kept() -> None:
    # "Hello" in a block with BFINAL set (RFC 7692 section 7.2.3.4), then 16 MiB more in the same message.
    payload = b"\xf3\x48\xcd\xc9\xc9\x07\x00" + os.urandom(16 << 20)
    stream = b"\xc2\x7f" + len(payload).to_bytes(8, "big") + payload + b"\xc1\x07\xf2\x48\xcd\xc9\xc9\x07\x00"
    analyzer = WsAnalyzer(DeflateParams())
    tracemalloc.start()
    try:
        received = [
            m
            for i in range(0, len(stream), 1 << 20)
            for m in analyzer.server_data(stream[i : i + (1 << 20)], 0)
        ]
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 4 << 20
    assert [(m.data, m.size) for m in received] == [(b"Hello", len(payload)), (b"Hello", 7)]


@both_directions
def test_a_large_incompressible_message_in_one_chunk(from_client: bool) -> None:
    compressor = sender_deflate(DeflateParams(), from_client)
    payload = os.urandom(8 << 20)
    stream = frame(2, payload, from_client=from_client, deflate=compressor)
    stream += frame(2, payload[:1000], from_client=from_client, deflate=compressor)
    received = feed(WsAnalyzer(DeflateParams(), max_message=64 << 10), stream, from_client)
    assert [(m.data, m.truncated) for m in received] == [(payload[: 64 << 10], True), (payload[:1000], False)]


def test_a_large_masked_frame_is_unmasked_only_as_far_as_kept() -> None:
    stream = frame(2, os.urandom(16 << 20), from_client=True)
    analyzer = WsAnalyzer(max_message=64 << 10)
    tracemalloc.start()
    try:
        received = analyzer.client_data(stream, 0)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20
    assert [(len(m.data), m.size, m.truncated) for m in received] == [(64 << 10, 16 << 20, True)]


def conversation(from_client: bool) -> bytes:
    """One direction of a busy connection: every kind of frame, compressed with context takeover."""
    compressor = sender_deflate(DeflateParams(), from_client)

    def make(
        opcode: int, data: bytes, fin: bool = True, deflate: PerMessageDeflate | None = compressor
    ) -> bytes:
        return frame(opcode, data, from_client=from_client, fin=fin, deflate=deflate)

    text = b"words repeated, words repeated, " * 50
    return b"".join(
        [
            make(1, text),
            make(2, os.urandom(70_000), deflate=None),
            make(1, text[:500], fin=False),
            make(9, b"ping"),
            make(0, text[500:]),
            make(2, bytes(300_000)),
            make(1, text),
            make(2, b"", deflate=None),
            make(8, Close(1000, "done").serialize()),
        ]
    )


STREAMS = {True: conversation(True), False: conversation(False)}
WHOLE = {
    (from_client, max_message): untimed(
        feed(WsAnalyzer(DeflateParams(), max_message), STREAMS[from_client], from_client)
    )
    for from_client in (True, False)
    for max_message in (1000, DEFAULT_MAX_MESSAGE)
}


def test_the_conversation_reads_whole() -> None:
    for (_, max_message), received in WHOLE.items():
        assert len(received) == 8
        assert {m.truncated for m in received} == ({True, False} if max_message == 1000 else {False})
        assert received[-1].close_code == 1000


@given(
    from_client=st.booleans(),
    max_message=st.sampled_from([1000, DEFAULT_MAX_MESSAGE]),
    cuts=st.lists(st.integers(min_value=0, max_value=len(STREAMS[False])), max_size=40),
)
@settings(max_examples=200, deadline=None)
def test_random_chunking_gives_the_same_messages(
    from_client: bool, max_message: int, cuts: list[int]
) -> None:
    stream = STREAMS[from_client]
    bounds = [0, *sorted(cuts), len(stream)]
    analyzer = WsAnalyzer(DeflateParams(), max_message)
    received = [
        m
        for start, end in zip(bounds, bounds[1:], strict=False)
        for m in feed(analyzer, stream[start:end], from_client)
    ]
    assert analyzer.stopped is None
    assert untimed(received) == WHOLE[from_client, max_message]


@both_directions
def test_byte_by_byte_gives_the_same_messages(from_client: bool) -> None:
    stream = STREAMS[from_client]
    analyzer = WsAnalyzer(DeflateParams(), 1000)
    received = [m for i in range(len(stream)) for m in feed(analyzer, stream[i : i + 1], from_client)]
    assert untimed(received) == WHOLE[from_client, 1000]


def masked(header: bytes, payload: bytes = b"") -> bytes:
    """A client frame header with the mask bit set, MASK and the payload masked with it."""
    key = (MASK * (len(payload) // 4 + 1))[: len(payload)]
    return (
        bytes([header[0], header[1] | 0x80])
        + header[2:]
        + MASK
        + bytes(p ^ k for p, k in zip(payload, key, strict=True))
    )


FAULTS = [  # (from_client, bytes, reason)
    (True, masked(b"\x83\x00"), "reserved opcode 3"),
    (False, b"\x8b\x00", "reserved opcode 11"),
    (True, b"\x81\x01a", "client frame not masked"),
    (False, masked(b"\x81\x01", b"a"), "server frame masked"),
    (False, b"\x09\x00", "fragmented control frame"),
    (True, masked(b"\x89\x7e\x00\x7e", bytes(126)), "control frame of 126 bytes"),
    (False, b"\x80\x01a", "continuation frame without a message"),
    (False, b"\x01\x01a\x81\x01b", "new data frame inside a fragmented message"),
    (
        True,
        masked(b"\x02\x01", b"a") + masked(b"\x02\x01", b"b"),
        "new data frame inside a fragmented message",
    ),
    (False, b"\xc1\x01a", "RSV1 set, permessage-deflate not negotiated"),
    (False, b"\xa1\x00", "RSV2 or RSV3"),
    (True, masked(b"\x91\x00"), "RSV2 or RSV3"),
    (False, b"\x82\x7f\x80" + bytes(7), "64-bit payload length with the high bit set"),
    (False, b"\x88\x01\x03", "close frame body of 1 byte"),
]
DEFLATE_FAULTS = [  # (from_client, bytes, reason)
    (False, b"\xc1\x01\xff", "inflate failed"),
    (True, masked(b"\xc1\x02", b"\x00\x00"), "inflate failed"),
    (False, b"\xc9\x00", "RSV1 set on a control frame"),
    (False, b"\x41\x01\xf2\xc0\x01\x00", "RSV1 set on a continuation frame"),
]


@pytest.mark.parametrize(
    ("from_client", "fault", "reason", "deflate"),
    [(*f, None) for f in FAULTS] + [(*f, DeflateParams()) for f in DEFLATE_FAULTS],
)
def test_a_protocol_fault_stops_the_analysis(
    from_client: bool, fault: bytes, reason: str, deflate: DeflateParams | None
) -> None:
    analyzer = WsAnalyzer(deflate)
    before = frame(1, b"before", from_client=from_client)
    after = frame(1, b"after", from_client=from_client)
    assert [m.data for m in feed(analyzer, before + fault + after, from_client)] == [b"before"]
    assert analyzer.stopped is not None
    assert analyzer.stopped.startswith(f"{'client' if from_client else 'server'}: {reason}")
    assert analyzer.client_data(frame(1, b"later", from_client=True), 1) == []
    assert analyzer.server_data(frame(1, b"later", from_client=False), 1) == []


def test_negative_max_message_is_refused() -> None:
    with pytest.raises(ValueError):
        WsAnalyzer(max_message=-1)


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (
            "permessage-deflate; client_max_window_bits=15; server_no_context_takeover",
            DeflateParams(server_no_context_takeover=True),
        ),
        (None, None),
        ("", None),
        ("x-webkit-deflate-frame", None),
        ("permessage-foo; server_no_context_takeover", None),
        (b"permessage-deflate", DeflateParams()),
        (
            "x-custom, permessage-deflate; server_max_window_bits=10; client_no_context_takeover;",
            DeflateParams(client_no_context_takeover=True, server_max_window_bits=10),
        ),
        ('permessage-deflate; client_max_window_bits="9"', DeflateParams(client_max_window_bits=9)),
        (
            "Permessage-Deflate ; Client_No_Context_Takeover ; client_max_window_bits",
            DeflateParams(client_no_context_takeover=True),
        ),
        ("permessage-deflate; server_max_window_bits=16", None),
        ("permessage-deflate; server_max_window_bits=7", None),
        ("permessage-deflate; client_max_window_bits=abc", None),
        ("permessage-deflate; server_no_context_takeover; server_no_context_takeover", None),
        ("permessage-deflate; unknown_param=1", None),
    ],
)
def test_negotiated_deflate(header: str | bytes | None, expected: DeflateParams | None) -> None:
    assert negotiated_deflate(header) == expected


def test_negotiated_deflate_reads_what_websockets_sends() -> None:
    *_, header = handshake(
        ClientPerMessageDeflateFactory(client_max_window_bits=True),
        ServerPerMessageDeflateFactory(server_no_context_takeover=True, client_max_window_bits=10),
    )
    assert negotiated_deflate(header) == DeflateParams(
        server_no_context_takeover=True, client_max_window_bits=10
    )


@given(
    data=st.binary(max_size=600),
    cut=st.integers(min_value=0, max_value=600),
    deflate=st.sampled_from([None, DeflateParams(), DeflateParams(True, True, 9, 9)]),
    max_message=st.sampled_from([0, 10, DEFAULT_MAX_MESSAGE]),
)
@settings(max_examples=200, deadline=None)
def test_random_bytes_never_raise(
    data: bytes, cut: int, deflate: DeflateParams | None, max_message: int
) -> None:
    analyzer = WsAnalyzer(deflate, max_message)
    for part in (data[:cut], data[cut:]):
        for m in analyzer.client_data(part, 0) + analyzer.server_data(part, 0):
            assert len(m.data) <= max_message


raw_frames = st.lists(
    st.tuples(
        st.integers(min_value=0, max_value=255),  # FIN, RSV bits, opcode
        st.booleans(),  # masked
        st.sampled_from([0, 126, 127]),  # length encoding
        st.binary(max_size=200),
    ),
    max_size=8,
)


def raw_frame(first: int, mask: bool, form: int, payload: bytes) -> bytes:
    size = len(payload)
    if form == 0 and size < 126:
        length = bytes([size])
    elif form == 127:
        length = b"\x7f" + size.to_bytes(8, "big")
    else:
        length = b"\x7e" + size.to_bytes(2, "big")
    if mask:
        return masked(bytes([first]) + length, payload)
    return bytes([first]) + length + payload


@given(
    frames=raw_frames, deflate=st.sampled_from([None, DeflateParams()]), cuts=st.lists(st.integers(0, 2000))
)
@settings(max_examples=200, deadline=None)
def test_random_frames_give_the_same_result_whatever_the_chunking(
    frames: list[tuple[int, bool, int, bytes]], deflate: DeflateParams | None, cuts: list[int]
) -> None:
    stream = b"".join(raw_frame(*f) for f in frames)
    bounds = [0, *sorted(c for c in cuts if c < len(stream)), len(stream)]
    for from_client in (True, False):
        whole, split = WsAnalyzer(deflate, 50), WsAnalyzer(deflate, 50)
        expected = untimed(feed(whole, stream, from_client))
        received = [
            m for a, b in zip(bounds, bounds[1:], strict=False) for m in feed(split, stream[a:b], from_client)
        ]
        assert (untimed(received), split.stopped) == (expected, whole.stopped)


@given(
    frames=raw_frames,
    deflate=st.sampled_from([None, DeflateParams()]),
    max_message=st.sampled_from([5, 1000]),
)
@settings(max_examples=200, deadline=None)
def test_random_frames_never_raise(
    frames: list[tuple[int, bool, int, bytes]], deflate: DeflateParams | None, max_message: int
) -> None:
    stream = b"".join(raw_frame(*f) for f in frames)
    for from_client in (True, False):
        analyzer = WsAnalyzer(deflate, max_message)
        for m in feed(analyzer, stream, from_client):
            assert len(m.data) <= max_message
            if not m.compressed:
                assert (m.data, m.truncated) == (m.data[:max_message], m.size > max_message)
                assert len(m.data) == min(m.size, max_message)
