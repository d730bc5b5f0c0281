"""Tunnels through vendor pools: choose a provider, render its credentials, fail over, stay sticky.

Order of providers for one tunnel:
- with a client session: the session's pin (after an earlier failover) first,
  then the pool's providers by weighted rendezvous hash of the session key --
  every worker and node computes the same order without talking;
- without one: a weighted random order.
Providers that cannot carry the asked geo, or whose breaker is open, whose
ban (from another node) runs, or that are at their limits, are skipped.

Each attempt completes the vendor's handshake before anything is answered.
A refusal is classified by the provider's error table into an action:
`auth` opens its breaker at once (and warns), `session_gone` rotates the vendor
session and retries once, `no_exit` fails over without blame, `target` is the
destination's failure and ends the attempts, `failure` counts towards the
breaker and fails over. The client is told only a generic `Vendor*` error;
what each vendor said goes to the log line and the connection record.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import random
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from lanner.config.types import split_hostport
from lanner.config.vendors import VendorPoolConfig, VendorsConfig
from lanner.control import metrics_upstream
from lanner.errors import (
    VendorBadDestination,
    VendorFailed,
    VendorTargetFailed,
    VendorTimeout,
    VendorUnavailable,
)
from lanner.net.tasks import spawn
from lanner.route.params import RouteParams
from lanner.upstream.backends import smoothed
from lanner.upstream.balance import rendezvous_order
from lanner.upstream.handshake import HandshakeBroken, make_client, open_tunnel
from lanner.upstream.providers import BreakerState, Provider
from lanner.upstream.state import SessionRecord, SessionState
from lanner.upstream.templates import vendor_session_id
from lanner.wire.proxy_client import Refused, wire_host

P = TypeVar("P", bound=asyncio.BaseProtocol)
K = TypeVar("K")
V = TypeVar("V")

log = logging.getLogger("lanner")

_MAINTENANCE_INTERVAL = 1.0
_PRUNE_EVERY = 60  # maintenance rounds between scans of the local session table
_MEMO_MAX = 100_000  # sticky sessions whose hashes, orders and credentials are kept


@dataclass(slots=True)
class Session:
    """A client's sticky session in its current period."""

    key: str  # account, session id and period: what state is kept under
    hash_key: bytes  # what rendezvous hashing orders providers by
    user: str
    client_id: str
    period: int
    ttl: float
    record: SessionRecord


@dataclass(slots=True)
class Attempt:
    provider: Provider
    failure: str = ""
    timed_out: bool = False
    skipped: bool = False  # never reached the vendor (breaker, ban, limit, unusable credentials)
    generation: int = 0  # the session's rotation count this attempt used


class VendorPool:
    def __init__(self, config: VendorPoolConfig, providers: list[Provider]) -> None:
        self.config = config
        self.name = config.name
        self.providers = providers


