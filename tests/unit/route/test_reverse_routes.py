"""Reverse routes: matching by host, path prefix, method and headers; path rewriting; header rules."""

from __future__ import annotations

from lanner.config.pools import HeaderRules, ReverseRoute
from lanner.route.reverse import CompiledHeaderRules, ReverseRoutes, compile_template, host_of, render


def routes(*items: dict[str, object]) -> ReverseRoutes:
    return ReverseRoutes([ReverseRoute.model_validate(item) for item in items])


def pool_for(table: ReverseRoutes, host: str, path: bytes, method: bytes = b"GET", headers=()) -> str | None:
    route = table.choose(host, path, method, list(headers))
    return route.pool if route is not None else None


def test_first_match_wins_and_an_empty_match_is_the_default() -> None:
    table = routes({"match": {"path": "/api"}, "pool": "api"}, {"pool": "default"}, {"pool": "never"})
    assert pool_for(table, "x", b"/api/v1") == "api"
    assert pool_for(table, "x", b"/other") == "default"


def test_hosts_exact_and_wildcard_never_the_bare_parent() -> None:
    table = routes({"match": {"hosts": ["a.example", "*.b.example"]}, "pool": "p"})
    assert pool_for(table, "a.example", b"/") == "p"
    assert pool_for(table, "x.b.example", b"/") == "p"
    assert pool_for(table, "deep.x.b.example", b"/") == "p"
    assert pool_for(table, "b.example", b"/") is None
    assert pool_for(table, "a.example.evil", b"/") is None


def test_host_header_forms() -> None:
    assert host_of(b"API.Example:8080") == "api.example"
    assert host_of(b"api.example.") == "api.example"
    assert host_of(b"[::1]:80") == "[::1]"
    assert host_of(None) == ""


def test_path_prefixes_match_on_segment_boundaries() -> None:
    table = routes({"match": {"path": "/api"}, "pool": "p"}, {"match": {"path": "/static/"}, "pool": "s"})
    assert pool_for(table, "h", b"/api") == "p"
    assert pool_for(table, "h", b"/api/x") == "p"
    assert pool_for(table, "h", b"/api?q=1") == "p"
    assert pool_for(table, "h", b"/apix") is None
    assert pool_for(table, "h", b"/static/a.css") == "s"
    assert pool_for(table, "h", b"/static") is None


def test_methods_and_headers() -> None:
    table = routes(
        {"match": {"methods": ["post"], "headers": {"X-Env": "canary", "X-Any": "*"}}, "pool": "p"},
    )
    headers = [(b"x-env", b"canary"), (b"X-ANY", b"whatever")]
    assert pool_for(table, "h", b"/", b"POST", headers) == "p"
    assert pool_for(table, "h", b"/", b"GET", headers) is None
    assert pool_for(table, "h", b"/", b"POST", headers[:1]) is None
    assert pool_for(table, "h", b"/", b"POST", [(b"X-Env", b"prod"), headers[1]]) is None


def test_rewrite_strips_then_adds_and_keeps_the_query() -> None:
    table = routes({"pool": "p", "strip_prefix": "/v1", "add_prefix": "/api/"})
    route = table.routes[0]
    assert route.rewrite(b"/v1/users?id=2") == b"/api/users?id=2"
    assert route.rewrite(b"/v1") == b"/api/"
    assert route.rewrite(b"/v1?x") == b"/api/?x"
    assert route.rewrite(b"/v10/x") == b"/api/v10/x"  # not under /v1


def test_templates_and_header_rules() -> None:
    template = compile_template("$scheme://$host/$nothing $$")
    assert render(template, {"scheme": b"https", "host": b"h"}) == b"https://h/$nothing $$"
    rules = CompiledHeaderRules.compile(
        HeaderRules(set={"X-Set": "$remote_addr"}, add={"X-Add": "1"}, remove=["X-Gone"])
    )
    assert rules is not None
    lines: list[bytes] = []
    rules.apply(
        lines, [(b"X-Gone", b"a"), (b"x-set", b"old"), (b"Keep", b"k")], {"remote_addr": b"192.0.2.1"}
    )
    assert b"".join(lines) == b"Keep: k\r\nX-Set: 192.0.2.1\r\nX-Add: 1\r\n"
    assert CompiledHeaderRules.compile(HeaderRules()) is None
