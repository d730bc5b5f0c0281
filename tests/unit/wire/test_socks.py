"""SocksServer and the SOCKS5 UDP header helpers, driven with bytes only (no sockets)."""

from __future__ import annotations

import ipaddress
import struct
from collections.abc import Callable, Iterable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.unit.wire.chunking import bytewise, mutate, split_at, whole

from lanner.wire.errors import ProtocolError
from lanner.wire.socks import (
    CMD_BIND,
    CMD_CONNECT,
    CMD_UDP_ASSOCIATE,
    DEFAULT_MAX_FIELD,
    METHOD_NO_AUTH,
    METHOD_NONE_ACCEPTABLE,
    METHOD_USER_PASS,
    NEED_DATA,
    CredentialsReceived,
    GreetingReceived,
    Socks4Requested,
    Socks5Requested,
    SocksServer,
    UdpDatagram,
    build_udp_datagram,
    parse_udp_datagram,
    socks4_reply,
    socks5_reply,
)

FUZZ = settings(max_examples=200, deadline=None)

# -- a permissive server, scripted: what it saw, what it answered --

Outcome = tuple[list[object], bytes]


def converse(chunks: Iterable[bytes], max_field: int = DEFAULT_MAX_FIELD) -> Outcome:
    """Feed `chunks` in order; return the events and replies in order, then the trailing bytes.

    The server answers every greeting (user/password when offered, else no auth)
    and accepts every credential. A ProtocolError ends the list as
    ("error", reply_hint) and leaves no trailing bytes.
    """
    server = SocksServer(max_field)
    seen: list[object] = []
    try:
        for chunk in chunks:
            server.receive_data(chunk)
            _drain(server, seen)
    except ProtocolError as exc:
        seen.append(("error", exc.reply_hint))
        return seen, b""
    return seen, server.trailing_data()


def _drain(server: SocksServer, seen: list[object]) -> None:
    for _ in range(8):  # a handshake has at most three client messages
        event = server.next_event()
        if event is NEED_DATA:
            return
        seen.append(event)
        if isinstance(event, GreetingReceived):
            offered = METHOD_USER_PASS in event.methods
            seen.append(server.choose_method(METHOD_USER_PASS if offered else METHOD_NO_AUTH))
        elif isinstance(event, CredentialsReceived):
            seen.append(server.auth_result(True))
    raise AssertionError("SocksServer kept returning events")


def port_bytes(port: int) -> bytes:
    return struct.pack("!H", port)


def socks4_request(command: int, port: int, ip: bytes, userid: bytes, name: bytes | None = None) -> bytes:
    tail = b"" if name is None else name + b"\0"
    return bytes((4, command)) + port_bytes(port) + ip + userid + b"\0" + tail


GREETING_NO_AUTH = b"\x05\x01\x00"


def socks5_request(command: int, address: bytes, port: int) -> bytes:
    return bytes((5, command, 0)) + address + port_bytes(port)


def domain(name: bytes) -> bytes:
    return bytes((3, len(name))) + name


# -- SOCKS4 / 4a --


def test_socks4_request_with_ip_and_userid() -> None:
    wire = socks4_request(CMD_CONNECT, 80, bytes((192, 0, 2, 7)), b"alice")
    assert converse(whole(wire)) == ([Socks4Requested(CMD_CONNECT, "192.0.2.7", 80, "alice")], b"")


def test_socks4_request_with_empty_userid() -> None:
    wire = socks4_request(CMD_BIND, 1080, bytes((10, 0, 0, 1)), b"")
    assert converse(whole(wire)) == ([Socks4Requested(CMD_BIND, "10.0.0.1", 1080, "")], b"")


def test_socks4a_request_carries_a_domain() -> None:
    wire = socks4_request(CMD_CONNECT, 443, b"\0\0\0\x01", b"bob", b"example.com")
    assert converse(whole(wire)) == ([Socks4Requested(CMD_CONNECT, "example.com", 443, "bob")], b"")


