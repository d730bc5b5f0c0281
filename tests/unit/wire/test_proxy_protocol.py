"""ProxyHeaderReader and the PROXY protocol encoders, driven with bytes only (no sockets)."""

from __future__ import annotations

import ipaddress
import struct
from collections.abc import Callable, Iterable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.unit.wire.chunking import bytewise, mutate, split_at, whole

from lanner.wire.errors import ProtocolError
from lanner.wire.proxy_protocol import (
    DEFAULT_MAX_V2,
    MAX_V1,
    V2_SIGNATURE,
    ProxyHeader,
    ProxyHeaderReader,
    encode_v1,
    encode_v2,
    starts_like_header,
)

FUZZ = settings(max_examples=200, deadline=None)

# -- a reader, scripted: the header it returned and every byte after it --

Outcome = tuple[ProxyHeader | str | None, bytes]


def read(chunks: Iterable[bytes], max_v2: int = DEFAULT_MAX_V2) -> Outcome:
    """Feed `chunks` until a header comes: (header, the bytes after it).

    ("error", b"") on ProtocolError; (None, b"") if the input ran out first.
    Chunks after the header go straight to the result, as a driver relays them.
    """
    reader = ProxyHeaderReader(max_v2)
    remaining = iter(chunks)
    try:
        for chunk in remaining:
            header = reader.receive_data(chunk)
            if header is not None:
                return header, reader.rest + b"".join(remaining)
    except ProtocolError:
        return "error", b""
    return None, b""


def raises_at(data: bytes) -> int:
    """How many bytes, fed one at a time, the reader takes before it raises."""
    reader = ProxyHeaderReader()
    for count in range(1, len(data) + 1):
        try:
            reader.receive_data(data[count - 1 : count])
        except ProtocolError:
            return count
    raise AssertionError("no ProtocolError")


def v2(version_command: int, family_transport: int, payload: bytes) -> bytes:
    return V2_SIGNATURE + struct.pack("!BBH", version_command, family_transport, len(payload)) + payload


def tlv(kind: int, value: bytes) -> bytes:
    return struct.pack("!BH", kind, len(value)) + value


IPV4_BLOCK = bytes((192, 0, 2, 1, 198, 51, 100, 2)) + struct.pack("!HH", 1234, 443)
IPV6_BLOCK = ipaddress.IPv6Address("2001:db8::1").packed + bytes(15) + b"\x01" + struct.pack("!HH", 5, 6)
IPV4_HEADER = ProxyHeader(2, False, ("192.0.2.1", 1234), ("198.51.100.2", 443))
IPV6_HEADER = ProxyHeader(2, False, ("2001:db8::1", 5), ("::1", 6))
IPV4_WITH_TLVS = ProxyHeader(
    2, False, IPV4_HEADER.source, IPV4_HEADER.destination, ((2, b"a.test"), (0xEE, bytes(300)))
)
LOCAL_V1 = ProxyHeader(1, True, None, None)
LOCAL_V2 = ProxyHeader(2, True, None, None)

# -- version 1: the spec's examples --

SPEC_EXAMPLE = (
    b"PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\nGET / HTTP/1.1\r\nHost: 192.168.0.11\r\n\r\n"
)
IPV6_MAX = "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"


def test_spec_example_line_before_an_http_request() -> None:
    header, rest = read(whole(SPEC_EXAMPLE))
    assert header == ProxyHeader(1, False, ("192.168.0.1", 56324), ("192.168.0.11", 443))
    assert rest == b"GET / HTTP/1.1\r\nHost: 192.168.0.11\r\n\r\n"


@pytest.mark.parametrize(
    ("line", "size", "header"),
    [
        (
            b"PROXY TCP4 255.255.255.255 255.255.255.255 65535 65535\r\n",
            56,
            ProxyHeader(1, False, ("255.255.255.255", 65535), ("255.255.255.255", 65535)),
        ),
        (
            f"PROXY TCP6 {IPV6_MAX} {IPV6_MAX} 65535 65535\r\n".encode(),
            104,
            ProxyHeader(1, False, (IPV6_MAX, 65535), (IPV6_MAX, 65535)),
        ),
        (b"PROXY UNKNOWN\r\n", 15, LOCAL_V1),
        (f"PROXY UNKNOWN {IPV6_MAX} {IPV6_MAX} 65535 65535\r\n".encode(), MAX_V1, LOCAL_V1),
    ],
)
def test_spec_longest_lines_parse(line: bytes, size: int, header: ProxyHeader) -> None:
    assert len(line) == size
    assert read(whole(line)) == (header, b"")
    assert read(bytewise(line)) == (header, b"")


