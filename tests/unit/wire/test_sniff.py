"""Recognising Redis, PostgreSQL and HTTP from a connection's first client bytes."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lanner.wire.sniff import ENOUGH, sniff


def startup(code: int = 196608) -> bytes:
    body = code.to_bytes(4, "big") + b"user\x00postgres\x00\x00"
    return (len(body) + 4).to_bytes(4, "big") + body


@pytest.mark.parametrize(
    ("head", "verdict"),
    [
        (b"*1\r\n$4\r\nPING\r\n", "redis"),
        (b"PING\r\n", "redis"),
        (b"get key\n", "redis"),
        (b'SET k "two words"\r\n', "redis"),
        (startup(), "postgres"),
        (startup(196610), "postgres"),  # protocol 3.2
        (b"\x00\x00\x00\x08\x04\xd2\x16\x2f", "postgres"),  # SSLRequest
        (b"\x00\x00\x00\x08\x04\xd2\x16\x30", "postgres"),  # GSSENCRequest
        (b"\x00\x00\x00\x10\x04\xd2\x16\x2e" + bytes(8), "postgres"),  # CancelRequest
        (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", "http"),
        (b"POST /api HTTP/1.0\r\n", "http"),
        (b"\x16\x03\x01\x02\x00\x01", "none"),  # a TLS ClientHello
        (b"SSH-2.0-OpenSSH_9.2\r\n", "none"),
        (b"*x\r\n", "none"),
        (b"\x00\x00\x00\x08\x00\x00\x00\x01", "none"),
        (b"", "more"),
        (b"*", "more"),
        (b"\x00\x00\x00", "more"),
        (b"GE", "more"),
        (b"GET / HTTP/1.1", "more"),  # no line end yet
        (b"HELLOTHERE", "none"),
    ],
)
def test_verdicts(head: bytes, verdict: str) -> None:
    assert sniff(head) == verdict


def test_a_long_line_without_an_end_is_not_waited_for() -> None:
    assert sniff(b"GET " + b"a" * ENOUGH) == "none"


@settings(max_examples=300)
@given(st.binary(max_size=64))
def test_any_bytes_give_a_verdict(head: bytes) -> None:
    assert sniff(head) in ("redis", "postgres", "http", "none", "more")