def test_socks4_ip_zero_is_an_address_not_socks4a() -> None:
    wire = socks4_request(CMD_CONNECT, 1, b"\0\0\0\0", b"u")
    assert converse(whole(wire)) == ([Socks4Requested(CMD_CONNECT, "0.0.0.0", 1, "u")], b"")


def test_socks4_sets_version() -> None:
    server = SocksServer()
    server.receive_data(socks4_request(CMD_CONNECT, 80, bytes((127, 0, 0, 1)), b""))
    assert isinstance(server.next_event(), Socks4Requested)
    assert server.version == 4


def test_socks4_waits_for_the_userid_terminator() -> None:
    server = SocksServer()
    server.receive_data(bytes((4, 1)) + port_bytes(80) + bytes((1, 2, 3, 4)) + b"partial")
    assert server.next_event() is NEED_DATA
    server.receive_data(b"\0")
    assert server.next_event() == Socks4Requested(CMD_CONNECT, "1.2.3.4", 80, "partial")


def test_socks4_userid_at_the_limit_is_accepted() -> None:
    userid = b"u" * DEFAULT_MAX_FIELD
    wire = socks4_request(CMD_CONNECT, 80, bytes((1, 2, 3, 4)), userid)
    assert converse(whole(wire))[0] == [Socks4Requested(CMD_CONNECT, "1.2.3.4", 80, userid.decode())]


@pytest.mark.parametrize("feed", [whole, bytewise])
def test_socks4_userid_over_the_limit_raises(feed: Callable[[bytes], list[bytes]]) -> None:
    wire = socks4_request(CMD_CONNECT, 80, bytes((1, 2, 3, 4)), b"u" * (DEFAULT_MAX_FIELD + 1))
    assert converse(feed(wire))[0] == [("error", 91)]


def test_socks4_userid_over_the_limit_raises_before_the_terminator() -> None:
    server = SocksServer(max_field=8)
    server.receive_data(bytes((4, 1)) + port_bytes(80) + bytes((1, 2, 3, 4)) + b"u" * 8)
    assert server.next_event() is NEED_DATA
    server.receive_data(b"u")
    with pytest.raises(ProtocolError) as caught:
        server.next_event()
    assert caught.value.reply_hint == 91


def test_socks4a_domain_over_the_limit_raises() -> None:
    wire = socks4_request(CMD_CONNECT, 80, b"\0\0\0\x09", b"", b"d" * 9)
    assert converse(whole(wire), max_field=8)[0] == [("error", 91)]
    assert converse(whole(wire), max_field=9)[0] == [Socks4Requested(CMD_CONNECT, "d" * 9, 80, "")]


def test_socks4a_empty_domain_raises() -> None:
    wire = socks4_request(CMD_CONNECT, 80, b"\0\0\0\x01", b"", b"")
    assert converse(whole(wire))[0] == [("error", 91)]


def test_socks4_userid_not_utf8_raises() -> None:
    wire = socks4_request(CMD_CONNECT, 80, bytes((1, 2, 3, 4)), b"\xff\xfe")
    assert converse(whole(wire))[0] == [("error", 91)]


def test_socks4_trailing_data_is_what_followed_the_request() -> None:
    wire = socks4_request(CMD_CONNECT, 80, b"\0\0\0\x01", b"", b"example.com")
    events, trailing = converse(whole(wire + b"GET / HTTP/1.1\r\n"))
    assert events == [Socks4Requested(CMD_CONNECT, "example.com", 80, "")]
    assert trailing == b"GET / HTTP/1.1\r\n"


def test_socks4_reply_bytes() -> None:
    assert socks4_reply(90) == b"\x00\x5a\x00\x00\x00\x00\x00\x00"
    assert socks4_reply(91, 1080, "10.1.2.3") == b"\x00\x5b\x04\x38\x0a\x01\x02\x03"


# -- SOCKS5 --


