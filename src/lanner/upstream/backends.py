"""A backend pool's state: who is eligible, outlier ejection, draining, breakers, retry budget.

A backend takes new requests when it is healthy (active checks), not
ejected (passive outlier detection), not drained, and under its breaker
limits. Everything here runs on the event loop and never blocks; time is
passed in (`time.monotonic()` seconds) so that the rules read as arithmetic.

Outlier ejection: `consecutive_5xx` 5xx answers in a row (gateway failures
count as 5xx too) or `consecutive_gateway_failures` connect/reset/timeout
failures in a row eject a backend for `base_ejection_time` times the number
of times it has been ejected (the count decays by one for every base time it
stays in), capped at `max_ejection_time`; at most `max_ejection_percent` of
the pool is ejected at once, but always at least one backend may be. An
ejected backend returns when its time is up or when an active check passes.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import deque
from typing import TYPE_CHECKING

from lanner.config.pools import BackendConfig, PoolConfig
from lanner.config.types import split_hostport
from lanner.control import metrics_upstream
from lanner.upstream.balance import Strategy, make_strategy

if TYPE_CHECKING:
    from lanner.upstream.conns import BackendConn

log = logging.getLogger("lanner")

LATENCY_WEIGHT = 0.2  # of each new sample in a smoothed latency (backends' responses, vendors' handshakes)


def smoothed(previous: float | None, sample: float) -> float:
    """An exponentially weighted moving average: recent samples count most."""
    return sample if previous is None else previous + LATENCY_WEIGHT * (sample - previous)


class Backend:
    __slots__ = (
        "pool",
        "key",
        "host",
        "port",
        "weight",
        "active",
        "connections",
        "idle",
        "waiters",
        "healthy",
        "check_streak",
        "ejected_until",
        "ejections",
        "returned_at",
        "consecutive_5xx",
        "consecutive_gateway",
        "drained_by_config",
        "drained_by_admin",
        "removed",
        "requests",
        "failures",
        "latency",
    )

    def __init__(self, pool: Pool, config: BackendConfig) -> None:
        self.pool = pool
        self.key = config.address
        self.host, self.port = split_hostport(config.address)
        self.weight = config.weight
        self.active = 0  # requests in flight
        self.connections = 0  # open connections, idle ones included
        self.idle: deque[BackendConn] = deque()  # kept-alive, most recently used last
        # Requests waiting for a connection: their futures and the client a PROXY header names.
        self.waiters: deque[tuple[asyncio.Future[BackendConn | None], tuple[str, int] | None]] = deque()
        self.healthy = True  # by active checks; true until a check says otherwise
        self.check_streak = 0  # passes (>0) or failures (<0) in a row
        self.ejected_until = 0.0
        self.ejections = 0
        self.returned_at = 0.0
        self.consecutive_5xx = 0
        self.consecutive_gateway = 0
        self.drained_by_config = config.drain
        self.drained_by_admin = False
        self.removed = False  # by a reload
        self.requests = 0
        self.failures = 0
        self.latency: float | None = None  # seconds to a response head, smoothed (EWMA)

    @property
    def draining(self) -> bool:
        return self.drained_by_config or self.drained_by_admin or self.removed

    def eligible(self, now: float) -> bool:
        return self.healthy and not self.draining and self.ejected_until <= now

    def state(self, now: float) -> str:
        if self.draining:
            return "draining"
        if not self.healthy:
            return "down"
        if self.ejected_until > now:
            return "ejected"
        return "up"

    def observe_latency(self, seconds: float) -> None:
        """A response head arrived `seconds` after its request went out (the admin API shows the EWMA)."""
        self.latency = smoothed(self.latency, seconds)

    def describe(self, now: float) -> dict[str, object]:
        """For logs and the admin API."""
        return {
            "pool": self.pool.name,
            "backend": self.key,
            "state": self.state(now),
            "weight": self.weight,
            "active": self.active,
            "connections": self.connections,
            "idle": len(self.idle),
            "ejections": self.ejections,
            "requests": self.requests,
            "failures": self.failures,
            "latency_ms": None if self.latency is None else round(self.latency * 1000, 3),
        }


class Pool:
    def __init__(self, config: PoolConfig, rng: random.Random | None = None) -> None:
        self.config = config
        self.name = config.name
        self.strategy: Strategy = make_strategy(config.strategy, rng)
        self.backends: list[Backend] = [Backend(self, backend) for backend in config.backends]
        self.active = 0  # requests in flight over the whole pool
        self.retries = 0  # of which retries
        self.saturated = False  # the last choice found only backends at max_requests
        self._eligible: list[Backend] | None = None
        self._eligible_until = 0.0  # an ejection ends then: compute the list again

    def reconfigure(self, config: PoolConfig) -> None:
        """A reloaded config: backends kept by address keep their state; drain set by the admin stays."""
        known = {backend.key: backend for backend in self.backends}
        backends = []
        for item in config.backends:
            backend = known.pop(item.address, None) or Backend(self, item)
            backend.weight = item.weight
            backend.drained_by_config = item.drain
            backends.append(backend)
        for gone in known.values():
            gone.removed = True  # its requests in flight finish; their connections are not kept
            close_idle(gone)
        if config.health is None:
            for backend in backends:  # no check is left to bring a backend that is down back up
                backend.healthy, backend.check_streak = True, 0
        if config.strategy != self.config.strategy:
            self.strategy = make_strategy(config.strategy)
        self.config = config
        self.backends = backends
        self.changed()

    def changed(self) -> None:
        self._eligible = None

    def eligible(self, now: float) -> list[Backend]:
        if self._eligible is None or now >= self._eligible_until:
            self._eligible = [backend for backend in self.backends if backend.eligible(now)]
            pending = [b.ejected_until for b in self.backends if b.ejected_until > now]
            self._eligible_until = min(pending, default=float("inf"))
        return self._eligible

    def choose(
        self, now: float, hash_key: bytes | None, tried: list[Backend] | None = None
    ) -> Backend | None:
        """A backend for a request, or None (then `saturated` says whether breakers were the reason)."""
        candidates = self.eligible(now)
        if tried:
            candidates = [backend for backend in candidates if backend not in tried]
        limit = self.config.breaker.max_requests
        self.saturated = False
        if any(backend.active >= limit for backend in candidates):
            self.saturated = True
            candidates = [backend for backend in candidates if backend.active < limit]
        if not candidates:
            return None
        return self.strategy.pick(candidates, hash_key)

    def may_retry(self) -> bool:
        """The retry budget: retries in flight stay under a share of the requests in flight."""
        retry = self.config.retries
        return self.retries < max(retry.min_concurrency, retry.budget * self.active)

    def find(self, address: str) -> Backend | None:
        return next((backend for backend in self.backends if backend.key == address), None)

    # -- passive outlier detection --

    def answered(self, backend: Backend, status: int, now: float | None = None) -> None:
        backend.consecutive_gateway = 0
        if status < 500:
            backend.consecutive_5xx = 0
            return
        if now is None:
            now = time.monotonic()
        backend.failures += 1
        backend.consecutive_5xx += 1
        limit = self.config.outlier.consecutive_5xx
        if limit and backend.consecutive_5xx >= limit:
            self.eject(backend, now, f"{backend.consecutive_5xx} answers 5xx in a row")

    def gateway_failed(self, backend: Backend, now: float, why: str) -> None:
        backend.failures += 1
        backend.consecutive_gateway += 1
        backend.consecutive_5xx += 1
        outlier = self.config.outlier
        if outlier.consecutive_gateway_failures and backend.consecutive_gateway >= (
            outlier.consecutive_gateway_failures
        ):
            self.eject(backend, now, f"{backend.consecutive_gateway} gateway failures in a row ({why})")
        elif outlier.consecutive_5xx and backend.consecutive_5xx >= outlier.consecutive_5xx:
            self.eject(backend, now, f"{backend.consecutive_5xx} failures in a row ({why})")

    def eject(self, backend: Backend, now: float, why: str) -> None:
        if backend.ejected_until > now:
            return
        outlier = self.config.outlier
        ejected = sum(1 for b in self.backends if b.ejected_until > now)
        allowed = max(1, len(self.backends) * outlier.max_ejection_percent // 100)
        if ejected >= allowed:
            log.warning(
                "backend not ejected: the pool's ejection cap is reached",
                extra={"fields": {"pool": self.name, "backend": backend.key, "why": why, "ejected": ejected}},
            )
            return
        base = outlier.base_ejection_time
        if backend.returned_at and base > 0:  # a backend that stayed in long enough is forgiven
            backend.ejections = max(0, backend.ejections - int((now - backend.returned_at) // base))
        backend.ejections += 1
        seconds = min(base * backend.ejections, max(outlier.max_ejection_time, base))
        backend.ejected_until = now + seconds
        backend.returned_at = backend.ejected_until
        backend.consecutive_5xx = backend.consecutive_gateway = 0
        close_idle(backend)
        self.changed()
        metrics_upstream.ejected(self.name, backend.key)
        log.warning(
            "backend ejected",
            extra={"fields": {"pool": self.name, "backend": backend.key, "why": why, "seconds": seconds}},
        )

    # -- active health checks --

    def checked(self, backend: Backend, passed: bool, now: float, detail: str) -> None:
        health = self.config.health
        assert health is not None
        streak = backend.check_streak
        backend.check_streak = (max(streak, 0) + 1) if passed else (min(streak, 0) - 1)
        if passed and backend.ejected_until > now:
            backend.ejected_until = now  # a passing check brings an ejected backend back
            backend.returned_at = now
            self.changed()
            log.info("backend returned", extra={"fields": {"pool": self.name, "backend": backend.key}})
        if not backend.healthy and backend.check_streak >= health.rise:
            backend.healthy = True
            self.changed()
            log.info("backend up", extra={"fields": {"pool": self.name, "backend": backend.key}})
        elif backend.healthy and -backend.check_streak >= health.fall:
            backend.healthy = False
            close_idle(backend)
            self.changed()
            log.warning(
                "backend down",
                extra={"fields": {"pool": self.name, "backend": backend.key, "why": detail}},
            )

    # -- draining --

    def drain(self, address: str, on: bool = True) -> bool:
        """Put a backend in drain (or take it out); False if the pool has no such backend."""
        backend = self.find(address)
        if backend is None:
            return False
        backend.drained_by_admin = on
        if on:
            close_idle(backend)
        self.changed()
        log.info(
            "backend drained" if on else "backend undrained",
            extra={"fields": {"pool": self.name, "backend": address}},
        )
        return True


def close_idle(backend: Backend) -> None:
    while backend.idle:
        backend.idle.pop().transport.close()
