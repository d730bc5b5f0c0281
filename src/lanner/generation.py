"""A config generation: everything one config builds for the connections it admits.

A connection keeps, from accept to close, the `ListenerRuntime` that admitted
it (its listener's settings, limits, routes and certificates) and through it
the generation's `Services` (rules, users, intercept rules, analysis
settings). `build` makes a complete generation from a validated config; what
every generation shares is carried over from the one before (resolver,
recorder, backend pools, vendors, connection ids, the CA's leaf issuer,
listening sockets). What can fail (a certificate, the CA, an address to bind)
fails in `build`, before anything running is touched; `discard` gives back
what it bound. `activate` then makes it the generation new connections get,
in one synchronous step. This module never changes a generation that a
connection may already hold.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import ssl
from dataclasses import dataclass, field

from lanner.config.model import Config, ListenerConfig, split_hostport
from lanner.entry.base import EntryProtocol
from lanner.entry.forward import ForwardEntry
from lanner.entry.proxy_header import ProxyHeaderEntry
from lanner.entry.reverse import ReverseSession
from lanner.entry.router import RouterEntry
from lanner.entry.tcp import TcpEntry
from lanner.entry.tls_terminate import TlsEntry
from lanner.net.listener import Acceptor, ListenerRuntime, Services
from lanner.net.resolver import Resolver
from lanner.record.recorder import Sampler
from lanner.route.auth import Authenticator
from lanner.route.params import ParamRules
from lanner.route.rules import Router
from lanner.tls.ca import CaError, CertificateAuthority
from lanner.tls.leaves import LeafIssuer
from lanner.tls.policy import Interception
from lanner.tls.sni_certs import CertificateError, SniCertificates
from lanner.upstream.registry import Upstreams
from lanner.upstream.vendors import Vendors

_ENTRIES: dict[str, type[EntryProtocol]] = {
    "forward": ForwardEntry,
    "tcp": TcpEntry,
    "router": RouterEntry,
    "tls": TlsEntry,
    "reverse": ReverseSession,
}


class BuildError(Exception):
    """A valid config that cannot run as it is: each problem is `path: reason`."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


@dataclass
class Generation:
    config: Config
    services: Services
    runtimes: list[ListenerRuntime]
    opened: list[Acceptor] = field(default_factory=list)  # addresses bound for this generation

    def acceptors(self) -> dict[tuple[str, int], Acceptor]:
        return {split_hostport(runtime.config.bind): runtime.acceptor for runtime in self.runtimes}

    def discard(self) -> None:
        """This generation will not run: close the addresses it bound."""
        for acceptor in self.opened:
            acceptor.close()

    def activate(self, previous: Generation | None) -> list[Acceptor]:
        """Give new connections this generation from now on; returns the addresses no longer listened on.

        Synchronous, so no connection is accepted halfway: the running generation's servers stop
        accepting here, this one's start in `serve` (meanwhile the kernel's backlog holds clients).
        """
        if previous is not None:
            self._reconfigure_shared()
        for runtime in self.runtimes:
            runtime.acceptor.pause(runtime)
        kept = {runtime.acceptor for runtime in self.runtimes}
        return [r.acceptor for r in previous.runtimes if r.acceptor not in kept] if previous else []

    async def serve(self) -> None:
        for runtime in self.runtimes:
            await runtime.acceptor.serve(runtime, functools.partial(entry_for, runtime))

    def _reconfigure_shared(self) -> None:
        """What all generations share follows the new config (each keeps its own state across it)."""
        config, services = self.config, self.services
        if services.upstreams is not None:
            services.upstreams.reconfigure(config.pools)
        elif config.pools:
            services.upstreams = Upstreams(config.pools)
            services.upstreams.start()
        if services.vendors is not None:
            services.vendors.reconfigure(config.vendors)
        elif config.vendors.providers:
            services.vendors = Vendors(config.vendors)
            services.vendors.start()
        services.resolver.ttl = config.dns_cache_ttl
        recorder = services.recorder
        if recorder is not None:  # read per exchange and per new tap; the writer's settings need a restart
            recorder.sampler = Sampler(config.record)
            recorder.capacity = config.record.queue
            recorder.max_body = int(config.record.max_body)


def services_for(config: Config, previous: Generation | None, worker: int | None = None) -> Services:
    """The services a generation's connections share: its own rules, users and intercept rules; the rest kept.

    The first generation's (no `previous`) also gets its resolver and, if configured, its backend
    pools and vendors; later ones keep those (`Generation.activate` reconfigures them).
    """
    own = [split_hostport(listener.bind) for listener in config.listeners]
    router = Router(config.rules, own)
    auth = Authenticator(config.users, required=bool(config.users), params=param_rules(config))
    if previous is None:
        services = Services(router=router, resolver=Resolver(config.dns_cache_ttl), auth=auth, worker=worker)
        if config.pools:
            services.upstreams = Upstreams(config.pools)
        if config.vendors.providers:
            services.vendors = Vendors(config.vendors)
    else:
        services = dataclasses.replace(previous.services, router=router, auth=auth)
    services.log_connections = config.log.connections
    services.splice_after_bytes = config.splice_after_bytes
    services.analysis = config.analysis
    services.interception = _interception(config, previous) if config.intercept else None
    return services