@pytest.mark.parametrize(
    ("line", "header"),
    [
        (b"PROXY TCP4 0.0.0.0 10.0.0.1 0 1\r\n", ProxyHeader(1, False, ("0.0.0.0", 0), ("10.0.0.1", 1))),
        (b"PROXY TCP6 ::1 FE80::A 80 8080\r\n", ProxyHeader(1, False, ("::1", 80), ("fe80::a", 8080))),
        (b"PROXY TCP6 ::ffff:1.2.3.4 :: 1 2\r\n", ProxyHeader(1, False, ("::ffff:102:304", 1), ("::", 2))),
        (b"PROXY UNKNOWN 1.2.3.4 whatever \xff\x00\t\r\n", LOCAL_V1),
        (b"PROXY UNKNOWN \r\n", LOCAL_V1),
    ],
)
def test_v1_lines(line: bytes, header: ProxyHeader) -> None:
    assert read(whole(line)) == (header, b"")


@pytest.mark.parametrize(
    "line",
    [
        b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n",  # bare LF
        b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\rX\n",  # bare CR
        b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n\r\n",
        b"PROXY UNKNOWN\n",
        b"PROXY UNKNOWN\r\r\n",
        b"PROXY  TCP4 1.2.3.4 5.6.7.8 1 2\r\n",  # spacing
        b"PROXY TCP4  1.2.3.4 5.6.7.8 1 2\r\n",
        b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n",
        b"PROXY TCP4 1.2.3.4 5.6.7.8 1  2\r\n",
        b"PROXY\tTCP4 1.2.3.4 5.6.7.8 1 2\r\n",
        b"PROXY\r\n",
        b"PROXY \r\n",
        b"PROXY TCP4\r\n",  # fields
        b"PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n",
        b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n",
        b"PROXY UNKNOW\r\n",
        b"PROXY UNKNOWNX\r\n",
        b"PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n",  # protocol
        b"PROXY tcp4 1.2.3.4 5.6.7.8 1 2\r\n",
        b"PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n",
        b"proxy TCP4 1.2.3.4 5.6.7.8 1 2\r\n",
        b"PROXY TCP4 ::1 5.6.7.8 1 2\r\n",  # family
        b"PROXY TCP4 1.2.3.4 ::1 1 2\r\n",
        b"PROXY TCP6 1.2.3.4 ::1 1 2\r\n",
        b"PROXY TCP6 ::1 5.6.7.8 1 2\r\n",
        b"PROXY TCP4 01.2.3.4 5.6.7.8 1 2\r\n",  # addresses
        b"PROXY TCP4 256.2.3.4 5.6.7.8 1 2\r\n",
        b"PROXY TCP4 1.2.3 5.6.7.8 1 2\r\n",
        b"PROXY TCP4 1.2.3.4.5 5.6.7.8 1 2\r\n",
        b"PROXY TCP4 localhost 5.6.7.8 1 2\r\n",
        b"PROXY TCP6 fe80::1%eth0 ::1 1 2\r\n",
        b"PROXY TCP6 1:2:3:4:5:6:7:8:9 ::1 1 2\r\n",
        b"PROXY TCP6 ::g ::1 1 2\r\n",
        b"PROXY TCP4 1.2.3.4 5.6.7.8 +1 2\r\n",  # ports
        b"PROXY TCP4 1.2.3.4 5.6.7.8 -1 2\r\n",
        b"PROXY TCP4 1.2.3.4 5.6.7.8 1 65536\r\n",
        b"PROXY TCP4 1.2.3.4 5.6.7.8 080 2\r\n",
        b"PROXY TCP4 1.2.3.4 5.6.7.8 00 2\r\n",
        b"PROXY TCP4 1.2.3.4 5.6.7.8 123456 2\r\n",
        b"PROXY TCP4 1.2.3.4 5.6.7.8 1 0x10\r\n",
        b"PROXY TCP4 1.2.3.4 5.6.7.8 1 \xd9\xa3\r\n",  # a non-ASCII digit
        f"PROXY UNKNOWN {IPV6_MAX} {IPV6_MAX} 65535 655350\r\n".encode(),  # 108 bytes
    ],
)
def test_malformed_v1_lines_raise(line: bytes) -> None:
    assert read(whole(line)) == ("error", b"")
    assert read(bytewise(line)) == ("error", b"")


