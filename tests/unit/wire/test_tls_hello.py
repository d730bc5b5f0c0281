"""The SNI of a ClientHello: read from real handshakes, never raising on anything else."""

from __future__ import annotations

import ssl

from hypothesis import given, settings
from hypothesis import strategies as st

from lanner.wire.tls_hello import looks_like_tls, server_name


def client_hello(host: str | None) -> bytes:
    """The first flight of Python's own TLS client, as it would cross the wire."""
    context = ssl.create_default_context()
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = context.wrap_bio(incoming, outgoing, server_hostname=host)
    try:
        tls.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return outgoing.read()


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
