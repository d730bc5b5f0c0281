"""HttpConnectClient and Socks5Client against scripted proxy answers (bytes only, no sockets)."""

from __future__ import annotations

import dataclasses
import ipaddress
from collections.abc import Iterable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.unit.wire.chunking import bytewise, mutate, split_at, whole

from lanner.wire.errors import ProtocolError
from lanner.wire.proxy_client import (
    DEFAULT_MAX_BODY,
    DEFAULT_MAX_HEAD,
    Established,
    HttpConnectClient,
    Refused,
    Socks5Client,
)
from lanner.wire.socks import socks5_reply

FUZZ = settings(max_examples=200, deadline=None)

Result = Established | Refused
Outcome = Result | str | None


def _with_rest(result: Result | None, rest: Iterable[bytes]) -> Outcome:
    """An Established's leftover extended by the chunks fed after it, as a driver relays them."""
    if isinstance(result, Established):
        return Established(result.leftover + b"".join(rest))
    return result


def http(
    chunks: Iterable[bytes],
    max_head: int = DEFAULT_MAX_HEAD,
    max_body: int = DEFAULT_MAX_BODY,
    eof: bool = True,
) -> Outcome:
    """Feed `chunks` (then EOF, if asked) to a CONNECT client: its result, or "error" on ProtocolError."""
    client = HttpConnectClient("example.com", 443, None, None, max_head, max_body)
    remaining = iter(chunks)
    try:
        for chunk in remaining:
            assert client.receive_data(chunk) == b""
            if client.result is not None:
                break
        if eof:
            client.receive_eof()
    except ProtocolError:
        return "error"
    return _with_rest(client.result, remaining)


def socks(
    chunks: Iterable[bytes], username: str | None = None, password: str | None = None, eof: bool = True
) -> tuple[Outcome, bytes]:
    """Feed `chunks` to a SOCKS5 client: its result (or "error") and every byte it asked to send."""
    client = Socks5Client("example.com", 443, username, password)
    sent = bytearray(client.start())
    remaining = iter(chunks)
    try:
        for chunk in remaining:
            sent += client.receive_data(chunk)
            if client.result is not None:
                break
        if eof:
            client.receive_eof()
    except ProtocolError:
        return "error", bytes(sent)
    return _with_rest(client.result, remaining), bytes(sent)


def refused(
    status: int,
    reason: str,
    headers: tuple[tuple[str, str], ...] = (),
    body: bytes = b"",
    stage: str = "connect",
) -> Refused:
    return Refused(status, reason, headers, body, None, stage)


# -- HTTP: the request --


@pytest.mark.parametrize(
    ("host", "port", "username", "password", "request_bytes"),
    [
        (
            "example.com",
            443,
            None,
            None,
            b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n",
        ),
        (
            "192.0.2.1",
            8080,
            "user",
            "pass",
            b"CONNECT 192.0.2.1:8080 HTTP/1.1\r\nHost: 192.0.2.1:8080\r\n"
            b"Proxy-Authorization: Basic dXNlcjpwYXNz\r\n\r\n",
        ),
        (
            "2001:DB8::1",
            443,
            None,
            None,
            b"CONNECT [2001:db8::1]:443 HTTP/1.1\r\nHost: [2001:db8::1]:443\r\n\r\n",
        ),
        (
            "2001:db8::1",
            443,
            "user-country-de",
            "pa:ss",
            b"CONNECT [2001:db8::1]:443 HTTP/1.1\r\nHost: [2001:db8::1]:443\r\n"
            b"Proxy-Authorization: Basic dXNlci1jb3VudHJ5LWRlOnBhOnNz\r\n\r\n",
        ),
        (
            "bücher.example",
            80,
            "ü",
            None,
            b"CONNECT xn--bcher-kva.example:80 HTTP/1.1\r\nHost: xn--bcher-kva.example:80\r\n"
            b"Proxy-Authorization: Basic w7w6\r\n\r\n",
        ),
    ],
)
def test_connect_request_bytes(
    host: str, port: int, username: str | None, password: str | None, request_bytes: bytes
) -> None:
    assert HttpConnectClient(host, port, username, password).start() == request_bytes