def build(config: Config, services: Services, previous: Generation | None, reuse_port: bool) -> Generation:
    """Every listener's runtime, on the running generation's address where it has one, else bound now.

    Raises BuildError naming every problem (certificates, addresses) with nothing left bound.
    """
    running = previous.acceptors() if previous is not None else {}
    problems: list[str] = []
    runtimes: list[ListenerRuntime] = []
    opened: list[Acceptor] = []
    names: dict[tuple[str, int], str] = {}
    try:
        for index, listener in enumerate(config.listeners):
            where = f"listeners.{index}"
            address = split_hostport(listener.bind)
            if address in names:
                problems.append(f"{where}.bind: {listener.bind} is listener {names[address]!r}'s address too")
                continue
            names[address] = listener.name
            try:
                certificates = SniCertificates(listener.certificates) if listener.certificates else None
            except CertificateError as exc:
                problems.append(f"{where}.certificates: {exc}")
                continue
            acceptor = running.get(address)
            if acceptor is None:
                try:
                    acceptor = Acceptor(listener.bind, reuse_port)
                except OSError as exc:
                    problems.append(f"{where}.bind: cannot listen on {exc.strerror or exc}")
                    continue
                opened.append(acceptor)
            runtime = ListenerRuntime(
                listener,
                config.limits_for(listener),
                services,
                config.analyze_for(listener),
                acceptor=acceptor,
            )
            runtime.certificates = certificates
            runtimes.append(runtime)
    except BaseException:  # anything unforeseen: the addresses bound so far are not left open
        for acceptor in opened:
            acceptor.close()
        raise
    generation = Generation(config, services, runtimes, opened)
    if problems:
        generation.discard()
        raise BuildError(problems)
    return generation


def entry_for(runtime: ListenerRuntime) -> EntryProtocol:
    """The protocol for a connection just accepted: it keeps `runtime` (its generation) to the end."""
    entry = _ENTRIES[runtime.config.type]
    if runtime.config.proxy_protocol is None:
        return entry(runtime)
    return ProxyHeaderEntry(runtime, lambda: entry(runtime))


def describe(listener: ListenerConfig) -> str:
    if listener.type == "tcp":
        return f"tcp listener {listener.name!r} on {listener.bind} forwards to {listener.target}"
    if listener.type == "router":
        return f"router listener {listener.name!r} on {listener.bind} routes by SNI and Host"
    if listener.type == "tls":
        return f"tls listener {listener.name!r} on {listener.bind} terminates TLS"
    if listener.type == "reverse":
        scheme = "https" if listener.certificates else "http"
        return f"reverse listener {listener.name!r} on {listener.bind} ({scheme}) routes to backend pools"
    accepts = []
    if "http" in listener.protocols:
        accepts += ["http", "connect"]
    if "socks4" in listener.protocols:
        accepts += ["socks4", "socks4a"]
    if "socks5" in listener.protocols:
        accepts.append("socks5")
    return f"forward listener {listener.name!r} on {listener.bind} accepts {', '.join(accepts)}"


def param_rules(config: Config) -> ParamRules | None:
    """What usernames may carry; None where no vendors are configured (names are taken whole)."""
    vendors = config.vendors
    if not vendors.providers:
        return None
    pools = [pool.name for pool in vendors.all_pools]
    return ParamRules(pools, [provider.name for provider in vendors.providers], vendors.max_ttl)


def _interception(config: Config, previous: Generation | None) -> Interception:
    """The intercept rules over the CA's leaf issuer: the running one while the CA and cache stay the same.

    Hosts found to pin their certificates stay passed through across reloads.
    """
    running = previous.services.interception if previous is not None else None
    same_ca = previous is not None and (previous.config.ca_dir, previous.config.tls.leaf_cache) == (
        config.ca_dir,
        config.tls.leaf_cache,
    )
    if running is not None and same_ca:
        issuer = running.issuer
    else:
        try:
            ca = CertificateAuthority.load_or_create(config.ca_dir)  # created on first use
        except CaError as exc:
            raise BuildError([f"tls.ca_dir: {exc}"]) from exc
        issuer = LeafIssuer(ca, os.path.join(config.ca_dir, "leaves"), config.tls.leaf_cache)
    try:
        interception = Interception(config.intercept, config.tls, issuer)
    except (OSError, ssl.SSLError) as exc:  # an intercept rule's ca_file
        raise BuildError([f"intercept: {exc}"]) from exc
    if running is not None:
        interception.failures.counts = running.failures.counts
    return interception
