"""Asynchronous name resolution with a small TTL cache.

Lookups run through the event loop's `getaddrinfo` (libuv's thread pool under
uvloop, the default executor otherwise), never blocking the loop. Concurrent
lookups of one name share a single query. IP literals never reach the resolver,
and neither do names under `.localhost`: they are the loopback address
(RFC 6761 section 6.3), the way browsers and systemd-resolved answer them.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections import OrderedDict
from typing import Final

from lanner.errors import Unresolved

DEFAULT_MAX_ENTRIES: Final = 4096


def ip_literal(host: str) -> str | None:
    """The normalised address if `host` is an IP literal, else None."""
    try:
        socket.inet_pton(socket.AF_INET, host)  # the common case, without building an object
        return host
    except OSError:
        pass
    host = host.strip("[]")
    if ":" not in host:
        return None
    try:
        return str(ipaddress.IPv6Address(host))
    except ValueError:
        return None


class Resolver:
    def __init__(self, ttl: float, max_entries: int = DEFAULT_MAX_ENTRIES) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self._cache: OrderedDict[str, tuple[float, list[str]]] = OrderedDict()
        self._inflight: dict[str, asyncio.Future[list[str]]] = {}

    async def resolve(self, host: str) -> list[str]:
        literal = ip_literal(host)
        if literal is not None:
            return [literal]
        key = host.lower().rstrip(".")
        if key.endswith(".localhost"):
            return ["127.0.0.1"]
        loop = asyncio.get_running_loop()
        cached = self._cache.get(key)
        if cached is not None and cached[0] > loop.time():
            return cached[1]
        pending = self._inflight.get(key)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[list[str]] = loop.create_future()
        self._inflight[key] = future
        try:
            addresses = await self._lookup(loop, key)
        except Unresolved as exc:
            future.set_exception(exc)
            future.exception()  # retrieved here; waiters re-raise it
            raise
        finally:
            del self._inflight[key]
        future.set_result(addresses)
        self._store(loop, key, addresses)
        return addresses

    async def _lookup(self, loop: asyncio.AbstractEventLoop, host: str) -> list[str]:
        try:
            infos = await loop.getaddrinfo(host, None, type=socket.SOCK_STREAM)
        except (socket.gaierror, UnicodeError) as exc:
            raise Unresolved(f"cannot resolve {host}") from exc
        addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
        if not addresses:
            raise Unresolved(f"no addresses for {host}")
        return addresses

    def _store(self, loop: asyncio.AbstractEventLoop, key: str, addresses: list[str]) -> None:
        if self.ttl <= 0:
            return
        self._cache[key] = (loop.time() + self.ttl, addresses)
        self._cache.move_to_end(key)
        while len(self._cache) > self.max_entries:
            self._cache.popitem(last=False)
