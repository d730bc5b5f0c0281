"""Which providers a tunnel tries, in which order; session periods; how failures are told apart."""

from __future__ import annotations

import asyncio
import hashlib
import random
import re
import time
from collections import Counter
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import lanner.upstream.vendors as vendors_module
from lanner.config.vendors import VendorPoolConfig, VendorsConfig
from lanner.errors import VendorFailed, VendorTargetFailed, VendorTimeout, VendorUnavailable
from lanner.route.params import RouteParams
from lanner.upstream.balance import rendezvous_score
from lanner.upstream.providers import BreakerState
from lanner.upstream.state import SessionRecord
from lanner.upstream.vendors import (
    Attempt,
    Session,
    VendorPool,
    Vendors,
    _action,
    _failure,
)
from lanner.wire.proxy_client import Refused

NAMES = ["alpha", "bravo", "charlie", "delta", "echo"]
TEMPLATE = "u[-cc-{country}][-s-{session}]"


def provider_config(name: str, **settings: Any) -> dict[str, Any]:
    return {"name": name, "endpoints": ["127.0.0.1:9"], "username": TEMPLATE, **settings}


def make_vendors(*providers: dict[str, Any], **settings: Any) -> Vendors:
    listed = list(providers) or [provider_config(name) for name in NAMES]
    config = VendorsConfig.model_validate({"providers": listed, **settings})
    return Vendors(config, random.Random(7))


def session_for(hash_key: bytes, pinned: str | None = None) -> Session:
    return Session("key", hash_key, "alice", "s1", 0, 600.0, SessionRecord(pinned=pinned))


def hash_key(text: str) -> bytes:
    return hashlib.blake2b(text.encode(), digest_size=16).digest()


def names(providers: list[Any]) -> list[str]:
    return [provider.name for provider in providers]


def sub_pool(vendors: Vendors, kept: list[str]) -> VendorPool:
    return VendorPool(
        VendorPoolConfig(name="sub", providers=kept), [vendors.providers[name] for name in kept]
    )


# Rendezvous order with a session.


def test_score_is_deterministic_for_a_key() -> None:
    first, second = make_vendors(), make_vendors()
    key = hash_key("alice\0cart42")
    for name in NAMES:
        assert rendezvous_score(key, first.providers[name]) == rendezvous_score(key, second.providers[name])
        assert rendezvous_score(key, first.providers[name]) > 0


def test_session_order_is_deterministic_and_differs_between_keys() -> None:
    vendors = make_vendors()
    pool = vendors.pools["default"]
    orders = {
        tuple(names(vendors._order(pool, RouteParams(session="s"), session_for(hash_key(str(i))))))
        for i in range(200)
    }
    for i in range(20):
        session = session_for(hash_key(str(i)))
        assert names(vendors._order(pool, RouteParams(session="s"), session)) == names(
            make_vendors()._order(make_vendors().pools["default"], RouteParams(session="s"), session)
        )
    assert len(orders) > 30  # keys spread over the providers


@settings(max_examples=200, deadline=None)
@given(key=st.binary(min_size=16, max_size=16), removed=st.sampled_from(NAMES))
def test_removing_a_provider_keeps_the_order_of_the_others(key: bytes, removed: str) -> None:
    vendors = make_vendors()
    params = RouteParams(session="s")
    whole = names(vendors._order(vendors.pools["default"], params, session_for(key)))
    kept = [name for name in NAMES if name != removed]
    less = names(vendors._order(sub_pool(vendors, kept), params, session_for(key)))
    assert less == [name for name in whole if name != removed]


def test_weights_are_respected_over_many_keys() -> None:
    vendors = make_vendors(provider_config("heavy", weight=3), provider_config("light", weight=1))
    pool = vendors.pools["default"]
    keys = 4000
    first = Counter(
        vendors._order(pool, RouteParams(session="s"), session_for(hash_key(f"user{i}")))[0].name
        for i in range(keys)
    )
    assert 0.65 <= first["heavy"] / keys <= 0.85


def test_three_way_weights() -> None:
    vendors = make_vendors(
        provider_config("a", weight=1), provider_config("b", weight=2), provider_config("c", weight=5)
    )
    pool = vendors.pools["default"]
    keys = 4000
    first = Counter(
        vendors._order(pool, RouteParams(session="s"), session_for(hash_key(f"k{i}")))[0].name
        for i in range(keys)
    )
    assert first["a"] / keys == pytest.approx(1 / 8, abs=0.04)
    assert first["b"] / keys == pytest.approx(2 / 8, abs=0.04)
    assert first["c"] / keys == pytest.approx(5 / 8, abs=0.04)