def test_v1_line_of_107_bytes_without_crlf_raises_at_byte_107() -> None:
    line = b"PROXY UNKNOWN " + b"x" * (MAX_V1 - 14)
    assert len(line) == MAX_V1
    reader = ProxyHeaderReader()
    assert reader.receive_data(line[:-1]) is None
    with pytest.raises(ProtocolError):
        reader.receive_data(line[-1:])


def test_v1_cr_as_byte_107_raises_at_once() -> None:
    line = b"PROXY UNKNOWN " + b"x" * (MAX_V1 - 15) + b"\r"
    assert raises_at(line + b"\n") == MAX_V1


@pytest.mark.parametrize(
    ("data", "count"),
    [
        (b"GET / HTTP/1.1\r\n", 1),
        (b"\x16\x03\x01\x02\x00", 1),
        (b"\x05\x01\x00", 1),
        (b"\x00PROXY", 1),
        (b"PUT / HTTP/1.1\r\n", 2),
        (b"PROXX TCP4", 5),
        (b"PROXY\r\n", 6),
        (b"PROXY TCP5 1.2.3.4", 10),
        (b"PROXY UNKNOWNX\r\n", 14),
        (b"PROXY TCP4 1.2.3.4 ::1 1 2\r\n", 20),
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n", 31),
        (b"\r\n\r\n\x00\r\nQUIX\n", 11),
    ],
)
def test_errors_come_as_soon_as_the_bytes_prove_them(data: bytes, count: int) -> None:
    assert raises_at(data) == count


# -- version 2 --


@pytest.mark.parametrize(
    ("wire", "header"),
    [
        (v2(0x21, 0x11, IPV4_BLOCK), IPV4_HEADER),
        (v2(0x21, 0x12, IPV4_BLOCK), IPV4_HEADER),  # UDP over IPv4
        (v2(0x21, 0x21, IPV6_BLOCK), IPV6_HEADER),
        (v2(0x21, 0x22, IPV6_BLOCK), IPV6_HEADER),  # UDP over IPv6
        (v2(0x20, 0x00, b""), LOCAL_V2),
        (v2(0x20, 0x11, IPV4_BLOCK), LOCAL_V2),  # LOCAL ignores the addresses
        (v2(0x20, 0x00, tlv(4, b"")), ProxyHeader(2, True, None, None, ((4, b""),))),
        (v2(0x21, 0x00, b""), ProxyHeader(2, False, None, None)),  # PROXY over UNSPEC
        (v2(0x21, 0x31, bytes(216)), ProxyHeader(2, False, None, None)),  # UNIX stream
        (v2(0x21, 0x32, bytes(216) + tlv(1, b"x")), ProxyHeader(2, False, None, None, ((1, b"x"),))),
        (v2(0x21, 0x10, IPV4_BLOCK), ProxyHeader(2, False, None, None)),  # IPv4, transport UNSPEC
        (v2(0x21, 0x11, IPV4_BLOCK + tlv(2, b"a.test") + tlv(0xEE, bytes(300))), IPV4_WITH_TLVS),
    ],
)
def test_v2_headers(wire: bytes, header: ProxyHeader) -> None:
    assert read(whole(wire)) == (header, b"")
    assert read(bytewise(wire)) == (header, b"")


