"""Session pins, rotations, bans and rate counters: in this process, or shared through Redis.

Stickiness itself needs no state (rendezvous hashing and derived vendor session
ids agree everywhere). State records only what hashing cannot know: that a
session was moved to another provider after a failover (its pin), that its
vendor session was rotated (its generation), that a provider's breaker opened
on some node (a ban), and how many tunnels a provider took this second.

With `state: redis://…` these are shared by every worker and node. Every Redis
call is bounded by `state_timeout`; when one fails, lanner logs it once, uses
its local copies for a few seconds, then tries Redis again. Redis being down
never refuses a tunnel. A session's record is read from Redis at most once a second
per process (another node's pin shows within that second). Local entries
expire with their session period and are bounded in number (`max_entries`):
the oldest go first.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import redis.asyncio as aioredis
from redis.exceptions import RedisError

log = logging.getLogger("lanner")

T = TypeVar("T")

RETRY_AFTER = 5.0  # seconds on local state after a Redis failure
FRESH_FOR = 1.0  # seconds a session record read from Redis is used before it is read again
MAX_ENTRIES = 1_000_000
_PREFIX = "lanner:vendors:"


@dataclass(slots=True)
class SessionRecord:
    pinned: str | None = None  # the provider a failover moved the session to
    generation: int = 0  # rotations of the vendor session ("session IP gone")
    expires: float = 0.0  # wall-clock end of the session's period
    fetched: float = 0.0  # monotonic time it was last read from Redis


class LocalState:
    def __init__(self, max_entries: int = MAX_ENTRIES) -> None:
        self.sessions: OrderedDict[str, SessionRecord] = OrderedDict()
        self.max_entries = max_entries

    def get(self, key: str, now: float) -> SessionRecord | None:
        record = self.sessions.get(key)
        if record is not None and record.expires <= now:
            del self.sessions[key]
            return None
        return record

    def put(self, key: str, record: SessionRecord) -> None:
        self.sessions[key] = record
        self.sessions.move_to_end(key)
        while len(self.sessions) > self.max_entries:
            self.sessions.popitem(last=False)

    def prune(self, now: float) -> None:
        expired = [key for key, record in self.sessions.items() if record.expires <= now]
        for key in expired:
            del self.sessions[key]


class SessionState:
    """The session records, bans and counters; Redis-backed when a URL is given."""

    def __init__(self, url: str | None, timeout: float, max_entries: int = MAX_ENTRIES) -> None:
        self.local = LocalState(max_entries)
        self.timeout = timeout
        self.redis: Any = None
        self.url = url
        self.down_until = 0.0
        self.failures = 0
        if url is not None:
            self.redis = aioredis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout)

    @property
    def shared(self) -> bool:
        return self.redis is not None and time.monotonic() >= self.down_until

    async def session(self, key: str, expires: float) -> SessionRecord:
        """The record of the session period `key` (which ends at wall-clock `expires`)."""
        record = self.local.get(key, time.time())
        now = time.monotonic()
        if self.shared and (record is None or now - record.fetched >= FRESH_FOR):
            fields = await self._call(lambda r: r.hgetall(_PREFIX + "s:" + key))
            if fields is not None:  # read (an empty answer: no node recorded anything yet)
                if fields:
                    record = SessionRecord(fields.get(b"p", b"").decode() or None, int(fields.get(b"g", 0)))
                record = record or SessionRecord()
                record.fetched = now
                record.expires = expires
                self.local.put(key, record)
        record = record or SessionRecord()
        record.expires = expires
        return record

    def local_session(self, key: str, expires: float) -> SessionRecord:
        """`session` when Redis is not in use (or down): no await on the tunnel's path."""
        record = self.local.get(key, time.time()) or SessionRecord()
        record.expires = expires
        return record

    async def pin(self, key: str, record: SessionRecord, provider: str) -> None:
        record.pinned = provider
        await self._store(key, record, {"p": provider})

    async def rotate(self, key: str, record: SessionRecord, seen: int) -> None:
        """Move the session to its next vendor session, unless another tunnel already did (from `seen`)."""
        if record.generation != seen:
            return  # parallel tunnels of one session that all saw "IP gone" rotate it once
        record.generation += 1
        self.local.put(key, record)
        if self.shared:
            generation = await self._call(lambda r: r.hincrby(_PREFIX + "s:" + key, "g", 1))
            if generation is not None:
                record.generation = max(record.generation, int(generation))
            await self._store(key, record, {})  # the counter is Redis's own: only the expiry is set

    async def _store(self, key: str, record: SessionRecord, fields: dict[str, Any]) -> None:
        self.local.put(key, record)
        if self.shared:
            seconds = max(1, int(record.expires - time.time()) + 1)
            name = _PREFIX + "s:" + key

            async def write(r: Any) -> None:
                async with r.pipeline(transaction=False) as pipe:
                    if fields:
                        pipe.hset(name, mapping=fields)
                    pipe.expire(name, seconds)
                    await pipe.execute()

            await self._call(write)

    async def ban(self, provider: str, seconds: float) -> None:
        if self.shared:
            await self._call(lambda r: r.set(_PREFIX + "ban:" + provider, 1, px=max(1, int(seconds * 1000))))

    async def bans(self, providers: list[str]) -> dict[str, float]:
        """Seconds left on each shared ban (only providers some node has banned)."""
        if not self.shared or not providers:
            return {}

        async def read(r: Any) -> list[int]:
            async with r.pipeline(transaction=False) as pipe:
                for provider in providers:
                    pipe.pttl(_PREFIX + "ban:" + provider)
                result: list[int] = await pipe.execute()
                return result

        left = await self._call(read)
        if left is None:
            return {}
        return {provider: ms / 1000 for provider, ms in zip(providers, left, strict=True) if ms > 0}

    async def count(self, provider: str, second: int) -> int | None:
        """Tunnels all nodes opened through `provider` in this second (None: not shared now)."""
        if not self.shared:
            return None
        name = f"{_PREFIX}rate:{provider}:{second}"

        async def incr(r: Any) -> int:
            async with r.pipeline(transaction=False) as pipe:
                pipe.incr(name)
                pipe.expire(name, 2)
                result = await pipe.execute()
                return int(result[0])

        return await self._call(incr)

    async def _call(self, operation: Callable[[Any], Awaitable[T]]) -> T | None:
        try:
            async with asyncio.timeout(self.timeout):
                return await operation(self.redis)
        except (OSError, TimeoutError, RedisError) as exc:
            self._failed(exc)
        return None

    def _failed(self, exc: BaseException) -> None:
        self.failures += 1
        now = time.monotonic()
        was_down = now < self.down_until + RETRY_AFTER  # failed again right after the last retry
        self.down_until = now + RETRY_AFTER
        if was_down:
            return  # said once per outage
        log.warning(
            "vendor state: Redis unavailable, using local state",
            extra={"fields": {"error": repr(exc), "retry_in": RETRY_AFTER}},
        )

    async def close(self) -> None:
        if self.redis is not None:
            await self.redis.aclose()
