"""Choosing a router's target by name: exact, most specific wildcard, catch-all per kind, none."""

from __future__ import annotations

from lanner.config.model import RouteConfig
from lanner.route.names import NameRoutes


def routes() -> NameRoutes:
    return NameRoutes(
        [
            RouteConfig(match="api.example.com", target="10.0.0.1:443"),
            RouteConfig(match="*.example.com", target="10.0.0.2:443"),
            RouteConfig(match="*.api.example.com", target="10.0.0.3:443"),
            RouteConfig(match="web.example.com", protocol="http", target="10.0.0.4:80"),
            RouteConfig(match="*", protocol="http", target="10.0.0.5:80"),
            RouteConfig(match="API.example.com", target="10.0.0.9:443"),  # a later duplicate never wins
        ]
    )


def test_exact_before_wildcard_before_catch_all() -> None:
    table = routes()
    exact = table.choose("api.example.com", "tls")
    assert exact is not None and (exact.reason, exact.route.target) == ("exact", "10.0.0.1:443")
    deeper = table.choose("v1.api.example.com", "tls")
    assert deeper is not None and (deeper.reason, deeper.route.target) == ("wildcard", "10.0.0.3:443")
    shallow = table.choose("www.example.com", "tls")
    assert shallow is not None and shallow.route.target == "10.0.0.2:443"
    assert table.choose("Api.Example.COM.", "tls").route.target == "10.0.0.1:443"  # type: ignore[union-attr]


def test_a_wildcard_never_matches_its_bare_parent() -> None:
    assert NameRoutes([RouteConfig(match="*.example.com", target="h:1")]).choose("example.com", "tls") is None


def test_catch_all_is_per_kind() -> None:
    table = routes()
    assert table.choose("other.org", "tls") is None
    plain = table.choose("other.org", "http")
    assert plain is not None and (plain.reason, plain.route.target) == ("catch-all", "10.0.0.5:80")
    assert table.choose(None, "http").route.target == "10.0.0.5:80"  # type: ignore[union-attr]
    assert table.choose(None, "tls") is None
    http_only = table.choose("web.example.com", "tls")
    assert http_only is not None and http_only.reason == "wildcard"  # the http route is not for TLS


def test_describe_says_what_matched_and_why() -> None:
    choice = routes().choose("v1.api.example.com", "tls")
    assert choice is not None
    assert choice.describe("v1.api.example.com") == (
        "wildcard *.api.example.com (v1.api.example.com) -> 10.0.0.3:443"
    )
