"""Rule evaluation: first match wins, CIDR rules ask for an address, no proxy loops."""

from __future__ import annotations

import ipaddress

from lanner.config.model import Rule
from lanner.route.rules import Router, Verdict


def router(*rules: dict[str, object], own: tuple[tuple[str, int], ...] = ()) -> Router:
    return Router([Rule.model_validate(rule) for rule in rules], own)


def ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    return ipaddress.ip_address(text)


def test_no_rules_allows() -> None:
    assert router().check("l", None, "example.com", 443, None) is Verdict.ALLOW


def test_host_glob_port_and_first_match() -> None:
    rules = router(
        {"action": "allow", "hosts": ["api.example.com"]},
        {"action": "deny", "hosts": ["*.example.com"], "ports": ["1-1024"]},
    )
    assert rules.check("l", None, "api.example.com", 80, None) is Verdict.ALLOW
    assert rules.check("l", None, "www.EXAMPLE.com", 80, None) is Verdict.DENY
    assert rules.check("l", None, "www.example.com", 8080, None) is Verdict.ALLOW
    assert rules.check("l", None, "example.com", 80, None) is Verdict.ALLOW


def test_cidr_rules_need_the_address() -> None:
    rules = router({"action": "allow", "cidrs": ["127.0.0.0/8"]}, {"action": "deny"})
    assert rules.check("l", None, "localhost", 80, None) is Verdict.NEED_ADDRESS
    assert rules.check("l", None, "localhost", 80, ip("127.0.0.1")) is Verdict.ALLOW
    assert rules.check("l", None, "evil", 80, ip("10.1.2.3")) is Verdict.DENY


def test_listener_and_user_scoping() -> None:
    rules = router({"action": "deny", "listeners": ["public"], "users": ["guest"]})
    assert rules.check("public", "guest", "x", 1, None) is Verdict.DENY
    assert rules.check("public", "alice", "x", 1, None) is Verdict.ALLOW
    assert rules.check("internal", "guest", "x", 1, None) is Verdict.ALLOW


def test_own_addresses() -> None:
    rules = router(own=(("127.0.0.1", 8080), ("0.0.0.0", 3128)))
    assert rules.is_own_address(ip("127.0.0.1"), 8080)
    assert not rules.is_own_address(ip("127.0.0.1"), 8081)
    assert rules.is_own_address(ip("127.0.0.5"), 3128)
    assert not rules.is_own_address(ip("93.184.216.34"), 8080)
