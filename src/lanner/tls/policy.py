"""Which tunnels are intercepted, how their upstreams are verified, which hosts refuse us.

`Interception` is shared by a process's listeners: the rules (first match
wins), the leaf issuer, one client-side `SSLContext` per (verify, CA file)
for upstream connections, and a count of failed client handshakes per host
that turns a host which keeps refusing lanner's certificate (certificate
pinning) into a passed-through one.
"""

from __future__ import annotations

import functools
import logging
import os
import ssl
from collections import OrderedDict
from dataclasses import dataclass

from lanner.config.model import InterceptRule, TlsConfig
from lanner.route.rules import Criteria
from lanner.tls.leaves import LeafIssuer

log = logging.getLogger("lanner")

UPSTREAM_ALPN = ["http/1.1"]
SESSIONS_KEPT = 10_000  # upstream TLS sessions remembered for resumption, by server name
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
        for compiled in self.rules:  # built now: loading a trust store takes tens of milliseconds
            if compiled.rule.action == "intercept":
                self.upstream_context(compiled.rule)

    def rule_for(self, listener: str, user: str | None, host: str, port: int) -> InterceptRule | None:
        """The rule intercepting this tunnel, or None to leave it a bypassed tunnel."""
        for compiled in self.rules:
            if compiled.criteria.matches(listener, user, host.lower(), port):
                return compiled.rule if compiled.rule.action == "intercept" else None
        return None

    def upstream_context(self, rule: InterceptRule) -> ResumingContext:
        return shared_upstream_context(rule.verify, rule.ca_file, tuple(UPSTREAM_ALPN))


class ResumingContext(ssl.SSLContext):
    """A client context that offers each server name the TLS session it last handed out.

    A resumed handshake costs the client about half a full one (no certificate chain
    to parse and check). uvloop's `start_tls` makes its SSLObject through `wrap_bio`
    and cannot pass a session, so `wrap_bio` is where the remembered one is offered;
    a server that declines it simply runs a full handshake.
    """

    def __init__(self, protocol: ssl._SSLMethod, kept: int = SESSIONS_KEPT) -> None:
        self.sessions: OrderedDict[str, ssl.SSLSession] = OrderedDict()
        self.kept = kept

    def wrap_bio(
        self,
        incoming: ssl.MemoryBIO,
        outgoing: ssl.MemoryBIO,
        server_side: bool = False,
        server_hostname: str | bytes | None = None,
        session: ssl.SSLSession | None = None,
    ) -> ssl.SSLObject:
        if session is None and isinstance(server_hostname, str):
            session = self.sessions.get(server_hostname)
        return super().wrap_bio(incoming, outgoing, server_side, server_hostname, session)

    def remember(self, server_hostname: str, connection: ssl.SSLObject) -> None:
        """Keep the session a server gave on `connection` (a TLS 1.3 ticket arrives after the handshake)."""
        if connection.session_reused:
            return  # the one offered still serves; reading `.session` costs a copy of it
        session = connection.session
        if session is None or not session.has_ticket:
            return
        self.sessions[server_hostname] = session
        self.sessions.move_to_end(server_hostname)
        if len(self.sessions) > self.kept:
            self.sessions.popitem(last=False)


def _bundle() -> str | None:
    """The system's CA bundle file (`SSL_CERT_FILE` or the platform's), if there is one."""
    paths = ssl.get_default_verify_paths()
    bundle = os.environ.get(paths.openssl_cafile_env) or paths.cafile
    return bundle if bundle and os.path.isfile(bundle) else None


@functools.cache
def shared_upstream_context(verify: bool, ca_file: str | None, alpn: tuple[str, ...]) -> ResumingContext:
    """One context per kind for the whole process: loading a trust store takes tens of ms,
    and remembered sessions are only offered again through the context that got them."""
    return upstream_context(verify, ca_file, list(alpn))


def upstream_context(
    verify: bool, ca_file: str | None, alpn: list[str] | None = UPSTREAM_ALPN
) -> ResumingContext:
    """Client side: the system trust store (plus `ca_file`), or no verification at all.

    The trust store is the bundle file alone: `ssl.create_default_context()` would
    also install OpenSSL 3's directory lookups, which search the certificate directory
    again for every handshake (and do so even without verification, which is why an
    unverified context loads no store at all). Without a bundle file the platform's
    defaults are used as they are.
    """
    context = ResumingContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    else:
        context.verify_mode = ssl.CERT_REQUIRED  # PROTOCOL_TLS_CLIENT's default, said out loud
        context.check_hostname = True
        bundle = _bundle()
        if bundle is not None:
            context.load_verify_locations(cafile=bundle)
        else:
            context.load_default_certs()
        if ca_file:
            context.load_verify_locations(cafile=ca_file)
    if alpn:
        context.set_alpn_protocols(alpn)
    return context