@pytest.mark.parametrize(
    "wire",
    [
        v2(0x11, 0x11, IPV4_BLOCK),  # version 1 in the binary format
        v2(0x31, 0x11, IPV4_BLOCK),
        v2(0x01, 0x11, IPV4_BLOCK),
        v2(0x22, 0x11, IPV4_BLOCK),  # command
        v2(0x2F, 0x11, IPV4_BLOCK),
        v2(0x21, 0x41, IPV4_BLOCK),  # family
        v2(0x21, 0xF1, IPV4_BLOCK),
        v2(0x21, 0x13, IPV4_BLOCK),  # transport
        v2(0x21, 0x1F, IPV4_BLOCK),
        v2(0x21, 0x11, IPV4_BLOCK[:-1]),  # address block short
        v2(0x21, 0x21, IPV4_BLOCK),
        v2(0x21, 0x31, bytes(215)),
        v2(0x20, 0x11, b""),
        v2(0x21, 0x11, IPV4_BLOCK + b"\x01"),  # TLV short
        v2(0x21, 0x11, IPV4_BLOCK + b"\x01\x00"),
        v2(0x21, 0x11, IPV4_BLOCK + b"\x01\x00\x02x"),
        v2(0x20, 0x00, tlv(1, b"ok") + b"\x05\x00\x09"),
        v2(0x21, 0x11, IPV4_BLOCK + b"\x01\xff\xff"),
    ],
)
def test_malformed_v2_headers_raise(wire: bytes) -> None:
    assert read(whole(wire)) == ("error", b"")
    assert read(bytewise(wire)) == ("error", b"")


@pytest.mark.parametrize(
    ("fixed", "count"), [(b"\x11", 13), (b"\x23", 13), (b"\x21\x51", 14), (b"\x21\x14", 14)]
)
def test_v2_bad_fixed_bytes_raise_as_they_arrive(fixed: bytes, count: int) -> None:
    assert raises_at(V2_SIGNATURE + fixed + b"\x00\x0c" + IPV4_BLOCK) == count


def test_v2_length_over_the_bound_raises_once_16_bytes_arrive() -> None:
    wire = v2(0x21, 0x11, IPV4_BLOCK + tlv(0xE0, bytes(DEFAULT_MAX_V2)))
    assert raises_at(wire) == 16


def padded_to(total: int) -> bytes:
    """A TCP over IPv4 header of `total` bytes, padded with a NOOP TLV (spec 2.2.4)."""
    return v2(0x21, 0x11, IPV4_BLOCK + tlv(4, bytes(total - 16 - len(IPV4_BLOCK) - 3)))


@pytest.mark.parametrize("max_v2", [31, 100, DEFAULT_MAX_V2])
def test_v2_header_at_the_bound_is_accepted_one_byte_over_raises_at_16_bytes(max_v2: int) -> None:
    at_bound = padded_to(max_v2)
    assert len(at_bound) == max_v2
    assert read(whole(at_bound), max_v2)[0] == ProxyHeader(
        2, False, IPV4_HEADER.source, IPV4_HEADER.destination, ((4, bytes(max_v2 - 31)),)
    )
    reader = ProxyHeaderReader(max_v2)
    with pytest.raises(ProtocolError):
        reader.receive_data(padded_to(max_v2 + 1)[:16])


def test_max_v2_below_the_fixed_part_is_refused() -> None:
    with pytest.raises(ValueError):
        ProxyHeaderReader(15)


# -- what follows the header --


@pytest.mark.parametrize(
    "header_bytes",
    [
        b"PROXY UNKNOWN\r\n",
        b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n",
        v2(0x21, 0x11, IPV4_BLOCK),
        v2(0x20, 0, b""),
    ],
)
@pytest.mark.parametrize("after", [b"", b"\r\n", b"PROXY UNKNOWN\r\n", b"\x16\x03\x01\x00\x05hello"])
def test_rest_holds_the_bytes_after_the_header(header_bytes: bytes, after: bytes) -> None:
    reader = ProxyHeaderReader()
    assert reader.rest == b""
    assert reader.receive_data(header_bytes + after) is not None
    assert reader.rest == after


