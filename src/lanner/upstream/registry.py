"""Every backend pool of a gateway process, by name: built from config, reconfigured, drained.

`reconfigure` applies a reloaded config's pools: pools and backends that
stay keep their state (health, ejection, connections, and a drain set
through `drain`); new ones start fresh; removed ones close their idle
connections while their requests in flight finish. `drain` is the function
the admin API calls. Idle kept-alive connections are swept once a second,
when the backends' state is also sampled for the metrics.
"""

from __future__ import annotations

import asyncio
import time

from lanner.config.pools import PoolConfig
from lanner.control import metrics_upstream
from lanner.upstream.backends import Backend, Pool, close_idle
from lanner.upstream.conns import sweep_idle
from lanner.upstream.health import HealthChecks

IDLE_SWEEP_INTERVAL = 1.0


class Upstreams:
    def __init__(self, configs: list[PoolConfig]) -> None:
        self.pools: dict[str, Pool] = {config.name: Pool(config) for config in configs}
        self.health = HealthChecks()
        self._sweeper: asyncio.TimerHandle | None = None

    def start(self) -> None:
        self.health.sync(list(self.pools.values()))
        self._sweeper = asyncio.get_running_loop().call_later(IDLE_SWEEP_INTERVAL, self._sweep)
        metrics_upstream.sample_backends(self.backends(), time.monotonic())

    def stop(self) -> None:
        self.health.stop()
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        for backend in self.backends():
            close_idle(backend)

    def backends(self) -> list[Backend]:
        return [backend for pool in self.pools.values() for backend in pool.backends]

    def reconfigure(self, configs: list[PoolConfig]) -> None:
        pools: dict[str, Pool] = {}
        for config in configs:
            pool = self.pools.pop(config.name, None)
            if pool is None:
                pool = Pool(config)
            else:
                pool.reconfigure(config)
            pools[config.name] = pool
        for removed in self.pools.values():
            for backend in removed.backends:
                backend.removed = True
                close_idle(backend)
        self.pools = pools
        if self._sweeper is not None:
            self.health.sync(list(pools.values()))

    def drain(self, pool: str, address: str, on: bool = True) -> bool:
        """Drain a backend (no new requests; in-flight ones finish), or undrain it; False if unknown."""
        found = self.pools.get(pool)
        return found is not None and found.drain(address, on)

    def describe(self) -> list[dict[str, object]]:
        now = time.monotonic()
        return [backend.describe(now) for backend in self.backends()]

    def _sweep(self) -> None:
        backends, now = self.backends(), time.monotonic()
        sweep_idle(backends, now)
        metrics_upstream.sample_backends(backends, now)
        self._sweeper = asyncio.get_running_loop().call_later(IDLE_SWEEP_INTERVAL, self._sweep)