@pytest.mark.parametrize(
    ("host", "port", "username", "password"),
    [
        ("", 443, None, None),
        ("a b", 443, None, None),
        ("a\r\nX-Injected: 1", 443, None, None),
        ("a/b", 443, None, None),
        ("a..b", 443, None, None),
        ("x" * 64 + ".com", 443, None, None),
        ("fe80::1%eth0", 443, None, None),
        ("example.com", -1, None, None),
        ("example.com", 65536, None, None),
        ("example.com", 443, "us:er", "pass"),
        ("example.com", 443, None, "pass"),
    ],
)
def test_connect_client_refuses_what_cannot_be_sent(
    host: str, port: int, username: str | None, password: str | None
) -> None:
    with pytest.raises(ValueError):
        HttpConnectClient(host, port, username, password)


# -- HTTP: answers --


@pytest.mark.parametrize(
    "head",
    [
        b"HTTP/1.1 200 Connection established\r\n\r\n",
        b"HTTP/1.0 200 Connection established\r\nProxy-Agent: vendor/1.0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
        b"HTTP/1.1 204 No Content\r\n\r\n",
        b"HTTP/1.1 200\r\n\r\n",
    ],
)
@pytest.mark.parametrize("after", [b"", b"\x16\x03\x01\x00\x05hello", b"HTTP/1.1 200 OK\r\n\r\n"])
def test_success_keeps_the_bytes_after_it(head: bytes, after: bytes) -> None:
    client = HttpConnectClient("example.com", 443, None, None)
    assert client.receive_data(head + after) == b""
    assert client.result == Established(after)


def test_success_waits_for_the_whole_head() -> None:
    assert http(whole(b"HTTP/1.1 200 OK\r\n\r"), eof=False) is None
    assert http(bytewise(b"HTTP/1.1 200 OK\r\n\r\nX"), eof=False) == Established(b"X")


def test_407_is_an_auth_refusal_with_headers_and_body() -> None:
    answer = (
        b"HTTP/1.1 407 Proxy Authentication Required\r\n"
        b'Proxy-Authenticate: Basic realm="vendor"\r\nContent-Length: 12\r\n\r\nbad password'
    )
    assert http(whole(answer)) == refused(
        407,
        "Proxy Authentication Required",
        (("Proxy-Authenticate", 'Basic realm="vendor"'), ("Content-Length", "12")),
        b"bad password",
        "auth",
    )


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        (
            b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n",
            refused(403, "Forbidden", (("Content-Length", "0"),)),
        ),
        (b"HTTP/1.1 502 Bad Gateway\r\n\r\nno route", refused(502, "Bad Gateway", (), b"no route")),
        (b"HTTP/1.0 503 \r\n\r\n", refused(503, "")),
        (
            b"HTTP/1.1 304 Not Modified\r\nContent-Length: 9\r\n\r\n",
            refused(304, "Not Modified", (("Content-Length", "9"),)),
        ),
        (
            b"HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\nUpgrade: h2c\r\n\r\nrest",
            refused(101, "Switching Protocols", (("Connection", "upgrade"), ("Upgrade", "h2c"))),
        ),
        (b"HTTP/1.1 407 \xe9chec\r\n\r\n", refused(407, "\xe9chec", stage="auth")),
    ],
)
def test_other_refusals(answer: bytes, expected: Refused) -> None:
    assert http(whole(answer)) == expected


def test_content_length_body_is_awaited_up_to_max_body() -> None:
    head = b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 10\r\n\r\n"
    client = HttpConnectClient("example.com", 443, None, None, max_body=6)
    client.receive_data(head + b"abc")
    assert client.result is None
    client.receive_data(b"defgh")  # past max_body: cut there, the rest is never awaited
    assert isinstance(client.result, Refused)
    assert client.result.body == b"abcdef"


def test_eof_inside_a_refusal_body_keeps_the_refusal() -> None:
    answer = b"HTTP/1.1 407 Denied\r\nContent-Length: 10\r\n\r\nabc"
    result = http(whole(answer))
    assert isinstance(result, Refused)
    assert (result.status, result.stage, result.body) == (407, "auth", b"abc")