def test_socks5_greeting_lists_methods() -> None:
    server = SocksServer()
    server.receive_data(b"\x05\x03\x00\x02\x80")
    assert server.next_event() == GreetingReceived(frozenset({0x00, 0x02, 0x80}))
    assert server.version == 5
    assert server.next_event() is NEED_DATA  # nothing parses until the method is chosen


@pytest.mark.parametrize(
    ("method", "reply"),
    [(METHOD_NO_AUTH, b"\x05\x00"), (METHOD_USER_PASS, b"\x05\x02"), (METHOD_NONE_ACCEPTABLE, b"\x05\xff")],
)
def test_socks5_method_choice_bytes(method: int, reply: bytes) -> None:
    server = SocksServer()
    server.receive_data(b"\x05\x01" + bytes((method,)))
    assert isinstance(server.next_event(), GreetingReceived)
    assert server.choose_method(method) == reply


def test_socks5_no_acceptable_method_ends_the_handshake() -> None:
    server = SocksServer()
    server.receive_data(b"\x05\x01\x80")
    server.next_event()
    server.choose_method(METHOD_NONE_ACCEPTABLE)
    server.receive_data(socks5_request(CMD_CONNECT, b"\x01\x01\x02\x03\x04", 80))
    assert server.next_event() is NEED_DATA


def test_choose_method_without_a_greeting_is_our_mistake() -> None:
    with pytest.raises(RuntimeError):
        SocksServer().choose_method(METHOD_NO_AUTH)


def test_auth_result_without_credentials_is_our_mistake() -> None:
    with pytest.raises(RuntimeError):
        SocksServer().auth_result(True)


def test_socks5_greeting_without_methods_raises() -> None:
    assert converse(whole(b"\x05\x00"))[0] == [("error", None)]


def test_socks5_rfc1929_credentials_and_result_bytes() -> None:
    server = SocksServer()
    server.receive_data(b"\x05\x01\x02")
    server.next_event()
    assert server.choose_method(METHOD_USER_PASS) == b"\x05\x02"
    server.receive_data(b"\x01\x05alice\x06s3cr3t")
    assert server.next_event() == CredentialsReceived("alice", "s3cr3t")
    assert server.auth_result(True) == b"\x01\x00"
    server.receive_data(socks5_request(CMD_CONNECT, b"\x01\x7f\x00\x00\x01", 22))
    assert server.next_event() == Socks5Requested(CMD_CONNECT, "127.0.0.1", 22)


def test_socks5_rfc1929_rejection_bytes_end_the_handshake() -> None:
    server = SocksServer()
    server.receive_data(b"\x05\x01\x02")
    server.next_event()
    server.choose_method(METHOD_USER_PASS)
    server.receive_data(b"\x01\x01u\x01p")
    assert server.next_event() == CredentialsReceived("u", "p")
    assert server.auth_result(False) == b"\x01\x01"
    server.receive_data(socks5_request(CMD_CONNECT, b"\x01\x7f\x00\x00\x01", 22))
    assert server.next_event() is NEED_DATA


def test_socks5_rfc1929_empty_fields() -> None:
    wire = b"\x05\x01\x02" + b"\x01\x00\x00"
    assert converse(whole(wire))[0][2] == CredentialsReceived("", "")


def test_socks5_rfc1929_bad_version_raises() -> None:
    wire = b"\x05\x01\x02" + b"\x05\x01u\x01p"
    assert converse(whole(wire))[0][-1] == ("error", None)


@pytest.mark.parametrize(
    ("address", "host"),
    [
        (b"\x01\xc0\x00\x02\x01", "192.0.2.1"),
        (b"\x04" + ipaddress.IPv6Address("2001:db8::1").packed, "2001:db8::1"),
        (b"\x04" + bytes(15) + b"\x01", "::1"),
        (domain(b"example.com"), "example.com"),
        (domain("bücher.example".encode()), "bücher.example"),
    ],
)
def test_socks5_connect_addresses(address: bytes, host: str) -> None:
    wire = GREETING_NO_AUTH + socks5_request(CMD_CONNECT, address, 8080)
    events, trailing = converse(whole(wire))
    assert events == [GreetingReceived(frozenset({0})), b"\x05\x00", Socks5Requested(CMD_CONNECT, host, 8080)]
    assert trailing == b""