class Vendors:
    """Every provider and vendor pool, with the session state they share."""

    def __init__(self, config: VendorsConfig, rng: random.Random | None = None) -> None:
        self.providers: dict[str, Provider] = {}
        self.pools: dict[str, VendorPool] = {}
        self.state = SessionState(config.state, config.state_timeout)
        self.rng = rng or random.Random()
        self._maintenance: asyncio.Task[None] | None = None
        self._probing: set[str] = set()
        self._rendered: dict[tuple[Provider, RouteParams, str, int], tuple[str | None, str | None]] = {}
        self._sessions: dict[tuple[str, str, str, float], tuple[bytes, float, str]] = {}
        self._orders: dict[tuple[str, RouteParams, bytes], list[Provider]] = {}
        self.config = config
        self.reconfigure(config)

    def reconfigure(self, config: VendorsConfig) -> None:
        """Apply a reloaded config: unchanged providers keep their breakers; tunnels open stay open."""
        if config.state != self.config.state or config.state_timeout != self.config.state_timeout:
            old_state, self.state = self.state, SessionState(config.state, config.state_timeout)
            spawn(old_state.close(), name="vendors-state-close")
        self.config = config
        self.secret = config.session_secret.encode()
        for memo in (self._rendered, self._sessions, self._orders):
            memo.clear()
        kept = self.providers
        self.providers = {}
        for item in config.providers:
            previous = kept.get(item.name)
            provider = previous if previous is not None and previous.config == item else Provider(item)
            if previous is not None and provider is not previous:
                provider.tunnels = previous.tunnels  # still open: they count towards max_connections
            provider.traffic_probes = config.check_target is None  # else only probes test a half-open one
            self.providers[item.name] = provider
        self.pools = {
            pool.name: VendorPool(pool, [self.providers[name] for name in pool.providers])
            for pool in config.all_pools
        }

    # -- lifecycle --

    def start(self) -> None:
        self._maintenance = spawn(self._maintain(), name="vendors-maintenance")
        metrics_upstream.sample_providers(self.providers.values())

    async def stop(self) -> None:
        if self._maintenance is not None:
            self._maintenance.cancel()
        await self.state.close()

    async def _maintain(self) -> None:
        rounds = 0
        while True:
            await asyncio.sleep(_MAINTENANCE_INTERVAL)
            rounds += 1
            try:
                metrics_upstream.sample_providers(self.providers.values())
                await self._maintain_once(prune=rounds % _PRUNE_EVERY == 0)
            except Exception as exc:  # the loop must outlive one bad round (a reload mid-await, say)
                log.error("vendor maintenance failed", exc_info=exc)

    async def _maintain_once(self, prune: bool) -> None:
        if prune:  # expired entries also go lazily, and the table is bounded: no need to scan often
            self.state.local.prune(time.time())
        now = time.monotonic()
        for name, left in (await self.state.bans(list(self.providers))).items():
            provider = self.providers.get(name)  # a reload may have removed it meanwhile
            if provider is not None:
                provider.banned_until = now + left
        if self.config.check_target is not None:
            for provider in list(self.providers.values()):
                self._probe_if_half_open(provider, now)

    def describe(self) -> list[dict[str, object]]:
        return [provider.describe() for provider in self.providers.values()]

    # -- one tunnel --

    async def dial(
        self,
        pool_name: str,
        user: str,
        params: RouteParams,
        host: str,
        port: int,
        factory: Callable[[], P],
        note: Callable[[str, object], None],
    ) -> tuple[asyncio.Transport, P]:
        """A tunnel to host:port through `pool_name`, or a `Vendor*` error for the client."""
        pool = self.pools.get(params.pool or pool_name)
        if pool is None:  # a reload removed it while a listener started before still names it
            raise VendorUnavailable(f"no vendor pool {params.pool or pool_name!r} since the last reload")
        try:
            wire_host(host, port)
        except ValueError as exc:  # said once, before any vendor is asked (and never naming one)
            raise VendorBadDestination(f"{host}:{port} cannot be sent to a vendor: {exc}") from exc
        session = await self._session(pool, user, params) if params.session else None
        order = self._order(pool, params, session)
        attempts: list[Attempt] = []
        tried = 0  # attempts that reached a vendor (skipped providers do not count)
        rotated = False
        index = 0
        while index < len(order) and tried < pool.config.attempts:
            provider = order[index]
            why_not = None
            if provider.rate is not None and self.state.shared:
                why_not = await self._shared_rate(provider)
            now = time.monotonic()  # no await from here to the probe's start in _try: one probe at most
            why_not = why_not or provider.unavailable(now) or provider.over_rate(now)
            if why_not is not None:
                attempts.append(Attempt(provider, why_not, skipped=True))
                index += 1
                continue
            attempt = Attempt(provider)
            attempts.append(attempt)
            tried += 1
            result = await self._try(provider, params, session, user, host, port, factory, attempt)
            if result is None:  # no answer, or a broken one: already counted against the provider
                index += 1
                continue
            if not isinstance(result, Refused):
                note("provider", provider.name)
                if session is not None and provider is not order[0]:  # failed over: the session moves
                    try:
                        await self.state.pin(session.key, session.record, provider.name)
                    except BaseException:
                        result[0].close()
                        raise
                    note("pinned", provider.name)
                return result
            action = _action(provider, result)
            if action == "session_gone" and session is not None and not rotated:
                rotated = True
                if provider.breaker.state is BreakerState.HALF_OPEN:
                    provider.breaker.probe_inconclusive()  # the retry below is the probe
                await self.state.rotate(session.key, session.record, attempt.generation)
                note("vendor_session_rotated", provider.name)
                continue  # the same provider, with a new vendor session
            self._blame(provider, action, attempt.failure)
            if action == "target":
                _note_attempts(note, attempts)
                raise VendorTargetFailed(f"{provider.name}: {attempt.failure}")
            index += 1
        _note_attempts(note, attempts)
        raise _failure(pool, params, attempts)

    async def _try(
        self,
        provider: Provider,
        params: RouteParams,
        session: Session | None,
        user: str,
        host: str,
        port: int,
        factory: Callable[[], P],
        attempt: Attempt,
    ) -> tuple[asyncio.Transport, P] | Refused | None:
        """The tunnel, the vendor's refusal, or None when it failed to answer (counted here)."""
        breaker = provider.breaker
        probe = breaker.state is BreakerState.HALF_OPEN
        if probe:
            breaker.probe_started()
        if session is not None:
            attempt.generation = session.record.generation
        try:
            username, password = self._credentials(provider, params, session, user)
            client = make_client(provider.config.protocol, host, port, username, password)
        except (
            ValueError
        ) as exc:  # credentials its handshake cannot carry: a config problem, not the vendor's
            if probe:
                breaker.probe_inconclusive()
            attempt.failure = f"credentials cannot be sent: {exc}"
            attempt.skipped = True
            log.error(
                "provider credentials unusable",
                extra={"fields": {"provider": provider.name, "error": str(exc)}},
            )
            return None
        endpoint = provider.endpoint()
        provider.handshakes += 1
        metrics_upstream.handshake(provider.name)
        provider.pending += 1
        started = time.monotonic()
        try:
            result = await open_tunnel(endpoint, client, factory, provider.config.handshake_timeout)
        except asyncio.CancelledError:
            if probe:
                breaker.probe_inconclusive()
            raise
        except TimeoutError:
            attempt.failure = f"no answer from {endpoint[0]}:{endpoint[1]} in time"
            attempt.timed_out = True
        except (OSError, HandshakeBroken) as exc:
            attempt.failure = f"{endpoint[0]}:{endpoint[1]}: {exc}"
        else:
            if isinstance(result, Refused):
                attempt.failure = _describe_refusal(result)
                return result
            provider.breaker.succeeded(time.monotonic())
            provider.latency = smoothed(provider.latency, time.monotonic() - started)
            provider.opened(result[0])
            return result
        finally:
            provider.pending -= 1
        self._blame(provider, "failure", attempt.failure)
        return None

    def _credentials(
        self, provider: Provider, params: RouteParams, session: Session | None, user: str
    ) -> tuple[str | None, str | None]:
        if session is None:
            return self._render(provider, params, session, user)
        key = (provider, params, session.key, session.record.generation)
        rendered = self._rendered.get(key)
        if rendered is None:  # a sticky session renders the same strings for its whole period
            rendered = self._render(provider, params, session, user)
            _remember(self._rendered, key, rendered)
        return rendered

    def _render(
        self, provider: Provider, params: RouteParams, session: Session | None, user: str
    ) -> tuple[str | None, str | None]:
        credentials = provider.credentials
        vendor_session: str | None = None
        ttl = 0.0
        if session is not None:
            generation = str(session.record.generation)
            parts = (provider.name, session.user, session.client_id, str(session.period), generation)
            vendor_session = vendor_session_id(self.secret, parts, provider.config.session)
            ttl = session.ttl
        elif "session" in credentials.required:  # the vendor insists on one: a fresh one per tunnel
            vendor_session = vendor_session_id(self.secret, (secrets.token_hex(8),), provider.config.session)
            ttl = provider.config.ttl.min
        values = credentials.values(user, params, vendor_session, ttl)
        return credentials.render(values)

    def _blame(self, provider: Provider, action: str, failure: str) -> None:
        now = time.monotonic()
        if action == "auth":
            provider.failures += 1
            metrics_upstream.failed(provider.name)
            log.error(  # an operator must act: credentials, balance or whitelist at the vendor
                "vendor refused lanner's account",
                extra={"fields": {"provider": provider.name, "answer": failure}},
            )
            provider.breaker.trip(now, f"the vendor refused lanner's account: {failure}")
            spawn(self.state.ban(provider.name, provider.breaker.reopen_at - now), name="vendors-ban")
        elif action == "target":  # the vendor worked; the destination failed
            provider.breaker.succeeded(now)
        elif action == "no_exit":
            if provider.breaker.state is BreakerState.HALF_OPEN:
                provider.breaker.probe_inconclusive()
        elif action in ("failure", "session_gone"):
            provider.failures += 1
            metrics_upstream.failed(provider.name)
            was_open = provider.breaker.state is BreakerState.OPEN
            provider.breaker.failed(now, failure)
            if not was_open and provider.breaker.state is BreakerState.OPEN:
                spawn(self.state.ban(provider.name, provider.breaker.reopen_at - now), name="vendors-ban")

    # -- sessions and order --

    async def _session(self, pool: VendorPool, user: str, params: RouteParams) -> Session:
        assert params.session is not None
        ttl = params.ttl or pool.config.session_ttl
        memo_key = (pool.name, user, params.session, ttl)
        memo = self._sessions.get(memo_key)
        if memo is None:
            identity = f"{user}\0{params.session}"
            hash_key = hashlib.blake2b(identity.encode(), digest_size=16).digest()
            # Periods start at a per-session phase, so sessions do not all rotate at once.
            phase = int.from_bytes(hash_key[:8], "big") % max(1, int(ttl * 1000)) / 1000
            memo = (hash_key, phase, f"{pool.name}\0{identity}\0{ttl:g}\0")
            _remember(self._sessions, memo_key, memo)
        hash_key, phase, prefix = memo
        period = int((time.time() + phase) // ttl)
        expires = (period + 1) * ttl - phase
        key = f"{prefix}{period}"
        state = self.state
        record = await state.session(key, expires) if state.shared else state.local_session(key, expires)
        return Session(key, hash_key, user, params.session, period, ttl, record)

    def _order(self, pool: VendorPool, params: RouteParams, session: Session | None) -> list[Provider]:
        if session is None:
            return _weighted_shuffle(self._candidates(pool, params), self.rng)
        order_key = (pool.name, params, session.hash_key)
        ordered = self._orders.get(order_key)
        if ordered is None:  # the same for every tunnel of the session: computed once
            ordered = rendezvous_order(self._candidates(pool, params), session.hash_key)
            _remember(self._orders, order_key, ordered)
        pinned = session.record.pinned
        if pinned is not None and ordered[0].name != pinned:
            return sorted(ordered, key=lambda provider: provider.name != pinned)  # stable: the pin first
        return ordered

    def _candidates(self, pool: VendorPool, params: RouteParams) -> list[Provider]:
        candidates = [
            provider
            for provider in pool.providers
            if provider.credentials.serves(params) and params.provider in (None, provider.name)
        ]
        if not candidates:
            raise VendorUnavailable(f"no provider of pool {pool.name!r} serves {_asked(params)}")
        return candidates

    async def _shared_rate(self, provider: Provider) -> str | None:
        limit = provider.config.requests_per_second
        if limit is None or not self.state.shared:
            return None
        count = await self.state.count(provider.name, int(time.time()))
        if count is not None and count > limit:
            return f"{provider.name}: over {limit:g} tunnels/s across nodes"
        return None

    # -- half-open probes --

    def _probe_if_half_open(self, provider: Provider, now: float) -> None:
        breaker = provider.breaker
        if provider.name in self._probing or not (
            breaker.state is BreakerState.HALF_OPEN
            or (breaker.state is BreakerState.OPEN and now >= breaker.reopen_at)
        ):
            return
        if not breaker.allows(now):
            return
        breaker.probe_started()
        self._probing.add(provider.name)
        spawn(self._probe(provider), name=f"vendors-probe-{provider.name}")

    async def _probe(self, provider: Provider) -> None:
        assert self.config.check_target is not None
        host, port = split_hostport(self.config.check_target)
        attempt = Attempt(provider)
        try:
            result = await self._try(provider, RouteParams(), None, "", host, port, asyncio.Protocol, attempt)
            if isinstance(result, Refused):
                self._blame(provider, "failure", attempt.failure)
            elif result is not None:
                result[0].close()
                log.info("provider probe passed", extra={"fields": {"provider": provider.name}})
        finally:
            self._probing.discard(provider.name)


def _remember(memo: dict[K, V], key: K, value: V) -> None:
    if len(memo) >= _MEMO_MAX:  # a bound, not an LRU: refilling costs one hash per live session
        memo.clear()
    memo[key] = value


def _action(provider: Provider, refused: Refused) -> str:
    if refused.stage == "auth":
        return "auth"
    if refused.socks_code is not None:
        return provider.config.action_for_socks(refused.socks_code)
    return provider.config.action_for_status(refused.status)


def _describe_refusal(refused: Refused) -> str:
    if refused.socks_code is not None:
        return f"SOCKS5 {refused.stage} refused: {refused.socks_code:#04x} {refused.reason}"
    headers = "; ".join(f"{name}: {value}" for name, value in refused.headers)
    body = refused.body[:200].decode("utf-8", "replace")
    return f"HTTP {refused.status} {refused.reason} [{headers}] {body!r}"


def _weighted_shuffle(providers: list[Provider], rng: random.Random) -> list[Provider]:
    return sorted(providers, key=lambda provider: rng.random() ** (1 / provider.config.weight), reverse=True)


def _asked(params: RouteParams) -> str:
    asked = {**params.geo, **({"provider": params.provider} if params.provider else {})}
    return ", ".join(f"{key}={value}" for key, value in asked.items()) or "any geo"


def _note_attempts(note: Callable[[str, object], None], attempts: list[Attempt]) -> None:
    note("vendor_attempts", " | ".join(f"{a.provider.name}: {a.failure or 'ok'}" for a in attempts))


def _failure(pool: VendorPool, params: RouteParams, attempts: list[Attempt]) -> Exception:
    tried = [attempt for attempt in attempts if not attempt.skipped]
    detail = "; ".join(f"{attempt.provider.name}: {attempt.failure}" for attempt in attempts)
    if not tried:
        return VendorUnavailable(f"pool {pool.name!r} ({_asked(params)}): {detail or 'no provider'}")
    if all(attempt.timed_out for attempt in tried):
        return VendorTimeout(f"pool {pool.name!r}: {detail}")
    return VendorFailed(f"pool {pool.name!r}: {detail}")