@pytest.mark.parametrize("max_body", [0, 1, 5, 6, DEFAULT_MAX_BODY])
def test_body_never_exceeds_max_body(max_body: int) -> None:
    for framing, body in [
        (b"Content-Length: 6\r\n", b"abcdef"),
        (b"Transfer-Encoding: chunked\r\n", b"3\r\nabc\r\n3\r\ndef\r\n0\r\n\r\n"),
        (b"", b"abcdef"),
    ]:
        result = http(whole(b"HTTP/1.1 500 Oops\r\n" + framing + b"\r\n" + body), max_body=max_body)
        assert isinstance(result, Refused)
        assert result.body == b"abcdef"[:max_body]


def test_chunked_or_unframed_body_is_only_what_came_with_the_head() -> None:
    for framing in (b"Transfer-Encoding: chunked\r\n", b""):
        client = HttpConnectClient("example.com", 443, None, None)
        client.receive_data(b"HTTP/1.1 502 Bad Gateway\r\n" + framing + b"\r\n")
        assert isinstance(client.result, Refused)
        assert client.result.body == b""


def test_malformed_chunked_body_ends_the_body_not_the_refusal() -> None:
    answer = b"HTTP/1.1 502 Bad\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n"
    assert http(whole(answer)) == refused(502, "Bad", (("Transfer-Encoding", "chunked"),))


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nerror",
            refused(200, "success answer with a body", (("Content-Length", "5"),), b"error"),
        ),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nno\r\n0\r\n\r\n",
            refused(200, "success answer with a body", (("Transfer-Encoding", "chunked"),), b"no"),
        ),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nxyz",
            refused(200, "success answer with a body", (("Transfer-Encoding", "gzip"),), b"xyz"),
        ),
        (b"HTTP/2.0 200 OK\r\n\r\n", refused(200, "success answer not in HTTP/1.x")),
        (b"HTTP/0.9 200 OK\r\n\r\n", refused(200, "success answer not in HTTP/1.x")),
    ],
)
def test_a_success_answer_that_is_no_tunnel_opening_is_refused(answer: bytes, expected: Refused) -> None:
    assert http(whole(answer)) == expected


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        (b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n\r\nX", Established(b"X")),
        (
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"
            b"HTTP/1.1 407 Denied\r\nContent-Length: 0\r\n\r\n",
            refused(407, "Denied", (("Content-Length", "0"),), stage="auth"),
        ),
    ],
)
def test_interim_answers_are_skipped(answer: bytes, expected: Result) -> None:
    assert http(whole(answer)) == expected
    assert http(bytewise(answer)) == expected


def head_of(size: int) -> bytes:
    """A 407 head whose header section, less the closing CRLF CRLF, is `size` bytes."""
    start = b"HTTP/1.1 407 Proxy Authentication Required\r\nX-Pad: "
    return start + b"a" * (size - len(start)) + b"\r\n\r\n"


@pytest.mark.parametrize("max_head", [100, 1000, DEFAULT_MAX_HEAD])
def test_head_at_max_head_is_read_one_byte_over_raises(max_head: int) -> None:
    assert isinstance(http(whole(head_of(max_head)), max_head=max_head), Refused)
    assert isinstance(http(bytewise(head_of(max_head)), max_head=max_head), Refused)
    assert http(whole(head_of(max_head + 1)), max_head=max_head) == "error"
    client = HttpConnectClient("example.com", 443, None, None, max_head=max_head)
    client.receive_data(head_of(max_head + 1)[: max_head + 3])
    with pytest.raises(ProtocolError):  # no terminator can fit any more: raised before the end arrives
        client.receive_data(b"\r")


def test_each_interim_head_is_bounded_on_its_own() -> None:
    interim = b"HTTP/1.1 100 Continue\r\nX: " + b"a" * 60 + b"\r\n\r\n"
    assert http(whole(interim * 5 + head_of(100)), max_head=100) == http(whole(head_of(100)), max_head=100)


@pytest.mark.parametrize("answer", [b"", b"H", b"HTTP/1.1 200 OK\r\n", b"HTTP/1.1 200 OK\r\n\r"])
def test_eof_before_a_whole_head_raises(answer: bytes) -> None:
    client = HttpConnectClient("example.com", 443, None, None)
    client.receive_data(answer)
    with pytest.raises(ProtocolError, match="proxy closed during the handshake"):
        client.receive_eof()