@pytest.mark.parametrize("command", [CMD_BIND, CMD_UDP_ASSOCIATE, 0x7F])
def test_socks5_other_commands_come_through_as_events(command: int) -> None:
    wire = GREETING_NO_AUTH + socks5_request(command, b"\x01\x00\x00\x00\x00", 0)
    assert converse(whole(wire))[0][-1] == Socks5Requested(command, "0.0.0.0", 0)


@pytest.mark.parametrize("atyp", [0x00, 0x02, 0x05, 0xFF])
def test_socks5_unknown_address_type_raises_with_hint_08(atyp: int) -> None:
    wire = GREETING_NO_AUTH + bytes((5, CMD_CONNECT, 0, atyp)) + b"\x00" * 8
    assert converse(whole(wire))[0][-1] == ("error", 0x08)


@pytest.mark.parametrize(
    ("address", "hint"),
    [(domain(b""), 0x08), (domain(b"\xff\xfe"), 0x08)],
)
def test_socks5_bad_domain_raises(address: bytes, hint: int) -> None:
    wire = GREETING_NO_AUTH + socks5_request(CMD_CONNECT, address, 80)
    assert converse(whole(wire))[0][-1] == ("error", hint)


def test_socks5_request_bad_version_raises() -> None:
    wire = GREETING_NO_AUTH + socks5_request(CMD_CONNECT, b"\x01\x01\x02\x03\x04", 80)
    wire = wire[:3] + b"\x04" + wire[4:]
    assert converse(whole(wire))[0][-1] == ("error", None)


@pytest.mark.parametrize("first", [0x00, 0x03, 0x06, 0x16, 0x47, 0xFF])
def test_first_byte_not_socks_raises(first: int) -> None:
    with pytest.raises(ProtocolError):
        server = SocksServer()
        server.receive_data(bytes((first,)) + b"\x01\x00\x50")
        server.next_event()


def test_empty_input_needs_data() -> None:
    server = SocksServer()
    assert server.next_event() is NEED_DATA
    assert server.version is None


def test_socks5_trailing_data_is_what_followed_the_request() -> None:
    wire = GREETING_NO_AUTH + socks5_request(CMD_CONNECT, domain(b"a.test"), 443) + b"\x16\x03\x01"
    events, trailing = converse(whole(wire))
    assert events[-1] == Socks5Requested(CMD_CONNECT, "a.test", 443)
    assert trailing == b"\x16\x03\x01"


def test_trailing_data_is_taken_once() -> None:
    server = SocksServer()
    server.receive_data(socks4_request(CMD_CONNECT, 80, bytes((1, 2, 3, 4)), b"") + b"abc")
    server.next_event()
    assert server.trailing_data() == b"abc"
    assert server.trailing_data() == b""


@pytest.mark.parametrize(
    ("reply", "wire"),
    [
        (socks5_reply(0x00), b"\x05\x00\x00\x01\x00\x00\x00\x00\x00\x00"),
        (socks5_reply(0x00, "127.0.0.1", 1080), b"\x05\x00\x00\x01\x7f\x00\x00\x01\x04\x38"),
        (socks5_reply(0x05, "::1", 443), b"\x05\x05\x00\x04" + bytes(15) + b"\x01\x01\xbb"),
        (socks5_reply(0x01, "proxy.test", 1), b"\x05\x01\x00\x03\x0aproxy.test\x00\x01"),
        (socks5_reply(0x08), b"\x05\x08\x00\x01\x00\x00\x00\x00\x00\x00"),
    ],
)
def test_socks5_reply_bytes(reply: bytes, wire: bytes) -> None:
    assert reply == wire


