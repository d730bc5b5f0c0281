"""The filter language: terms, values, precedence, and errors with positions."""

from __future__ import annotations

from datetime import datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lanner.record.filter import And, FilterError, Not, Or, Term, parse, parse_optional

NOW = 1_800_000_000.0


def root(text: str) -> object:
    return parse(text, now=NOW).root


@pytest.mark.parametrize(
    ("text", "term"),
    [
        ("host:API.Example.com", Term("host", "=", "api.example.com")),
        ("host:*.example.com", Term("host", "glob", "*.example.com")),
        ("method:post", Term("method", "=", "POST")),
        ("status:404", Term("status", "=", 404.0)),
        ("status:>=500", Term("status", ">=", 500.0)),
        ("status:<300", Term("status", "<", 300.0)),
        ("status:5xx", Term("status", "range", (500, 599))),
        ("status:400-499", Term("status", "range", (400.0, 499.0))),
        ("path:/v1/users", Term("path", "=", "/v1/users")),
        ("path:/v1/*", Term("path", "glob", "/v1/*")),
        ("url:*token=*", Term("url", "glob", "*token=*")),
        ("duration:>200ms", Term("duration", ">", 200.0)),
        ("duration:<1.5s", Term("duration", "<", 1500.0)),
        ("duration:>=250", Term("duration", ">=", 250.0)),
        ("size:>1MiB", Term("size", ">", 1048576.0)),
        ("since:15m", Term("started", ">=", NOW - 900)),
        ("until:1h", Term("started", "<", NOW - 3600)),
        ("id:>1000", Term("id", ">", 1000.0)),
        ("conn:3fa2c1.17", Term("conn", "=", "3fa2c1.17")),
        ("client:10.0.0.*", Term("client", "glob", "10.0.0.*")),
        ("error:*", Term("error", "any", "")),
        ("error:*timeout*", Term("error", "glob", "*timeout*")),
        ('body:"zebra corn"', Term("body", "text", "zebra corn")),
        ("header:x-request-id", Term("header", "text", "x-request-id")),
        ('"a phrase"', Term("text", "text", "a phrase")),
        ("timeout", Term("text", "text", "timeout")),
        ('user:"ada lovelace"', Term("user", "=", "ada lovelace")),
        ("proto:HTTP", Term("proto", "=", "http")),
    ],
)
def test_terms(text: str, term: Term) -> None:
    assert root(text) == term


def test_iso_time() -> None:
    assert root("since:2026-11-24T10:00:00") == Term(
        "started", ">=", datetime.fromisoformat("2026-11-24T10:00:00").timestamp()
    )


def test_adjacent_terms_are_anded() -> None:
    assert root("host:a method:GET") == And((Term("host", "=", "a"), Term("method", "=", "GET")))


def test_precedence_not_then_and_then_or() -> None:
    a, b, c = Term("host", "=", "a"), Term("host", "=", "b"), Term("host", "=", "c")
    assert root("host:a or host:b host:c") == Or((a, And((b, c))))
    assert root("host:a and host:b or host:c") == Or((And((a, b)), c))
    assert root("not host:a host:b") == And((Not(a), b))
    assert root("(host:a or host:b) and host:c") == And((Or((a, b)), c))
    assert root("-host:a") == Not(a)
    assert root("not (host:a or host:b)") == Not(Or((a, b)))
    assert root("HOST:a OR host:b") == Or((a, b))


def test_empty_filter_means_everything() -> None:
    assert parse_optional("") is None and parse_optional("   ") is None and parse_optional(None) is None
    assert parse_optional("host:a") is not None


@pytest.mark.parametrize(
    ("text", "position", "message"),
    [
        ("colour:red", 0, "unknown field"),
        ("host:a status:abc", 14, "bad value"),
        ("status:>=", 9, "needs a value"),
        ("status:1000", 7, "not an HTTP status"),
        ("status:499-400", 7, "empty range"),
        ("duration:>fast", 9, "bad value"),
        ("size:>huge", 5, "bad value"),
        ("since:yesterday", 6, "bad time"),
        ("(host:a", 0, "missing ')'"),
        ("host:a)", 6, "unexpected ')'"),
        ('"open', 0, "unterminated quote"),
        ("host:a or", 9, "expected a term"),
        ("and host:a", 0, "needs a term on each side"),
        ("host:", 5, "needs a value"),
        ('status:"500"', 7, "takes a number"),
        ('""', 0, "empty phrase"),
    ],
)
def test_errors_name_the_position(text: str, position: int, message: str) -> None:
    with pytest.raises(FilterError) as caught:
        parse(text, now=NOW)
    assert caught.value.position == position and message in caught.value.message
    assert isinstance(caught.value, ValueError)


@settings(max_examples=400, deadline=None)
@given(st.text(alphabet='ab:*()"-<>=5xs. \\', max_size=40))
def test_any_text_parses_or_raises_filter_error(text: str) -> None:
    try:
        parse(text, now=NOW)
    except FilterError as exc:
        assert 0 <= exc.position <= len(text)
