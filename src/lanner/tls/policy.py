"""Which tunnels are intercepted, how their upstreams are verified, which hosts refuse us.

`Interception` is shared by a process's listeners: the rules (first match
wins), the leaf issuer, one client-side `SSLContext` per (verify, CA file)
for upstream connections, and a count of failed client handshakes per host
that turns a host which keeps refusing lanner's certificate (certificate
pinning) into a passed-through one.
"""

from __future__ import annotations

import logging
import ssl
from collections import OrderedDict
from dataclasses import dataclass

from lanner.config.model import InterceptRule, TlsConfig
from lanner.route.rules import Criteria
from lanner.tls.leaves import LeafIssuer

log = logging.getLogger("lanner")

UPSTREAM_ALPN = ["http/1.1"]
PINNED_HOSTS_KEPT = 10_000


@dataclass(frozen=True, slots=True)
class _CompiledIntercept:
    rule: InterceptRule
    criteria: Criteria


class HandshakeFailures:
    """Failed client handshakes per host; past the threshold the host is passed through."""

    def __init__(self, threshold: int, kept: int = PINNED_HOSTS_KEPT) -> None:
        self.threshold = threshold
        self.kept = kept
        self.counts: OrderedDict[str, int] = OrderedDict()

    def passed_through(self, host: str) -> bool:
        return self.counts.get(host, 0) >= self.threshold

    def failed(self, host: str, reason: str) -> None:
        count = self.counts.pop(host, 0) + 1
        self.counts[host] = count
        if len(self.counts) > self.kept:
            self.counts.popitem(last=False)
        if count == self.threshold:
            log.warning(
                "client keeps refusing lanner's certificate: passing the host through un-intercepted",
                extra={"fields": {"host": host, "failures": count, "reason": reason}},
            )


class Interception:
    def __init__(self, rules: list[InterceptRule], config: TlsConfig, issuer: LeafIssuer) -> None:
        self.rules = tuple(
            _CompiledIntercept(rule, Criteria.compile(rule.hosts, rule.ports, rule.listeners, rule.users))
            for rule in rules
        )
        self.issuer = issuer
        self.failures = HandshakeFailures(config.pinning_failures)
        self._upstream: dict[tuple[bool, str | None], ssl.SSLContext] = {}

    def rule_for(self, listener: str, user: str | None, host: str, port: int) -> InterceptRule | None:
        """The rule intercepting this tunnel, or None to leave it a bypassed tunnel."""
        for compiled in self.rules:
            if compiled.criteria.matches(listener, user, host.lower(), port):
                return compiled.rule if compiled.rule.action == "intercept" else None
        return None

    def upstream_context(self, rule: InterceptRule) -> ssl.SSLContext:
        key = (rule.verify, rule.ca_file)
        context = self._upstream.get(key)
        if context is None:
            context = self._upstream[key] = upstream_context(rule.verify, rule.ca_file)
        return context


def upstream_context(
    verify: bool, ca_file: str | None, alpn: list[str] | None = UPSTREAM_ALPN
) -> ssl.SSLContext:
    """Client side: the system trust store (plus `ca_file`), or no verification at all."""
    context = ssl.create_default_context()
    if ca_file:
        context.load_verify_locations(cafile=ca_file)
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if alpn:
        context.set_alpn_protocols(alpn)
    return context