def test_a_pinned_provider_goes_first() -> None:
    vendors = make_vendors()
    pool = vendors.pools["default"]
    params = RouteParams(session="s")
    key = hash_key("alice\0cart42")
    hashed = names(vendors._order(pool, params, session_for(key)))
    pinned = hashed[-1]
    ordered = names(vendors._order(pool, params, session_for(key, pinned=pinned)))
    assert ordered == [pinned, *hashed[:-1]]


def test_a_pin_that_cannot_serve_the_geo_is_ignored() -> None:
    vendors = make_vendors(
        provider_config("us-only", countries=["us"]), provider_config("any-a"), provider_config("any-b")
    )
    pool = vendors.pools["default"]
    ordered = names(vendors._order(pool, RouteParams(country="de"), session_for(b"k" * 16, pinned="us-only")))
    assert sorted(ordered) == ["any-a", "any-b"]


# Candidates: geo and the provider parameter.


def test_no_provider_serving_the_geo_is_unavailable() -> None:
    vendors = make_vendors()
    with pytest.raises(VendorUnavailable, match="no provider of pool 'default' serves asn=7922"):
        vendors._order(vendors.pools["default"], RouteParams(asn="7922"), None)


def test_a_provider_param_naming_one_that_does_not_serve_the_geo() -> None:
    vendors = make_vendors(provider_config("us-only", countries=["us"]), provider_config("other"))
    pool = vendors.pools["default"]
    with pytest.raises(VendorUnavailable, match="country=de, provider=us-only"):
        vendors._order(pool, RouteParams(country="de", provider="us-only"), None)
    assert names(vendors._order(pool, RouteParams(country="us", provider="us-only"), None)) == ["us-only"]


def test_a_provider_param_limits_the_order_to_it() -> None:
    vendors = make_vendors()
    session = session_for(hash_key("x"), pinned="alpha")
    assert names(vendors._order(vendors.pools["default"], RouteParams(provider="delta"), session)) == [
        "delta"
    ]


def test_without_a_session_the_order_is_a_permutation_of_the_candidates() -> None:
    vendors = make_vendors(
        *[provider_config(name) for name in NAMES], provider_config("de-only", countries=["de"])
    )
    pool = vendors.pools["default"]
    orders = set()
    for _ in range(200):
        ordered = names(vendors._order(pool, RouteParams(country="us"), None))
        assert sorted(ordered) == sorted(NAMES)
        orders.add(tuple(ordered))
    assert len(orders) > 20  # random, not fixed


def test_without_a_session_weights_lead_the_order() -> None:
    vendors = make_vendors(provider_config("heavy", weight=3), provider_config("light", weight=1))
    pool = vendors.pools["default"]
    first = Counter(vendors._order(pool, RouteParams(), None)[0].name for _ in range(4000))
    assert 0.65 <= first["heavy"] / 4000 <= 0.85


# Session periods.


class FakeClock:
    def __init__(self, now: float) -> None:
        self.now = now

    def time(self) -> float:
        return self.now

    def monotonic(self) -> float:
        return time.monotonic()


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    fake = FakeClock(1_700_000_000.0)
    monkeypatch.setattr(vendors_module, "time", fake)
    return fake


def open_session(vendors: Vendors, user: str, params: RouteParams) -> Session:
    return asyncio.run(vendors._session(vendors.pools["default"], user, params))


def test_a_session_keeps_its_key_within_a_period(clock: FakeClock) -> None:
    vendors = make_vendors(pools=[{"name": "default", "providers": NAMES, "session_ttl": "10m"}])
    params = RouteParams(session="cart42")
    first = open_session(vendors, "alice", params)
    assert first.ttl == 600.0
    assert 0 < first.record.expires - clock.now <= 600.0
    clock.now = first.record.expires - 0.01
    last = open_session(vendors, "alice", params)
    assert (last.key, last.period, last.hash_key) == (first.key, first.period, first.hash_key)
    clock.now = first.record.expires + 0.01
    following = open_session(vendors, "alice", params)
    assert following.period == first.period + 1
    assert following.key != first.key
    assert following.hash_key == first.hash_key  # the order of providers stays; the vendor session changes
    assert following.record.expires == pytest.approx(first.record.expires + 600.0)


