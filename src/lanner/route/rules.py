"""Destination rules: allow or deny by host glob, CIDR, port, listener, user and client address.

Rules are evaluated in order and the first whose criteria all match decides;
with no match the destination is allowed. A rule with CIDRs needs the address
a name resolves to; `check` says so (`NEED_ADDRESS`) instead of resolving, so
a name denied by an earlier rule is never looked up. Destinations that are
lanner's own listening addresses are always refused (no proxy loops).
"""

from __future__ import annotations

import fnmatch
import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum, auto

from lanner.config.model import Rule

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class Verdict(Enum):
    ALLOW = auto()
    DENY = auto()
    NEED_ADDRESS = auto()


@dataclass(frozen=True, slots=True)
class Criteria:
    """Host globs, ports, listeners and users, compiled; an empty criterion matches anything."""

    host_pattern: re.Pattern[str] | None
    ports: tuple[tuple[int, int], ...]
    listeners: frozenset[str]
    users: frozenset[str]

    @classmethod
    def compile(
        cls, hosts: Iterable[str], ports: Iterable[int | str], listeners: Iterable[str], users: Iterable[str]
    ) -> Criteria:
        globs = list(hosts)
        pattern = None
        if globs:
            pattern = re.compile("|".join(fnmatch.translate(glob.lower()) for glob in globs), re.IGNORECASE)
        ranges = []
        for spec in ports:
            low, _, high = str(spec).partition("-")
            ranges.append((int(low), int(high or low)))
        return cls(pattern, tuple(ranges), frozenset(listeners), frozenset(users))

    def matches(self, listener: str, user: str | None, host: str, port: int) -> bool:
        if self.listeners and listener not in self.listeners:
            return False
        if self.users and user not in self.users:
            return False
        if self.ports and not any(low <= port <= high for low, high in self.ports):
            return False
        return self.host_pattern is None or self.host_pattern.fullmatch(host) is not None


@dataclass(frozen=True, slots=True)
class _CompiledRule:
    allow: bool
    criteria: Criteria
    cidrs: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]
    clients: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]


def _compile(rule: Rule) -> _CompiledRule:
    criteria = Criteria.compile(rule.hosts, rule.ports, rule.listeners, rule.users)
    return _CompiledRule(
        allow=rule.action == "allow", criteria=criteria, cidrs=tuple(rule.cidrs), clients=tuple(rule.clients)
    )


class Router:
    def __init__(self, rules: Iterable[Rule], own_addresses: Iterable[tuple[str, int]]) -> None:
        self._rules = tuple(_compile(rule) for rule in rules)
        self.has_rules = bool(self._rules)
        self.by_client = any(rule.clients for rule in self._rules)  # callers pass the client address
        self._own_ports: dict[int, set[str]] = {}
        for host, port in own_addresses:
            self._own_ports.setdefault(port, set()).add(host)

    def check(
        self,
        listener: str,
        user: str | None,
        host: str,
        port: int,
        address: IPAddress | None,
        client: IPAddress | None = None,
    ) -> Verdict:
        for rule in self._rules:
            if not rule.criteria.matches(listener, user, host, port):
                continue
            if rule.clients and (client is None or not any(client in net for net in rule.clients)):
                continue
            if rule.cidrs:
                if address is None:
                    return Verdict.NEED_ADDRESS
                if not any(address in cidr for cidr in rule.cidrs):
                    continue
            return Verdict.ALLOW if rule.allow else Verdict.DENY
        return Verdict.ALLOW

    def listens_on_port(self, port: int) -> bool:
        return port in self._own_ports

    def is_own_address(self, address: IPAddress, port: int) -> bool:
        hosts = self._own_ports.get(port)
        if not hosts:
            return False
        text = str(address)
        if text in hosts:
            return True
        wildcard = "0.0.0.0" in hosts or "::" in hosts
        return wildcard and (address.is_loopback or address.is_unspecified)