@pytest.mark.parametrize(
    "answer",
    [
        b"HTTP/1.1 2000 OK\r\n\r\n",
        b"HTTP/1.1 99 OK\r\n\r\n",
        b"HTTP/1.2 200 OK\r\n\r\n",
        b"HTTP/1.1 OK\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nBad Header\r\n\r\n",
        b"HTTP/1.1 407 x\r\nContent-Length: 1x\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
        b"RTSP/1.0 200 OK\r\n\r\n",
        b"\r\nHTTP/1.1 200 OK\r\n\r\n",
        b"SSH-2.0-OpenSSH_9.6\r\n",
        b"\x05\x00",
        b"HTTP/1.1 200 OK\n\n",
        b"HTTP/1.1 101 Switching Protocols\r\n\r\n",  # no Connection: upgrade (RFC 9110 section 7.8)
    ],
)
def test_malformed_answers_raise(answer: bytes) -> None:
    assert http(whole(answer)) == "error"
    assert http(bytewise(answer)) == "error"


def test_an_answer_that_is_not_http_raises_at_its_first_byte() -> None:
    client = HttpConnectClient("example.com", 443, None, None)
    client.receive_data(b"HTTP")
    with pytest.raises(ProtocolError):
        client.receive_data(b"S")


@pytest.mark.parametrize(
    "answer",
    [b"HTTP/1.1 200 OK\r\n\r\n", b"HTTP/1.1 407 No\r\n\r\n", b"HTTP/1.1 502 No\r\nContent-Length: 0\r\n\r\n"],
)
def test_feeding_after_the_result_is_our_mistake(answer: bytes) -> None:
    client = HttpConnectClient("example.com", 443, None, None)
    client.receive_data(answer)
    result = client.result
    assert result is not None
    client.receive_eof()  # a proxy closing after its answer changes nothing
    assert client.result is result
    with pytest.raises(RuntimeError):
        client.receive_data(b"more")


# -- SOCKS5: requests and answers --

NAME_REQUEST = b"\x05\x01\x00\x03\x0bexample.com\x01\xbb"
SUCCESS = socks5_reply(0x00, "192.0.2.7", 40000)


@pytest.mark.parametrize(
    ("host", "request_bytes"),
    [
        ("192.0.2.1", b"\x05\x01\x00\x01\xc0\x00\x02\x01\x01\xbb"),
        ("2001:db8::1", b"\x05\x01\x00\x04" + ipaddress.IPv6Address("2001:db8::1").packed + b"\x01\xbb"),
        ("example.com", NAME_REQUEST),
        ("Bücher.example", b"\x05\x01\x00\x03\x15xn--bcher-kva.example\x01\xbb"),
    ],
)
@pytest.mark.parametrize("credentials", [None, ("user", "pass")])
def test_socks5_conversation_bytes(
    host: str, request_bytes: bytes, credentials: tuple[str, str] | None
) -> None:
    username, password = credentials or (None, None)
    client = Socks5Client(host, 443, username, password)
    if credentials is None:
        assert client.start() == b"\x05\x01\x00"
        assert client.receive_data(b"\x05\x00") == request_bytes
    else:
        assert client.start() == b"\x05\x01\x02"
        assert client.receive_data(b"\x05\x02") == b"\x01\x04user\x04pass"
        assert client.receive_data(b"\x01\x00") == request_bytes
    assert client.result is None
    assert client.receive_data(SUCCESS + b"tunnel") == b""
    assert client.result == Established(b"tunnel")


@pytest.mark.parametrize(
    "reply",
    [
        socks5_reply(0, "0.0.0.0", 0),
        socks5_reply(0, "::1", 1080),
        socks5_reply(0, "proxy.vendor.test", 1080),
    ],
)
def test_socks5_success_with_each_bound_address_keeps_the_bytes_after_it(reply: bytes) -> None:
    assert socks([b"\x05\x00" + reply + b"\x16\x03"]) == (
        Established(b"\x16\x03"),
        b"\x05\x01\x00" + NAME_REQUEST,
    )
    assert socks(bytewise(b"\x05\x00" + reply), eof=False)[0] == Established(b"")