# -- UDP datagrams (RFC 1928 section 7) --


@pytest.mark.parametrize(
    ("wire", "datagram"),
    [
        (b"\0\0\0\x01\x08\x08\x08\x08\x00\x35payload", UdpDatagram(0, "8.8.8.8", 53, b"payload")),
        (b"\0\0\x02\x03\x04a.bc\x00\x35", UdpDatagram(2, "a.bc", 53, b"")),
        (b"\0\0\0\x04" + bytes(15) + b"\x01\x01\x00x", UdpDatagram(0, "::1", 256, b"x")),
    ],
)
def test_parse_udp_datagram(wire: bytes, datagram: UdpDatagram) -> None:
    assert parse_udp_datagram(wire) == datagram


@pytest.mark.parametrize(
    ("wire", "hint"),
    [
        (b"", None),
        (b"\0\0\0", None),
        (b"\x01\0\0\x01\x01\x02\x03\x04\x00\x50", None),  # RSV must be zero
        (b"\0\x01\0\x01\x01\x02\x03\x04\x00\x50", None),
        (b"\0\0\0\x01\x01\x02\x03\x04\x00", None),  # port cut short
        (b"\0\0\0\x04" + bytes(16), None),
        (b"\0\0\0\x03", None),
        (b"\0\0\0\x03\x05abc", None),
        (b"\0\0\0\x03\x00\x00\x50", 0x08),
        (b"\0\0\0\x09\x01\x02\x03\x04\x00\x50", 0x08),
    ],
)
def test_parse_udp_datagram_bad_header_raises(wire: bytes, hint: int | None) -> None:
    with pytest.raises(ProtocolError) as caught:
        parse_udp_datagram(wire)
    assert caught.value.reply_hint == hint


def test_build_udp_datagram_bytes() -> None:
    assert build_udp_datagram("1.2.3.4", 80, b"hi") == b"\0\0\0\x01\x01\x02\x03\x04\x00\x50hi"
    assert build_udp_datagram("dns.test", 53, b"") == b"\0\0\0\x03\x08dns.test\x00\x35"


_labels = st.text("abcdefghijklmnopqrstuvwxyz0123456789-", min_size=1, max_size=20).filter(
    lambda label: not label.startswith("-") and not label.endswith("-")
)
hostnames = st.lists(_labels, min_size=1, max_size=4).map(".".join)
udp_hosts = st.one_of(
    st.ip_addresses(v=4).map(str),
    st.ip_addresses(v=6).map(str),
    hostnames.filter(lambda name: not _is_ip(name)),
)


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


@FUZZ
@given(host=udp_hosts, port=st.integers(0, 65535), payload=st.binary(max_size=64))
def test_udp_datagram_round_trip(host: str, port: int, payload: bytes) -> None:
    wire = build_udp_datagram(host, port, payload)
    assert parse_udp_datagram(wire) == UdpDatagram(0, host, port, payload)
    assert build_udp_datagram(host, port, payload) == wire


@FUZZ
@given(st.binary(max_size=64))
def test_parse_udp_datagram_raises_only_protocol_error(data: bytes) -> None:
    try:
        datagram = parse_udp_datagram(data)
    except ProtocolError:
        return
    assert data.endswith(datagram.payload)


# -- hypothesis: valid handshakes, every chunking --

text_fields = st.text(st.characters(blacklist_characters="\0", blacklist_categories=("Cs",)), max_size=40)


def _fits(limit: int) -> st.SearchStrategy[str]:
    return text_fields.filter(lambda text: len(text.encode()) <= limit)