def test_rest_is_empty_until_the_header_completes() -> None:
    reader = ProxyHeaderReader()
    assert reader.receive_data(b"PROXY UNKNOWN") is None
    assert reader.rest == b""


def test_feeding_after_the_header_is_our_mistake() -> None:
    reader = ProxyHeaderReader()
    reader.receive_data(b"PROXY UNKNOWN\r\n")
    with pytest.raises(RuntimeError):
        reader.receive_data(b"more")


# -- encoders --


def test_encode_v1_bytes() -> None:
    assert encode_v1(("192.168.0.1", 56324), ("192.168.0.11", 443)) == SPEC_EXAMPLE[:47]
    assert encode_v1(("2001:DB8::1", 1), ("::1", 65535)) == b"PROXY TCP6 2001:db8::1 ::1 1 65535\r\n"


def test_encode_v2_bytes() -> None:
    assert (
        encode_v2(("192.0.2.1", 1234), ("198.51.100.2", 443))
        == V2_SIGNATURE + b"\x21\x11\x00\x0c" + IPV4_BLOCK
    )
    assert encode_v2(None, None) == V2_SIGNATURE + b"\x20\x00\x00\x00"
    assert encode_v2(None, None, [(1, b"h2")]) == V2_SIGNATURE + b"\x20\x00\x00\x05\x01\x00\x02h2"


@pytest.mark.parametrize(
    "encode",
    [
        lambda: encode_v1(("1.2.3.4", 1), ("::1", 2)),
        lambda: encode_v1(("::1", 1), ("1.2.3.4", 2)),
        lambda: encode_v1(("1.2.3.4", -1), ("5.6.7.8", 2)),
        lambda: encode_v1(("1.2.3.4", 1), ("5.6.7.8", 65536)),
        lambda: encode_v1(("example.com", 1), ("5.6.7.8", 2)),
        lambda: encode_v1(("fe80::1%eth0", 1), ("::1", 2)),
        lambda: encode_v2(("1.2.3.4", 1), ("::1", 2)),
        lambda: encode_v2(("1.2.3.4", 1), None),
        lambda: encode_v2(None, ("1.2.3.4", 1)),
        lambda: encode_v2(("1.2.3.4", 70000), ("5.6.7.8", 2)),
        lambda: encode_v2(None, None, [(256, b"")]),
        lambda: encode_v2(None, None, [(-1, b"")]),
        lambda: encode_v2(None, None, [(1, bytes(0x10000))]),
        lambda: encode_v2(None, None, [(1, bytes(0xFFFF)), (2, b"")]),
    ],
)
def test_encoders_refuse_what_cannot_be_sent(encode: Callable[[], bytes]) -> None:
    with pytest.raises(ValueError):
        encode()


# -- starts_like_header --


@pytest.mark.parametrize(
    "data", [b"GET /", b"\x16\x03\x01", b"\x05\x01", b"\x04\x01", b"PUT", b"PROXX", b"\r\n\r\nX", b"\r\r"]
)
def test_starts_like_header_false_for_other_protocols(data: bytes) -> None:
    assert not starts_like_header(data)


@pytest.mark.parametrize(
    "data", [b"", b"P", b"PROXY ", b"PROXY TCP9 anything", b"\r", V2_SIGNATURE, V2_SIGNATURE + b"\xff"]
)
def test_starts_like_header_true_while_it_could_be_one(data: bytes) -> None:
    assert starts_like_header(data)


# -- hypothesis: round trips --

tlv_lists = st.lists(st.tuples(st.integers(0, 255), st.binary(max_size=40)), max_size=5)
ports = st.integers(0, 65535)
Endpoints = tuple[tuple[str, int], tuple[str, int]]


def _pairs_of(
    addresses: st.SearchStrategy[ipaddress.IPv4Address | ipaddress.IPv6Address],
) -> st.SearchStrategy[Endpoints]:
    endpoint = st.tuples(addresses.map(str), ports)
    return st.tuples(endpoint, endpoint)


endpoint_pairs = st.one_of(_pairs_of(st.ip_addresses(v=4)), _pairs_of(st.ip_addresses(v=6)))