@pytest.mark.parametrize(
    ("answer", "credentials", "expected"),
    [
        (b"\x05\xff", None, Refused(407, "no acceptable authentication method", (), b"", 0xFF, "auth")),
        (b"\x05\xff", ("u", "p"), Refused(407, "no acceptable authentication method", (), b"", 0xFF, "auth")),
        (
            b"\x05\x02",
            None,
            Refused(407, "proxy chose method 0x02, which was not offered", (), b"", 0xFF, "auth"),
        ),
        (
            b"\x05\x00",
            ("u", "p"),
            Refused(407, "proxy chose method 0x00, which was not offered", (), b"", 0xFF, "auth"),
        ),
        (b"\x05\x02\x01\x01", ("u", "p"), Refused(407, "username/password refused", (), b"", 0x01, "auth")),
        (b"\x05\x02\x01\xff", ("u", "p"), Refused(407, "username/password refused", (), b"", 0xFF, "auth")),
    ],
)
def test_socks5_auth_refusals(answer: bytes, credentials: tuple[str, str] | None, expected: Refused) -> None:
    username, password = credentials or (None, None)
    assert socks(whole(answer), username, password)[0] == expected
    assert socks(bytewise(answer), username, password)[0] == expected


@pytest.mark.parametrize(
    ("code", "status", "reason"),
    [
        (0x01, 502, "general SOCKS server failure"),
        (0x02, 403, "connection not allowed by ruleset"),
        (0x03, 502, "network unreachable"),
        (0x04, 502, "host unreachable"),
        (0x05, 502, "connection refused"),
        (0x06, 504, "TTL expired"),
        (0x07, 502, "command not supported"),
        (0x08, 502, "address type not supported"),
        (0x09, 502, "unassigned reply code 0x09"),
        (0xFF, 502, "unassigned reply code 0xff"),
    ],
)
def test_socks5_connect_refusals(code: int, status: int, reason: str) -> None:
    expected = Refused(status, reason, (), b"", code, "connect")
    assert socks([b"\x05\x00" + socks5_reply(code)])[0] == expected
    assert socks([b"\x05\x00", bytes((5, code))], eof=False)[0] == expected  # the code alone settles it


@pytest.mark.parametrize(
    ("answer", "credentials"),
    [
        (b"\x04\x00", None),  # method reply version
        (b"\x00", None),
        (b"\x05\x02\x05\x00", ("u", "p")),  # auth reply version (RFC 1929: 0x01)
        (b"\x05\x00\x04\x00\x00\x01" + bytes(6), None),  # reply version
        (b"\x05\x00\x05\x00\x00\x05" + bytes(6), None),  # address type
        (b"\x05\x00\x05\x00\x00\x03\x00\x00\x00", None),  # empty bound name
        (b"\x05\x00\x05\x00\x00\x03\x01\xff\x00\x00", None),  # bound name not UTF-8
    ],
)
def test_socks5_malformed_answers_raise(answer: bytes, credentials: tuple[str, str] | None) -> None:
    username, password = credentials or (None, None)
    assert socks(whole(answer), username, password)[0] == "error"
    assert socks(bytewise(answer), username, password)[0] == "error"


@pytest.mark.parametrize(
    "answer", [b"", b"\x05", b"\x05\x00", b"\x05\x00\x05\x00\x00", b"\x05\x00" + SUCCESS[:-1]]
)
def test_socks5_eof_mid_handshake_raises(answer: bytes) -> None:
    client = Socks5Client("example.com", 443, None, None)
    client.receive_data(answer)
    with pytest.raises(ProtocolError, match="proxy closed during the handshake"):
        client.receive_eof()


@pytest.mark.parametrize(
    ("host", "port", "username", "password"),
    [
        ("example.com", 443, "", "p"),
        ("example.com", 443, "u", ""),
        ("example.com", 443, "u" * 256, "p"),
        ("example.com", 443, "u", "p" * 256),
        ("example.com", 443, "é" * 128, "p"),  # 256 bytes in UTF-8
        ("example.com", 443, "u\udc80", "p"),  # not encodable as UTF-8
        ("example.com", 443, "u", None),
        ("example.com", 443, None, "p"),
        ("", 443, None, None),
        ("a" * 250 + ".test", 443, None, None),
        ("example.com", 65536, None, None),
    ],
)
def test_socks5_client_refuses_what_cannot_be_sent(
    host: str, port: int, username: str | None, password: str | None
) -> None:
    with pytest.raises(ValueError):
        Socks5Client(host, port, username, password)


