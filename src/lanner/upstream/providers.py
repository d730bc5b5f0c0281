"""One vendor provider at run time: its breaker, its limits, its endpoints.

The breaker opens after `consecutive_failures` failed handshakes in a row, or
when failures reach `failure_rate` of at least `min_requests` handshakes in
the last `window` seconds, or at once when the vendor refuses lanner's own
credentials. Open, the provider is skipped; after `open_for` (doubling with
each reopening, up to `max_open_for`) it is half-open: one probe -- a CONNECT
to the pool's check target, or else one real tunnel -- decides whether it
closes or opens again. Clocks are passed in, so tests can drive time.
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import logging
from enum import StrEnum

from lanner.config.types import split_hostport
from lanner.config.vendors import ProviderBreaker, ProviderConfig
from lanner.upstream.templates import Credentials

log = logging.getLogger("lanner")


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class Breaker:
    def __init__(self, config: ProviderBreaker, name: str) -> None:
        self.config = config
        self.name = name
        self.state = BreakerState.CLOSED
        self.consecutive = 0
        # Per-second [second, handshakes, failures] over the window: memory stays O(window), not O(rate).
        self.buckets: collections.deque[list[int]] = collections.deque()
        self.in_window = 0
        self.failures_in_window = 0
        self.opened = 0  # times opened since it last closed
        self.reopen_at = 0.0
        self.probing = False  # a half-open probe is in flight
        self.reason = ""

    def allows(self, now: float) -> bool:
        """Whether a tunnel may go through now (in half-open: only the one probe)."""
        if self.state is BreakerState.CLOSED:
            return True
        if self.state is BreakerState.OPEN and now >= self.reopen_at:
            self.state = BreakerState.HALF_OPEN
            self.probing = False
            log.info("provider breaker half-open", extra={"fields": {"provider": self.name}})
        return self.state is BreakerState.HALF_OPEN and not self.probing

    def probe_started(self) -> None:
        self.probing = True

    def probe_inconclusive(self) -> None:
        """The probe ended saying nothing about the provider (no exit for the geo, cancelled)."""
        self.probing = False

    def succeeded(self, now: float) -> None:
        self.consecutive = 0
        self._record(now, failed=False)
        if self.state is BreakerState.HALF_OPEN:  # only the probe closes it (a late success does not)
            self.state = BreakerState.CLOSED
            self.opened = 0
            self.probing = False
            log.info("provider breaker closed", extra={"fields": {"provider": self.name}})

    def failed(self, now: float, reason: str) -> None:
        if self.state is BreakerState.OPEN:
            return  # tunnels begun before it opened: their failures are already the reason it is open
        self.consecutive += 1
        self._record(now, failed=True)
        config = self.config
        if self.state is BreakerState.HALF_OPEN:
            self.trip(now, f"probe failed: {reason}")
        elif self.consecutive >= config.consecutive_failures:
            self.trip(now, f"{self.consecutive} failures in a row, the last: {reason}")
        elif self.in_window >= config.min_requests and (
            self.failures_in_window >= config.failure_rate * self.in_window
        ):
            self.trip(now, f"{self.failures_in_window} of {self.in_window} handshakes failed: {reason}")

    def trip(self, now: float, reason: str) -> None:
        """Open now (a failed probe, too many failures, or the vendor refused our credentials)."""
        self.opened += 1
        config = self.config
        self.reopen_at = now + min(config.open_for * 2 ** (self.opened - 1), config.max_open_for)
        self.state = BreakerState.OPEN
        self.probing = False
        self.reason = reason
        self.consecutive = 0
        self.buckets.clear()
        self.in_window = self.failures_in_window = 0
        log.warning(
            "provider breaker open",
            extra={
                "fields": {"provider": self.name, "reason": reason, "for": round(self.reopen_at - now, 1)}
            },
        )

    def _record(self, now: float, failed: bool) -> None:
        second = int(now)
        buckets = self.buckets
        if buckets and buckets[-1][0] == second:
            bucket = buckets[-1]
        else:
            bucket = [second, 0, 0]
            buckets.append(bucket)
        bucket[1] += 1
        bucket[2] += failed
        self.in_window += 1
        self.failures_in_window += failed
        horizon = now - self.config.window
        while buckets and buckets[0][0] + 1 <= horizon:  # a second wholly older than the window
            _, handshakes, failures = buckets.popleft()
            self.in_window -= handshakes
            self.failures_in_window -= failures


class RateLimit:
    """A token bucket: `rate` new tunnels per second, bursts up to one second's worth."""

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self.burst = max(rate, 1.0)  # below one per second, a bucket of `rate` would never hold a token
        self.tokens = self.burst
        self.updated = 0.0

    def take(self, now: float) -> bool:
        self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True


class Provider:
    def __init__(self, config: ProviderConfig) -> None:
        self.config = config
        self.name = config.name
        self.credentials = Credentials(config)
        self.breaker = Breaker(config.breaker, config.name)
        self.rate = RateLimit(config.requests_per_second) if config.requests_per_second else None
        self.endpoints = [split_hostport(endpoint) for endpoint in config.endpoints]
        self._next_endpoint = itertools.cycle(range(len(self.endpoints)))
        self.tunnels: set[asyncio.BaseTransport] = set()  # open tunnels through it
        self.pending = 0  # handshakes in flight: they count towards max_connections too
        self.banned_until = 0.0  # another node or worker opened its breaker (shared state)
        self.handshakes = 0
        self.failures = 0
        self.latency: float | None = None  # seconds a successful handshake took, smoothed
        self.traffic_probes = True  # a real tunnel may be a half-open breaker's probe

    @property
    def key(self) -> str:  # what rendezvous hashing orders providers by (upstream.balance)
        return self.name

    @property
    def weight(self) -> int:
        return self.config.weight

    def endpoint(self) -> tuple[str, int]:
        return self.endpoints[next(self._next_endpoint)]

    def unavailable(self, now: float) -> str | None:
        """Why it cannot take a tunnel now, or None if it can (see `take_rate` for the rate limit)."""
        breaker = self.breaker
        if not breaker.allows(now) or (breaker.state is BreakerState.HALF_OPEN and not self.traffic_probes):
            return f"{self.name}: breaker {breaker.state}"
        if now < self.banned_until:
            return f"{self.name}: banned by another node"
        limit = self.config.max_connections
        if limit is not None and len(self.tunnels) + self.pending >= limit:
            self.tunnels = {transport for transport in self.tunnels if not transport.is_closing()}
            if len(self.tunnels) + self.pending >= limit:
                return f"{self.name}: {limit} tunnels open"
        return None

    def over_rate(self, now: float) -> str | None:
        """Why not, if it is over its tunnels-per-second limit; takes a token otherwise."""
        if self.rate is not None and not self.rate.take(now):
            return f"{self.name}: over {self.config.requests_per_second:g} tunnels/s"
        return None

    def opened(self, transport: asyncio.BaseTransport) -> None:
        if self.config.max_connections is not None:
            self.tunnels.add(transport)

    def describe(self) -> dict[str, object]:
        breaker = self.breaker
        return {
            "name": self.name,
            "protocol": self.config.protocol,
            "breaker": breaker.state.value,
            "breaker_reason": breaker.reason,
            "handshakes": self.handshakes,
            "failures": self.failures,
            "open_tunnels": sum(not transport.is_closing() for transport in self.tunnels),
            "handshake_ms": None if self.latency is None else round(self.latency * 1000, 3),
        }