@st.composite
def socks4_handshakes(draw: st.DrawFn) -> tuple[bytes, list[object]]:
    command = draw(st.sampled_from([CMD_CONNECT, CMD_BIND]))
    port = draw(st.integers(0, 65535))
    userid = draw(_fits(DEFAULT_MAX_FIELD))
    if draw(st.booleans()):
        name = draw(_fits(DEFAULT_MAX_FIELD).filter(bool))
        ip = b"\0\0\0" + bytes((draw(st.integers(1, 255)),))
        wire = socks4_request(command, port, ip, userid.encode(), name.encode())
        return wire, [Socks4Requested(command, name, port, userid)]
    address = draw(st.ip_addresses(v=4).filter(lambda ip: ip.packed[:3] != b"\0\0\0" or ip.packed[3] == 0))
    wire = socks4_request(command, port, address.packed, userid.encode())
    return wire, [Socks4Requested(command, str(address), port, userid)]


@st.composite
def socks5_addresses(draw: st.DrawFn) -> tuple[bytes, str]:
    kind = draw(st.sampled_from(["ipv4", "ipv6", "domain"]))
    if kind == "domain":
        name = draw(_fits(255).filter(bool))
        return domain(name.encode()), name
    address = draw(st.ip_addresses(v=4 if kind == "ipv4" else 6))
    return bytes((1 if kind == "ipv4" else 4,)) + address.packed, str(address)


@st.composite
def socks5_handshakes(draw: st.DrawFn) -> tuple[bytes, list[object]]:
    methods = draw(st.lists(st.integers(0, 255), min_size=1, max_size=8))
    wire = bytes((5, len(methods), *methods))
    expected: list[object] = [GreetingReceived(frozenset(methods))]
    if METHOD_USER_PASS in methods:
        username, password = draw(_fits(255)), draw(_fits(255))
        user_raw, pass_raw = username.encode(), password.encode()
        wire += bytes((1, len(user_raw))) + user_raw + bytes((len(pass_raw),)) + pass_raw
        expected += [b"\x05\x02", CredentialsReceived(username, password), b"\x01\x00"]
    else:
        expected.append(b"\x05\x00")
    command = draw(st.sampled_from([CMD_CONNECT, CMD_BIND, CMD_UDP_ASSOCIATE]))
    address, host = draw(socks5_addresses())
    port = draw(st.integers(0, 65535))
    wire += socks5_request(command, address, port)
    expected.append(Socks5Requested(command, host, port))
    return wire, expected


handshakes = st.one_of(socks4_handshakes(), socks5_handshakes())


@FUZZ
@given(handshake=handshakes, trailing=st.binary(max_size=16), data=st.data())
def test_chunking_never_changes_the_events(
    handshake: tuple[bytes, list[object]], trailing: bytes, data: st.DataObject
) -> None:
    wire, expected = handshake
    stream = wire + trailing
    cuts = data.draw(st.lists(st.integers(0, len(stream)), max_size=8))
    assert converse(whole(stream)) == (expected, trailing)
    assert converse(bytewise(stream)) == (expected, trailing)
    assert converse(split_at(stream, cuts)) == (expected, trailing)


# -- hypothesis: hostile input --


@st.composite
def mutated_handshakes(draw: st.DrawFn) -> bytes:
    wire, _ = draw(handshakes)
    return mutate(draw, wire)


hostile = st.one_of(
    st.binary(max_size=300),
    st.sampled_from([b"\x04", b"\x05"]).flatmap(lambda first: st.binary(max_size=300).map(first.__add__)),
    mutated_handshakes(),
)


@FUZZ
@given(stream=hostile, max_field=st.sampled_from([4, DEFAULT_MAX_FIELD]), data=st.data())
def test_hostile_input_raises_only_protocol_error_the_same_way(
    stream: bytes, max_field: int, data: st.DataObject
) -> None:
    cuts = data.draw(st.lists(st.integers(0, len(stream)), max_size=8))
    expected = converse(whole(stream), max_field)  # anything but ProtocolError escapes and fails here
    assert converse(bytewise(stream), max_field) == expected
    assert converse(split_at(stream, cuts), max_field) == expected
