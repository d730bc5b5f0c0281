"""Request and response heads as a reverse proxy rewrites them (no sockets)."""

from __future__ import annotations

from lanner.config.pools import HeaderRules
from lanner.entry.http_reverse import Forwarding, request_for_backend, response_with_rules
from lanner.route.reverse import CompiledHeaderRules
from lanner.wire.http1 import HttpReader, RequestHead, RequestReceived, ResponseHead, ResponseReceived


def parse_request(raw: bytes) -> RequestHead:
    reader = HttpReader(True)
    reader.receive_data(raw)
    event = reader.next_event()
    assert isinstance(event, RequestReceived)
    return event.head


def parse_response(raw: bytes) -> ResponseHead:
    reader = HttpReader(False)
    reader.expect_response_to(b"GET")
    reader.receive_data(raw)
    event = reader.next_event()
    assert isinstance(event, ResponseReceived)
    return event.head


def header_lines(rendered: bytes) -> list[str]:
    return rendered.decode().split("\r\n")[1:-2]


UNTRUSTED = Forwarding.for_client("192.0.2.10", "http", False, "X-Request-Id")
TRUSTED = Forwarding.for_client("2001:db8::7", "https", True, "X-Request-Id")


def test_untrusted_forwarding_headers_are_replaced_and_hop_by_hop_dropped() -> None:
    head = parse_request(
        b"GET /x HTTP/1.1\r\nHost: h.example\r\nX-Forwarded-For: 6.6.6.6\r\nForwarded: for=6.6.6.6\r\n"
        b"X-Real-IP: 6.6.6.6\r\nConnection: keep-alive, X-Hop\r\nX-Hop: 1\r\nKeep-Alive: 5\r\nTE: trailers\r\n\r\n"
    )
    rendered, request_id = request_for_backend(head, b"/y", b"h.example", UNTRUSTED)
    assert rendered.startswith(b"GET /y HTTP/1.1\r\n")
    assert header_lines(rendered) == [
        "Host: h.example",
        "X-Forwarded-For: 192.0.2.10",
        "X-Forwarded-Proto: http",
        "X-Forwarded-Host: h.example",
        "Forwarded: for=192.0.2.10;proto=http;host=h.example",
        "X-Real-IP: 192.0.2.10",
        f"X-Request-Id: {request_id.decode()}",
    ]


def test_trusted_forwarding_headers_are_extended_and_ipv6_quoted() -> None:
    head = parse_request(
        b"GET / HTTP/1.1\r\nHost: h:8443\r\nX-Forwarded-For: 203.0.113.1\r\nX-Forwarded-For: 10.0.0.1\r\n"
        b"X-Forwarded-Proto: https\r\nForwarded: for=203.0.113.1\r\n\r\n"
    )
    lines = header_lines(request_for_backend(head, b"/", b"h:8443", TRUSTED)[0])
    assert "X-Forwarded-For: 203.0.113.1, 10.0.0.1, 2001:db8::7" in lines
    assert "X-Forwarded-Proto: https" in lines
    assert 'Forwarded: for=203.0.113.1, for="[2001:db8::7]";proto=https;host="h:8443"' in lines


def test_request_ids_passed_through_when_usable_else_generated() -> None:
    def request_id(raw: bytes) -> bytes:
        return request_for_backend(parse_request(raw), b"/", None, UNTRUSTED)[1]

    assert request_id(b"GET / HTTP/1.1\r\nx-request-id: abc-1\r\n\r\n") == b"abc-1"
    for raw in (
        b"GET / HTTP/1.1\r\n\r\n",
        b"GET / HTTP/1.1\r\nX-Request-Id: a, b\r\n\r\n",
        b"GET / HTTP/1.1\r\nX-Request-Id: a\r\nX-Request-Id: b\r\n\r\n",
        b"GET / HTTP/1.1\r\nX-Request-Id: " + b"x" * 201 + b"\r\n\r\n",
    ):
        generated = request_id(raw)
        assert len(generated) == 32 and generated != request_id(raw)
        assert request_for_backend(parse_request(raw), b"/", None, UNTRUSTED)[0].count(b"X-Request-Id") == 1


def test_rules_see_the_request_id() -> None:
    head = parse_request(b"GET / HTTP/1.1\r\nX-Request-Id: r7\r\nX-Drop: 1\r\n\r\n")
    rules = CompiledHeaderRules.compile(HeaderRules(set={"X-Trace": "id=$request_id"}, remove=["x-drop"]))
    lines = header_lines(request_for_backend(head, b"/", None, UNTRUSTED, rules, {})[0])
    assert lines[-1] == "X-Trace: id=r7"
    assert not any(line.startswith("X-Drop") for line in lines)


def test_absolute_form_host_replaces_the_host_header_and_close_is_kept() -> None:
    head = parse_request(b"GET http://a.example/p HTTP/1.1\r\nHost: b.example\r\nConnection: close\r\n\r\n")
    lines = header_lines(request_for_backend(head, b"/p", b"a.example", UNTRUSTED, new_host=b"a.example")[0])
    assert lines[0] == "Host: a.example"
    assert "Host: b.example" not in lines
    assert lines[-1] == "Connection: close"


def test_upgrade_is_passed_on() -> None:
    head = parse_request(b"GET /ws HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n")
    lines = header_lines(request_for_backend(head, b"/ws", b"h", UNTRUSTED)[0])
    assert lines[-2:] == ["Connection: upgrade", "Upgrade: websocket"]


def test_response_rules() -> None:
    head = parse_response(b"HTTP/1.1 200 OK\r\nServer: s\r\nContent-Length: 0\r\n\r\n")
    rules = CompiledHeaderRules.compile(HeaderRules(set={"X-Up": "$upstream_addr"}, remove=["server"]))
    rendered = response_with_rules(head, False, "1.1", rules, {"upstream_addr": b"10.0.0.2:80"})
    assert rendered == b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nX-Up: 10.0.0.2:80\r\n\r\n"
    assert response_with_rules(head, True, "1.1", None, {}).endswith(b"Connection: close\r\n\r\n")