def v2_case(endpoints: Endpoints | None, tlvs: list[tuple[int, bytes]]) -> tuple[bytes, ProxyHeader]:
    """encode_v2's bytes for these endpoints (None: LOCAL) and the header they must parse to."""
    if endpoints is None:
        return encode_v2(None, None, tlvs), ProxyHeader(2, True, None, None, tuple(tlvs))
    source, destination = endpoints
    return encode_v2(source, destination, tlvs), ProxyHeader(2, False, source, destination, tuple(tlvs))


@FUZZ
@given(endpoints=endpoint_pairs)
def test_v1_round_trip(endpoints: Endpoints) -> None:
    source, destination = endpoints
    assert read(whole(encode_v1(source, destination))) == (ProxyHeader(1, False, source, destination), b"")


@FUZZ
@given(endpoints=st.one_of(st.none(), endpoint_pairs), tlvs=tlv_lists)
def test_v2_round_trip(endpoints: Endpoints | None, tlvs: list[tuple[int, bytes]]) -> None:
    wire, expected = v2_case(endpoints, tlvs)
    assert read(whole(wire)) == (expected, b"")


# -- hypothesis: every chunking gives the same result --


@st.composite
def valid_headers(draw: st.DrawFn) -> tuple[bytes, ProxyHeader]:
    kind = draw(st.sampled_from(["v1", "unknown", "v2"]))
    if kind == "unknown":
        junk = draw(st.binary(max_size=MAX_V1 - 16).filter(lambda raw: b"\r" not in raw and b"\n" not in raw))
        return b"PROXY UNKNOWN " + junk + b"\r\n", LOCAL_V1
    if kind == "v1":
        source, destination = draw(endpoint_pairs)
        return encode_v1(source, destination), ProxyHeader(1, False, source, destination)
    return v2_case(draw(st.one_of(st.none(), endpoint_pairs)), draw(tlv_lists))


@FUZZ
@given(header=valid_headers(), trailing=st.binary(max_size=16), data=st.data())
def test_chunking_never_changes_the_header(
    header: tuple[bytes, ProxyHeader], trailing: bytes, data: st.DataObject
) -> None:
    wire, expected = header
    stream = wire + trailing
    cuts = data.draw(st.lists(st.integers(0, len(stream)), max_size=8))
    assert read(whole(stream)) == (expected, trailing)
    assert read(bytewise(stream)) == (expected, trailing)
    assert read(split_at(stream, cuts)) == (expected, trailing)


@FUZZ
@given(header=valid_headers(), data=st.data())
def test_a_cut_short_header_waits_for_more(header: tuple[bytes, ProxyHeader], data: st.DataObject) -> None:
    wire, _ = header
    short = wire[: data.draw(st.integers(0, len(wire) - 1))]
    assert read(whole(short)) == (None, b"")
    assert starts_like_header(short)


@FUZZ
@given(header=valid_headers(), size=st.integers(0, 20))
def test_starts_like_header_on_prefixes_of_valid_headers(
    header: tuple[bytes, ProxyHeader], size: int
) -> None:
    assert starts_like_header(header[0][:size])


# -- hypothesis: hostile input --


@st.composite
def mutated_headers(draw: st.DrawFn) -> bytes:
    wire, _ = draw(valid_headers())
    return mutate(draw, wire)


hostile = st.one_of(
    st.binary(max_size=300),
    st.sampled_from([b"PROXY ", b"PROXY TCP4 ", b"PROXY TCP6 ", V2_SIGNATURE]).flatmap(
        lambda start: st.binary(max_size=300).map(start.__add__)
    ),
    mutated_headers(),
)


@FUZZ
@given(stream=hostile, max_v2=st.sampled_from([16, 40, DEFAULT_MAX_V2]), data=st.data())
def test_hostile_input_raises_only_protocol_error_the_same_way(
    stream: bytes, max_v2: int, data: st.DataObject
) -> None:
    cuts = data.draw(st.lists(st.integers(0, len(stream)), max_size=8))
    expected = read(whole(stream), max_v2)  # anything but ProtocolError escapes and fails here
    assert read(bytewise(stream), max_v2) == expected
    assert read(split_at(stream, cuts), max_v2) == expected