def test_the_period_changes_after_ttl_seconds(clock: FakeClock) -> None:
    vendors = make_vendors()
    params = RouteParams(session="s9", ttl=60.0)
    periods = []
    for _ in range(5):
        periods.append(open_session(vendors, "bob", params).period)
        clock.now += 60.0
    assert periods == list(range(periods[0], periods[0] + 5))


def test_ttl_from_params_overrides_the_pools_session_ttl(clock: FakeClock) -> None:
    vendors = make_vendors(pools=[{"name": "default", "providers": NAMES, "session_ttl": "10m"}])
    session = open_session(vendors, "alice", RouteParams(session="s", ttl=120.0))
    assert session.ttl == 120.0
    assert 0 < session.record.expires - clock.now <= 120.0
    assert session.key.split("\0")[-2:] == ["120", str(session.period)]
    assert session.period in (int(clock.now // 120.0), int(clock.now // 120.0) + 1)  # the phase is under ttl


def test_sessions_have_their_own_identity_and_phase(clock: FakeClock) -> None:
    vendors = make_vendors()
    sessions = [open_session(vendors, "alice", RouteParams(session=f"s{i}")) for i in range(50)]
    assert len({session.key for session in sessions}) == 50
    assert len({session.hash_key for session in sessions}) == 50
    assert (
        len({round(session.record.expires, 3) for session in sessions}) > 40
    )  # they do not all rotate at once
    other_user = open_session(vendors, "bob", RouteParams(session="s0"))
    assert other_user.hash_key != sessions[0].hash_key


def test_a_session_carries_its_pin_from_state(clock: FakeClock) -> None:
    clock.now = time.time()  # the local state expires its records by the real clock
    vendors = make_vendors()
    params = RouteParams(session="cart42")
    first = open_session(vendors, "alice", params)

    async def pin() -> None:
        await vendors.state.pin(first.key, first.record, "charlie")

    asyncio.run(pin())
    again = open_session(vendors, "alice", params)
    assert again.record.pinned == "charlie"
    assert names(vendors._order(vendors.pools["default"], params, again))[0] == "charlie"


# How the attempts end.


def attempts_of(vendors: Vendors, *specs: tuple[str, str, bool, bool]) -> list[Attempt]:
    return [
        Attempt(vendors.providers[name], failure, timed_out=timed_out, skipped=skipped)
        for name, failure, timed_out, skipped in specs
    ]


def test_all_skipped_is_unavailable() -> None:
    vendors = make_vendors()
    attempts = attempts_of(
        vendors,
        ("alpha", "alpha: breaker open", False, True),
        ("bravo", "bravo: 5 tunnels open", False, True),
    )
    error = _failure(vendors.pools["default"], RouteParams(country="us"), attempts)
    assert isinstance(error, VendorUnavailable)
    assert "pool 'default' (country=us)" in error.detail
    assert "alpha: breaker open" in error.detail and "bravo: 5 tunnels open" in error.detail


def test_no_attempt_at_all_is_unavailable() -> None:
    vendors = make_vendors()
    error = _failure(vendors.pools["default"], RouteParams(), [])
    assert isinstance(error, VendorUnavailable)
    assert "any geo" in error.detail and "no provider" in error.detail


def test_all_tried_timed_out_is_a_timeout() -> None:
    vendors = make_vendors()
    attempts = attempts_of(
        vendors,
        ("alpha", "no answer from 127.0.0.1:9 in time", True, False),
        ("bravo", "bravo: breaker open", False, True),
        ("charlie", "no answer from 10.0.0.3:9 in time", True, False),
    )
    error = _failure(vendors.pools["default"], RouteParams(), attempts)
    assert isinstance(error, VendorTimeout)
    for text in ("no answer from 127.0.0.1:9 in time", "bravo: breaker open", "10.0.0.3:9"):
        assert text in error.detail


def test_any_other_failure_is_failed() -> None:
    vendors = make_vendors()
    attempts = attempts_of(
        vendors,
        ("alpha", "no answer from 127.0.0.1:9 in time", True, False),
        ("bravo", "HTTP 503 Service Unavailable [] b''", False, False),
    )
    error = _failure(vendors.pools["default"], RouteParams(), attempts)
    assert isinstance(error, VendorFailed)
    assert "alpha: no answer from 127.0.0.1:9 in time" in error.detail
    assert "bravo: HTTP 503 Service Unavailable" in error.detail
    assert error.public == "the upstream proxy failed"


# Classifying a vendor's refusal.


def refused(status: int = 407, socks_code: int | None = None, stage: str = "connect") -> Refused:
    return Refused(status, "Refused", (), b"", socks_code, stage)


@pytest.mark.parametrize(
    ("refusal", "action"),
    [
        (refused(200, stage="auth"), "auth"),
        (refused(502, socks_code=0x01, stage="auth"), "auth"),
        (refused(407), "auth"),
        (refused(402), "auth"),
        (refused(429), "failure"),
        (refused(502), "session_gone"),
        (refused(504), "target"),
        (refused(522), "no_exit"),
        (refused(418), "failure"),
        (refused(502, socks_code=0x01), "failure"),
        (refused(403, socks_code=0x02), "auth"),
        (refused(502, socks_code=0x04), "target"),
        (refused(502, socks_code=0x05), "target"),
        (refused(502, socks_code=0x09), "failure"),
    ],
)
def test_default_actions(refusal: Refused, action: str) -> None:
    vendors = make_vendors()
    assert _action(vendors.providers["alpha"], refusal) == action


def test_a_providers_error_table_overrides_the_defaults() -> None:
    vendors = make_vendors(
        provider_config("custom", errors={502: "failure", 418: "no_exit"}, socks_errors={1: "session_gone"}),
    )
    custom = vendors.providers["custom"]
    assert _action(custom, refused(502)) == "failure"
    assert _action(custom, refused(418)) == "no_exit"
    assert _action(custom, refused(504)) == "target"  # the rest keep their defaults
    assert _action(custom, refused(502, socks_code=0x01)) == "session_gone"
    assert _action(custom, refused(407, stage="auth")) == "auth"


# Credentials for one attempt.


def test_credentials_carry_a_derived_session_id(clock: FakeClock) -> None:
    vendors = make_vendors(provider_config("sessions", session={"charset": "hex", "length": 12}))
    provider = vendors.providers["sessions"]
    session = open_session(vendors, "alice", RouteParams(session="cart42"))
    username, password = vendors._credentials(provider, RouteParams(country="us"), session, "alice")
    assert re.fullmatch(r"u-cc-us-s-[0-9a-f]{12}", username or "")
    assert password == ""
    again = vendors._credentials(provider, RouteParams(country="us"), session, "alice")
    assert again == (username, password)
    assert vendors._credentials(provider, RouteParams(country="us"), None, "alice") == ("u-cc-us", "")


def test_a_vendor_requiring_a_session_gets_a_fresh_one_per_tunnel() -> None:
    vendors = make_vendors({**provider_config("sticky"), "username": "u-s-{session}"})
    provider = vendors.providers["sticky"]
    first, _ = vendors._credentials(provider, RouteParams(), None, "alice")
    second, _ = vendors._credentials(provider, RouteParams(), None, "alice")
    assert re.fullmatch(r"u-s-[0-9a-z]{10}", first or "")
    assert first != second


# A half-open provider's probe that the vendor answers without blame.


async def vendor_answering(answer: bytes) -> tuple[asyncio.Server, int]:
    async def reply(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(answer)
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(reply, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


def test_a_probe_ending_in_a_target_refusal_closes_the_breaker() -> None:
    async def scenario() -> None:
        server, port = await vendor_answering(b"HTTP/1.1 504 Gateway Timeout\r\nContent-Length: 0\r\n\r\n")
        async with server:
            vendors = make_vendors({**provider_config("only"), "endpoints": [f"127.0.0.1:{port}"]})
            provider = vendors.providers["only"]
            provider.breaker.trip(time.monotonic() - 60, "earlier failures")  # due to half-open now
            with pytest.raises(VendorTargetFailed):
                await vendors.dial(
                    "default", "alice", RouteParams(), "example.com", 443, asyncio.Protocol, _ignore
                )
            # The vendor answered for its exit: it works, so the probe closes the breaker.
            assert provider.breaker.state is BreakerState.CLOSED
            assert provider.unavailable(time.monotonic()) is None

    asyncio.run(scenario())


def _ignore(name: str, value: object) -> None:
    del name, value