def test_socks5_credentials_of_255_bytes_are_sent() -> None:
    client = Socks5Client("example.com", 443, "u" * 255, "é" * 127 + "p")
    client.start()
    assert client.receive_data(b"\x05\x02") == b"\x01\xff" + b"u" * 255 + b"\xff" + "é".encode() * 127 + b"p"


def test_socks5_feeding_after_the_result_is_our_mistake() -> None:
    client = Socks5Client("example.com", 443, None, None)
    client.receive_data(b"\x05\x00" + SUCCESS)
    client.receive_eof()
    assert client.result == Established(b"")
    with pytest.raises(RuntimeError):
        client.receive_data(b"tunnel")


# -- hypothesis: every chunking gives the same result --

header_fields = st.lists(
    st.tuples(
        st.sampled_from(["Server", "Via", "X-Error", "Proxy-Authenticate", "Date"]),
        st.from_regex(r"[A-Za-z0-9=;/.-]{1,16}", fullmatch=True),
    ),
    max_size=4,
)
reasons = st.sampled_from(["OK", "Connection established", "Forbidden", "No Route", "x"])
interims = st.lists(
    st.sampled_from([b"HTTP/1.1 100 Continue\r\n\r\n", b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"]),
    max_size=2,
)


def encode_head(version: bytes, status: int, reason: str, headers: list[tuple[str, str]]) -> bytes:
    lines = [b"HTTP/" + version + b" %d " % status + reason.encode()]
    lines += [f"{name}: {value}".encode() for name, value in headers]
    return b"\r\n".join(lines) + b"\r\n\r\n"


@st.composite
def http_answers(draw: st.DrawFn) -> tuple[bytes, Result, int]:
    """(wire, the result, max_body): answers whose result no chunking may change."""
    version = draw(st.sampled_from([b"1.0", b"1.1"]))
    reason, headers = draw(reasons), draw(header_fields)
    wire = b"".join(draw(interims))
    trailing = draw(st.binary(max_size=16))
    max_body = draw(st.sampled_from([0, 7, DEFAULT_MAX_BODY]))
    if draw(st.booleans()):
        status = draw(st.sampled_from([200, 201, 204]))
        return (
            wire + encode_head(version, status, reason, headers) + trailing,
            Established(trailing),
            max_body,
        )
    status = draw(st.sampled_from([304, 400, 403, 407, 500, 502, 503, 504]))
    body = b"" if status == 304 else draw(st.binary(max_size=30))
    headers.append(("Content-Length", str(len(body))))
    expected = refused(
        status, reason, tuple(headers), body[:max_body], "auth" if status == 407 else "connect"
    )
    return wire + encode_head(version, status, reason, headers) + body + trailing, expected, max_body


@FUZZ
@given(answer=http_answers(), data=st.data())
def test_http_chunking_never_changes_the_result(
    answer: tuple[bytes, Result, int], data: st.DataObject
) -> None:
    wire, expected, max_body = answer
    cuts = data.draw(st.lists(st.integers(0, len(wire)), max_size=8))
    assert http(whole(wire), max_body=max_body) == expected
    assert http(bytewise(wire), max_body=max_body) == expected
    assert http(split_at(wire, cuts), max_body=max_body) == expected


@FUZZ
@given(
    headers=header_fields,
    payload=st.lists(st.binary(min_size=1, max_size=10), max_size=4),
    chunked=st.booleans(),
    data=st.data(),
)
def test_http_unframed_body_is_a_prefix_whatever_the_chunking(
    headers: list[tuple[str, str]], payload: list[bytes], chunked: bool, data: st.DataObject
) -> None:
    if chunked:
        headers.append(("Transfer-Encoding", "chunked"))
        body = b"".join(b"%x\r\n%s\r\n" % (len(part), part) for part in payload) + b"0\r\n\r\n"
    else:
        body = b"".join(payload)
    wire = encode_head(b"1.1", 502, "Bad Gateway", headers) + body
    full = http(whole(wire))
    assert full == refused(502, "Bad Gateway", tuple(headers), b"".join(payload))
    cuts = data.draw(st.lists(st.integers(0, len(wire)), max_size=8))
    for chunks in (bytewise(wire), split_at(wire, cuts)):
        result = http(chunks)
        assert isinstance(result, Refused)
        assert dataclasses.replace(result, body=b"") == dataclasses.replace(full, body=b"")
        assert full.body.startswith(result.body)


@st.composite
def socks_answers(draw: st.DrawFn) -> tuple[bytes, bool]:
    """(the proxy's bytes, whether credentials are offered): method, auth, reply, then tunnel bytes."""
    credentials = draw(st.booleans())
    wire = bytes((5, draw(st.sampled_from([0x02 if credentials else 0x00, 0xFF]))))
    if credentials:
        wire += bytes((1, draw(st.sampled_from([0, 0, 1]))))
    bound = draw(st.one_of(st.ip_addresses().map(str), st.sampled_from(["vendor.test", "a"])))
    wire += socks5_reply(draw(st.sampled_from([0, 0, 1, 2, 5, 6])), bound, draw(st.integers(0, 65535)))
    return wire + draw(st.binary(max_size=16)), credentials


def socks_with(chunks: list[bytes], credentials: bool) -> tuple[Outcome, bytes]:
    return socks(chunks, "user", "pass") if credentials else socks(chunks)


@FUZZ
@given(answer=socks_answers(), data=st.data())
def test_socks5_chunking_never_changes_the_result_or_the_bytes_sent(
    answer: tuple[bytes, bool], data: st.DataObject
) -> None:
    wire, credentials = answer
    cuts = data.draw(st.lists(st.integers(0, len(wire)), max_size=8))
    expected = socks_with(whole(wire), credentials)
    assert isinstance(expected[0], Established | Refused)
    assert socks_with(bytewise(wire), credentials) == expected
    assert socks_with(split_at(wire, cuts), credentials) == expected


# -- hypothesis: hostile input --


@st.composite
def mutated_http(draw: st.DrawFn) -> bytes:
    return mutate(draw, draw(http_answers())[0])


@st.composite
def mutated_socks(draw: st.DrawFn) -> bytes:
    return mutate(draw, draw(socks_answers())[0])


def without_body(outcome: Outcome) -> Outcome:
    """Outcomes compared across chunkings: an unframed refusal body depends on what came with the head."""
    return dataclasses.replace(outcome, body=b"") if isinstance(outcome, Refused) else outcome


@FUZZ
@given(
    stream=st.one_of(
        st.binary(max_size=200),
        st.sampled_from([b"HTTP/1.1 ", b"HTTP/1.1 200 OK\r\n", b"HTTP/1.1 407 x\r\n"]).flatmap(
            lambda start: st.binary(max_size=200).map(start.__add__)
        ),
        mutated_http(),
    ),
    max_head=st.sampled_from([40, 100, DEFAULT_MAX_HEAD]),
    data=st.data(),
)
def test_http_hostile_input_raises_only_protocol_error_the_same_way(
    stream: bytes, max_head: int, data: st.DataObject
) -> None:
    cuts = data.draw(st.lists(st.integers(0, len(stream)), max_size=8))
    expected = without_body(http(whole(stream), max_head))  # anything but ProtocolError escapes here
    assert without_body(http(bytewise(stream), max_head)) == expected
    assert without_body(http(split_at(stream, cuts), max_head)) == expected


@FUZZ
@given(
    stream=st.one_of(
        st.binary(max_size=100),
        st.sampled_from([b"\x05\x00\x05\x00\x00", b"\x05\x02\x01\x00\x05\x00\x00"]).flatmap(
            lambda start: st.binary(max_size=100).map(start.__add__)
        ),
        mutated_socks(),
    ),
    credentials=st.booleans(),
    data=st.data(),
)
def test_socks5_hostile_input_raises_only_protocol_error_the_same_way(
    stream: bytes, credentials: bool, data: st.DataObject
) -> None:
    cuts = data.draw(st.lists(st.integers(0, len(stream)), max_size=8))
    expected, _ = socks_with(whole(stream), credentials)  # anything but ProtocolError escapes here
    assert socks_with(bytewise(stream), credentials)[0] == expected
    assert socks_with(split_at(stream, cuts), credentials)[0] == expected
