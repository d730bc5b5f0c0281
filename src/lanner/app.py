"""The running gateway: binds the configured listeners and serves until told to stop.

Shutdown (SIGINT/SIGTERM): stop accepting, give open connections
`shutdown_grace` seconds to finish, then abort what is left; exit code 0.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
import time
from collections.abc import Callable

from lanner import logs
from lanner.config import ConfigError, load_config
from lanner.config.model import Config, ListenerConfig, split_hostport
from lanner.config.pools import ReverseRoute
from lanner.control.plane import ControlPlane
from lanner.entry.base import EntryProtocol
from lanner.entry.forward import ForwardEntry
from lanner.entry.proxy_header import ProxyHeaderEntry
from lanner.entry.reverse import ReverseSession
from lanner.entry.router import RouterEntry
from lanner.entry.tcp import TcpEntry
from lanner.entry.tls_terminate import TlsEntry
from lanner.errors import Outcome
from lanner.net.listener import ListenerRuntime, Services
from lanner.net.resolver import Resolver
from lanner.record.recorder import Recorder
from lanner.record.retention import Retention
from lanner.record.sqlite import SqliteStore
from lanner.record.writer import WriterProcess
from lanner.route.auth import Authenticator
from lanner.route.params import ParamRules
from lanner.route.reverse import ReverseRoutes
from lanner.route.rules import Router
from lanner.tls.ca import CaError, CertificateAuthority
from lanner.tls.leaves import LeafIssuer
from lanner.tls.policy import Interception
from lanner.tls.sni_certs import CertificateError, SniCertificates
from lanner.upstream.registry import Upstreams
from lanner.upstream.vendors import Vendors

log = logging.getLogger("lanner")

SWEEP_INTERVAL_MAX = 5.0
_ENTRIES: dict[str, type[EntryProtocol]] = {
    "forward": ForwardEntry,
    "tcp": TcpEntry,
    "router": RouterEntry,
    "tls": TlsEntry,
    "reverse": ReverseSession,
}


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


class Gateway:
    def __init__(self, config: Config, worker: int | None = None, config_path: str | None = None) -> None:
        self.config = config
        self.config_path = config_path  # re-read on SIGHUP
        self.announce = not worker  # the only process, or the first worker
        self.listeners: list[ListenerRuntime] = []
        self.stopping = asyncio.Event()
        own = [split_hostport(item.bind) for item in config.listeners]
        self.services = Services(
            router=Router(config.rules, own),
            resolver=Resolver(config.dns_cache_ttl),
            auth=Authenticator(config.users, required=bool(config.users), params=_param_rules(config)),
            log_connections=config.log.connections,
            worker=worker,
            splice_after_bytes=config.splice_after_bytes,
            analysis=config.analysis,
        )
        if config.intercept:
            self.services.interception = _interception(config)
        if config.pools:
            self.services.upstreams = Upstreams(config.pools)
        if config.vendors.providers:
            self.services.vendors = Vendors(config.vendors)
        self.retention: Retention | None = None
        self.control: ControlPlane | None = None  # the admin API: in the only process, or worker 0
        if config.record.enabled:
            path = config.store_path
            writer = WriterProcess(config.record, path, config.log.format, config.log.level)
            self.services.recorder = Recorder(config.record, writer, self.services.tag)
            if not worker:  # one process prunes for all: the only one, or worker 0
                self.retention = Retention(config.record.retention, lambda: SqliteStore(path))

    async def start(self) -> None:
        if self.services.recorder is not None:
            self.services.recorder.start()
        if self.retention is not None:
            self.retention.start()
        if self.services.upstreams is not None:
            self.services.upstreams.start()
        if self.services.vendors is not None:
            self.services.vendors.start()
        reuse_port = self.config.workers > 1
        for listener_config in self.config.listeners:
            runtime = ListenerRuntime(
                listener_config,
                self.config.limits_for(listener_config),
                self.services,
                self.config.analyze_for(listener_config),
            )
            if listener_config.certificates:
                runtime.certificates = SniCertificates(listener_config.certificates)
            await runtime.bind(_factory(_ENTRIES[listener_config.type], runtime), reuse_port)
            self.listeners.append(runtime)
            if self.announce:
                print(f"lanner: {describe(listener_config)}", flush=True)
        if self.config.admin.enabled and not self.services.worker:
            self.control = ControlPlane(self)
            self.services.events = self.control.hub
            url = self.control.start()
            print(f"lanner: admin API and web UI on {url}/ (metrics at {url}/metrics)", flush=True)

    async def serve(self) -> None:
        """Start, serve until SIGINT/SIGTERM, shut down gracefully."""
        await self.start()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self.stopping.set)
        loop.add_signal_handler(signal.SIGHUP, self.reload)
        sweeper = loop.call_later(self._sweep_interval(), self._sweep)
        try:
            await self.stopping.wait()
        finally:
            sweeper.cancel()
            await self.shutdown()

    async def shutdown(self) -> None:
        for runtime in self.listeners:
            if runtime.server is not None:
                runtime.server.close()
        live = self._live()
        if live:
            log.info("draining", extra={"fields": {"open": live, "grace": self.config.shutdown_grace}})
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.config.shutdown_grace
        # Polling at 20 Hz for at most the grace period is simpler than wiring an
        # event through every connection's end, and costs nothing while serving.
        while self._live() and loop.time() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        for runtime in self.listeners:
            for conn in list(runtime.live):
                conn.abort(Outcome.SHUTDOWN, "closed at shutdown after the grace period")
        if self.services.upstreams is not None:
            self.services.upstreams.stop()
        if self.services.vendors is not None:
            await self.services.vendors.stop()
        if self.control is not None:
            await self.control.stop()
        await asyncio.sleep(0)  # let connection_lost callbacks write their log lines
        logs.flush()
        if self.retention is not None:
            await asyncio.to_thread(self.retention.stop)
        if self.services.recorder is not None:
            await asyncio.to_thread(self.services.recorder.stop)

    def reload(self) -> None:
        """SIGHUP: re-read the config file; apply its pools, reverse routes, vendors and analysis settings.

        Until the control plane's full hot reload lands, other changes (listeners, rules, recording)
        need a restart; they are named in the log. Connections open now keep the routes they started with.
        """
        if self.config_path is None:
            log.warning("config not reloaded: lanner runs on its embedded defaults")
            return
        try:
            config = load_config(self.config_path)
        except ConfigError as exc:
            log.error("config not reloaded: the file is invalid", extra={"fields": {"errors": str(exc)}})
            return
        upstreams = self.services.upstreams
        if config.pools and upstreams is None:
            log.error("config not reloaded: pools were added to a process started without them (restart)")
            return
        if config.vendors.providers and self.services.vendors is None:
            log.error("config not reloaded: providers were added to a process started without them (restart)")
            return
        if upstreams is not None:
            upstreams.reconfigure(config.pools)
        self._reload_vendors(config)
        self.services.analysis = config.analysis  # new connections analyze by the new settings
        by_name = {listener.name: listener for listener in config.listeners}
        for runtime in self.listeners:
            new = by_name.get(runtime.name)
            if new is not None and new.type == runtime.config.type == "reverse":
                runtime.reverse_routes = ReverseRoutes([r for r in new.routes if isinstance(r, ReverseRoute)])
        ignored = _needs_restart(self.config, config)
        fields = {
            "pools": len(config.pools),
            "providers": len(config.vendors.providers),
            "needs_restart": ignored,
        }
        log.info("config reloaded", extra={"fields": fields})

    def _reload_vendors(self, config: Config) -> None:
        if self.services.vendors is not None:
            self.services.vendors.reconfigure(config.vendors)
        self.services.auth.params = _param_rules(config)

    def _live(self) -> int:
        return sum(len(runtime.live) for runtime in self.listeners)

    def _sweep_interval(self) -> float:
        """A quarter of the shortest timeout: timeouts fire within 125% of their value."""
        shortest = min(
            (min(r.limits.idle_timeout, r.limits.handshake_timeout) for r in self.listeners), default=60.0
        )
        return min(SWEEP_INTERVAL_MAX, shortest / 4)

    def _sweep(self) -> None:
        loop = asyncio.get_running_loop()
        now = time.monotonic()
        for runtime in self.listeners:
            runtime.sweep(now)
        if not self.stopping.is_set():
            loop.call_later(self._sweep_interval(), self._sweep)


def _needs_restart(running: Config, loaded: Config) -> str | None:
    """What a reload changed that only a restart applies (None: nothing)."""
    changed = []
    for key in ("users", "rules", "record", "intercept", "tls", "limits", "log"):
        if getattr(running, key) != getattr(loaded, key):
            changed.append(key)
    strip = [listener.model_copy(update={"routes": []}) for listener in running.listeners]
    if strip != [listener.model_copy(update={"routes": []}) for listener in loaded.listeners]:
        changed.append("listeners")
    return ", ".join(changed) or None


def _param_rules(config: Config) -> ParamRules | None:
    """What usernames may carry; None where no vendors are configured (names are taken whole)."""
    vendors = config.vendors
    if not vendors.providers:
        return None
    pools = [pool.name for pool in vendors.all_pools]
    return ParamRules(pools, [provider.name for provider in vendors.providers], vendors.max_ttl)


def _interception(config: Config) -> Interception:
    """The CA (created on first use), the leaf issuer and the intercept rules."""
    ca = CertificateAuthority.load_or_create(config.ca_dir)
    issuer = LeafIssuer(ca, os.path.join(config.ca_dir, "leaves"), config.tls.leaf_cache)
    return Interception(config.intercept, config.tls, issuer)


def _factory(entry: type[EntryProtocol], runtime: ListenerRuntime) -> Callable[[], EntryProtocol]:
    def inner() -> EntryProtocol:
        return entry(runtime)

    if runtime.config.proxy_protocol is None:
        return inner
    return lambda: ProxyHeaderEntry(runtime, inner)


def run(config: Config, worker: int | None = None, config_path: str | None = None) -> int:
    """Run one gateway process (`worker` numbers it among several) to completion; the exit code."""
    try:
        _runner(Gateway(config, worker, config_path).serve())
    except OSError as exc:
        print(f"lanner: cannot listen: {exc.strerror or exc}", file=sys.stderr, flush=True)
        return 1
    except (CertificateError, CaError) as exc:
        print(f"lanner: {exc}", file=sys.stderr, flush=True)
        return 1
    return 0


def _runner(coro: object) -> None:
    try:
        import uvloop
    except ImportError:  # uvloop is optional where it does not build
        asyncio.run(coro)  # type: ignore[arg-type]
        return
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(coro)  # type: ignore[arg-type]
