"""Session pins, rotations, bans and counters: local, shared through a real Redis, and Redis down."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest
import redis
from tests.conftest import require

from lanner.upstream import state
from lanner.upstream.state import LocalState, SessionRecord, SessionState

REDIS_URL = "redis://127.0.0.1:6379/15"
NOTHING_LISTENS = "redis://127.0.0.1:1"
TIMEOUT = 0.5


def later(seconds: float = 600.0) -> float:
    return time.time() + seconds


# LocalState: expiry, pruning, a bounded number of entries.


def test_local_get_and_put() -> None:
    state = LocalState()
    record = SessionRecord(pinned="oxylabs", generation=2, expires=100.0)
    assert state.get("k", 0.0) is None
    state.put("k", record)
    assert state.get("k", 99.9) is record


def test_local_entries_expire_with_their_period() -> None:
    state = LocalState()
    state.put("k", SessionRecord(expires=100.0))
    assert state.get("k", 100.0) is None
    assert "k" not in state.sessions  # removed, not only hidden
    state.put("k", SessionRecord(expires=200.0))
    assert state.get("k", 150.0) is not None


def test_local_prune_removes_only_the_expired() -> None:
    state = LocalState()
    for index in range(6):
        state.put(f"k{index}", SessionRecord(expires=float(index * 10)))
    state.prune(25.0)
    assert list(state.sessions) == ["k3", "k4", "k5"]


def test_local_max_entries_evicts_the_oldest_first() -> None:
    state = LocalState(max_entries=3)
    for key in ("a", "b", "c"):
        state.put(key, SessionRecord(expires=1e12))
    state.put("a", SessionRecord(expires=1e12))  # written again: now the newest
    state.put("d", SessionRecord(expires=1e12))
    assert list(state.sessions) == ["c", "a", "d"]
    state.put("e", SessionRecord(expires=1e12))
    assert list(state.sessions) == ["a", "d", "e"]
    assert len(state.sessions) == 3


# SessionState without Redis: entirely local.


def test_session_state_without_redis_is_local() -> None:
    async def scenario() -> None:
        state = SessionState(None, 0.1)
        assert not state.shared
        expires = later()
        record = await state.session("s1", expires)
        assert record == SessionRecord(None, 0, expires)
        await state.pin("s1", record, "decodo")
        await state.rotate("s1", record, record.generation)
        again = await state.session("s1", expires + 1)
        assert (again.pinned, again.generation, again.expires) == ("decodo", 1, expires + 1)
        other = await state.session("s2", expires)
        assert (other.pinned, other.generation) == (None, 0)
        await state.ban("decodo", 30)
        assert await state.bans(["decodo"]) == {}
        assert await state.count("decodo", int(time.time())) is None
        assert state.failures == 0
        await state.close()

    asyncio.run(scenario())


def test_an_expired_local_session_starts_afresh() -> None:
    async def scenario() -> None:
        state = SessionState(None, 0.1)
        record = await state.session("s1", time.time() - 1)  # its period has already ended
        await state.pin("s1", record, "soax")
        assert (await state.session("s1", later())).pinned is None

    asyncio.run(scenario())


# SessionState with a real Redis: what one instance writes, another reads.


@pytest.fixture
def redis_db() -> Iterator[None]:
    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1)
    try:
        client.ping()
    except redis.ConnectionError:
        require(False, f"no Redis at {REDIS_URL}")
    client.flushdb()
    yield
    client.flushdb()
    client.close()


def test_pin_and_rotation_are_shared(redis_db: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(state, "FRESH_FOR", 0.0)  # read Redis on every lookup

    async def scenario() -> None:
        writer, reader = SessionState(REDIS_URL, TIMEOUT), SessionState(REDIS_URL, TIMEOUT)
        try:
            expires = later()
            record = await writer.session("s1", expires)
            await writer.pin("s1", record, "oxylabs")
            seen = await reader.session("s1", expires)
            assert (seen.pinned, seen.generation, seen.expires) == ("oxylabs", 0, expires)
            await writer.rotate("s1", record, record.generation)
            assert (await reader.session("s1", expires)).generation == 1
            await reader.rotate("s1", seen, seen.generation)  # the reader's copy said 0: Redis counts on
            assert seen.generation == 2
            assert (await writer.session("s1", expires)).generation == 2
            assert (await reader.session("s2", expires)).pinned is None
            assert writer.shared and reader.shared
            assert writer.failures == reader.failures == 0
        finally:
            await writer.close()
            await reader.close()

    asyncio.run(scenario())


def test_session_keys_expire_in_redis_with_their_period(redis_db: None) -> None:
    async def scenario() -> None:
        state = SessionState(REDIS_URL, TIMEOUT)
        try:
            record = await state.session("s1", later(30))
            await state.pin("s1", record, "oxylabs")
        finally:
            await state.close()

    asyncio.run(scenario())
    client = redis.Redis.from_url(REDIS_URL)
    ttls = [client.ttl(key) for key in client.keys("lanner:vendors:s:*")]
    client.close()
    assert len(ttls) == 1
    assert 25 <= ttls[0] <= 32


def test_a_ban_is_seen_with_its_seconds_left(redis_db: None) -> None:
    async def scenario() -> None:
        banning, other = SessionState(REDIS_URL, TIMEOUT), SessionState(REDIS_URL, TIMEOUT)
        try:
            await banning.ban("soax", 30)
            bans = await other.bans(["oxylabs", "soax", "decodo"])
            assert list(bans) == ["soax"]
            assert 29 < bans["soax"] <= 30
            assert await other.bans([]) == {}
        finally:
            await banning.close()
            await other.close()

    asyncio.run(scenario())


def test_rate_counts_add_up_across_instances(redis_db: None) -> None:
    async def scenario() -> None:
        first, second = SessionState(REDIS_URL, TIMEOUT), SessionState(REDIS_URL, TIMEOUT)
        try:
            second_now = int(time.time())
            assert await first.count("decodo", second_now) == 1
            assert await second.count("decodo", second_now) == 2
            assert await first.count("decodo", second_now) == 3
            assert await first.count("decodo", second_now + 1) == 1  # a new second
            assert await second.count("soax", second_now) == 1
        finally:
            await first.close()
            await second.close()

    asyncio.run(scenario())


# Redis unreachable: local results, never an exception.


def test_redis_down_falls_back_to_local_state() -> None:
    async def scenario() -> None:
        state = SessionState(NOTHING_LISTENS, 0.2)
        try:
            assert state.shared  # not known to be down yet
            expires = later()
            record = await state.session("s1", expires)
            assert record == SessionRecord(None, 0, expires)
            assert state.failures == 1
            assert not state.shared
            await state.pin("s1", record, "iproyal")
            await state.rotate("s1", record, record.generation)
            seen = await state.session("s1", expires)
            assert (seen.pinned, seen.generation) == ("iproyal", 1)
            await state.ban("iproyal", 10)
            assert await state.bans(["iproyal"]) == {}
            assert await state.count("iproyal", 0) is None
        finally:
            await state.close()

    asyncio.run(scenario())


@pytest.mark.parametrize("call", ["bans", "count", "ban", "pin", "rotate"])
def test_each_call_survives_redis_down(call: str) -> None:
    async def scenario() -> None:
        state = SessionState(NOTHING_LISTENS, 0.2)
        record = SessionRecord(expires=later())
        try:
            if call == "bans":
                assert await state.bans(["a"]) == {}
            elif call == "count":
                assert await state.count("a", 0) is None
            elif call == "ban":
                await state.ban("a", 5)
            elif call == "pin":
                await state.pin("s", record, "a")
                assert state.local.get("s", time.time()) is record
            else:
                await state.rotate("s", record, record.generation)
                assert record.generation == 1
            assert state.failures == 1
            assert not state.shared
        finally:
            await state.close()

    asyncio.run(scenario())


def test_a_record_read_from_redis_is_reused_for_a_second(redis_db: None) -> None:
    async def scenario() -> None:
        writer, reader = SessionState(REDIS_URL, TIMEOUT), SessionState(REDIS_URL, TIMEOUT)
        try:
            expires = later()
            assert (await reader.session("fresh", expires)).pinned is None  # read, and remembered
            await writer.pin("fresh", await writer.session("fresh", expires), "oxylabs")
            assert (await reader.session("fresh", expires)).pinned is None  # within FRESH_FOR: not re-read
            reader.local.sessions["fresh"].fetched -= state.FRESH_FOR
            assert (await reader.session("fresh", expires)).pinned == "oxylabs"
        finally:
            await writer.close()
            await reader.close()

    asyncio.run(scenario())


def test_parallel_rotations_of_one_session_rotate_it_once() -> None:
    async def scenario() -> None:
        local = SessionState(None, 0.1)
        record = await local.session("s", later())
        seen = record.generation
        for _ in range(6):  # six tunnels of one session, each told "IP gone" with generation 0
            await local.rotate("s", record, seen)
        assert record.generation == 1

    asyncio.run(scenario())
