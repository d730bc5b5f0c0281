"""Backend pool and vendor provider metrics: state sampled once a second, events counted.

`Upstreams` and `Vendors` call `sample_backends` / `sample_providers` from the
timers they run anyway; a request never sets a gauge. Label values are the
configured pool, backend and provider names. A backend or provider a reload
removed is set to 0 once (a multiprocess file cannot forget a series; see
docs/METRICS.md).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from prometheus_client import Counter

from lanner.control.metrics import (
    BACKEND_DRAINING,
    BACKEND_EJECTED,
    BACKEND_EJECTIONS,
    BACKEND_HEALTHY,
    BACKEND_IN_FLIGHT,
    PROVIDER_BREAKER,
    PROVIDER_FAILURES,
    PROVIDER_HANDSHAKES,
)

if TYPE_CHECKING:
    from lanner.upstream.backends import Backend
    from lanner.upstream.providers import Provider

BREAKER_STATES = ("closed", "open", "half_open")  # lanner.upstream.providers.BreakerState's values

_backends: set[tuple[str, str]] = set()
_providers: set[str] = set()
_handshakes: dict[str, Counter] = {}
_failures: dict[str, Counter] = {}


def sample_backends(backends: Iterable[Backend], now: float) -> None:
    """Every configured backend's state now (`now`: time.monotonic())."""
    global _backends
    seen: set[tuple[str, str]] = set()
    for backend in backends:
        key = (backend.pool.name, backend.key)
        seen.add(key)
        BACKEND_HEALTHY.labels(*key).set(1 if backend.healthy else 0)
        BACKEND_EJECTED.labels(*key).set(1 if backend.ejected_until > now else 0)
        BACKEND_DRAINING.labels(*key).set(1 if backend.draining else 0)
        BACKEND_IN_FLIGHT.labels(*key).set(backend.active)
    for key in _backends - seen:  # removed by a reload
        for gauge in (BACKEND_HEALTHY, BACKEND_EJECTED, BACKEND_DRAINING, BACKEND_IN_FLIGHT):
            gauge.labels(*key).set(0)
    _backends = seen


def ejected(pool: str, backend: str) -> None:
    BACKEND_EJECTIONS.labels(pool, backend).inc()


def sample_providers(providers: Iterable[Provider]) -> None:
    """Each provider's breaker state: 1 for the state it is in, 0 for the others."""
    global _providers
    seen: set[str] = set()
    for provider in providers:
        seen.add(provider.name)
        state = provider.breaker.state.value
        for name in BREAKER_STATES:
            PROVIDER_BREAKER.labels(provider.name, name).set(1 if name == state else 0)
    for name in _providers - seen:
        for state in BREAKER_STATES:
            PROVIDER_BREAKER.labels(name, state).set(0)
    _providers = seen


def handshake(provider: str) -> None:
    _child(_handshakes, PROVIDER_HANDSHAKES, provider).inc()


def failed(provider: str) -> None:
    _child(_failures, PROVIDER_FAILURES, provider).inc()


def _child(cache: dict[str, Counter], counter: Counter, provider: str) -> Counter:
    child = cache.get(provider)
    if child is None:
        child = cache[provider] = counter.labels(provider)
    return child
