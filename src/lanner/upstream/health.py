"""Active health checks: one task per backend, HTTP GET or TCP connect, with jitter.

Each check waits `interval` plus a random share (`jitter`) of it, so checks
of many backends (and of several workers) spread out instead of
synchronising. An HTTP check passes when the status line arrives within
`timeout` with a status in `statuses`; a TCP check passes when the connect
succeeds. A pool that sends PROXY headers sends one with each check too
(v2 LOCAL, or v1 UNKNOWN: the check is lanner's own connection), over TLS
when the pool speaks TLS. Results go to `Pool.checked`, which applies rise
and fall.
"""

from __future__ import annotations

import asyncio
import random
import ssl
import time

from lanner.config.pools import HealthCheckConfig, PoolConfig
from lanner.net.tasks import spawn
from lanner.tls.policy import shared_upstream_context
from lanner.upstream.backends import Backend, Pool
from lanner.wire.proxy_protocol import encode_local

MAX_STATUS_LINE = 1024


async def check_once(backend: Backend, config: PoolConfig, health: HealthCheckConfig) -> tuple[bool, str]:
    """(passed, why) for one check of one backend."""
    context: ssl.SSLContext | None = None
    if config.tls:
        context = shared_upstream_context(config.verify, config.ca_file, (b"http/1.1",))
    writer = None
    try:
        async with asyncio.timeout(health.timeout):
            reader, writer = await asyncio.open_connection(
                backend.host, backend.port, ssl=context, server_hostname=backend.host if context else None
            )
            if config.send_proxy is not None:
                writer.write(encode_local(config.send_proxy))
            if health.type == "tcp":
                return True, "connected"
            host = health.host or backend.key
            request = f"GET {health.path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: lanner-health-check\r\n"
            writer.write(request.encode() + b"Connection: close\r\n\r\n")
            line = await reader.readuntil(b"\r\n")
    except TimeoutError:
        return False, f"no answer in {health.timeout:g}s"
    except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ssl.SSLError) as exc:
        return False, f"check failed: {exc!r}"
    finally:
        if writer is not None:
            writer.transport.abort()
    parts = line.split(b" ", 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit():
        return False, f"not an HTTP status line: {line[:80]!r}"
    status = int(parts[1])
    return health.passes(status), f"status {status}"


class HealthChecks:
    """The check tasks of every pool with `health` configured."""

    def __init__(self, rng: random.Random | None = None) -> None:
        self.tasks: dict[tuple[str, str], asyncio.Task[None]] = {}
        self.rng = rng or random.Random()

    def sync(self, pools: list[Pool]) -> None:
        """Start checks for backends that need them, stop those of backends gone (or unchecked now)."""
        wanted = {
            (pool.name, backend.key): backend
            for pool in pools
            if pool.config.health
            for backend in pool.backends
        }
        for key in list(self.tasks):
            if key not in wanted:
                self.tasks.pop(key).cancel()
        for key, backend in wanted.items():
            if key not in self.tasks:
                self.tasks[key] = spawn(self._run(backend), name=f"health-{key[0]}-{key[1]}")

    async def _run(self, backend: Backend) -> None:
        first = True
        while True:
            pool = backend.pool
            health = pool.config.health
            if health is None:
                return
            share = self.rng.random() * health.jitter
            await asyncio.sleep(health.interval * (share if first else 1 + share))
            first = False
            passed, why = await check_once(backend, pool.config, health)
            pool.checked(backend, passed, time.monotonic(), why)

    def stop(self) -> None:
        for task in self.tasks.values():
            task.cancel()
        self.tasks.clear()
