"""A provider at run time: its breaker, its rate limit, and why it cannot take a tunnel now."""

from __future__ import annotations

import asyncio
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from lanner.config.vendors import ProviderBreaker, ProviderConfig
from lanner.upstream.providers import Breaker, BreakerState, Provider, RateLimit


def breaker(**settings: Any) -> Breaker:
    return Breaker(ProviderBreaker.model_validate(settings), "oxylabs")


def make_provider(**settings: Any) -> Provider:
    fields: dict[str, Any] = {"name": "oxylabs", "endpoints": ["127.0.0.1:9", "127.0.0.2:9"], "username": "u"}
    return Provider(ProviderConfig.model_validate({**fields, **settings}))


def state_of(tested: Breaker) -> BreakerState:
    """The state now (a call, so that mypy does not narrow it across the breaker's own calls)."""
    return tested.state


class FakeTunnel(asyncio.BaseTransport):
    def __init__(self) -> None:
        super().__init__()
        self.closing = False

    def is_closing(self) -> bool:
        return self.closing


# Opening: consecutive failures, failure rate, trip.


def test_consecutive_failures_open_the_breaker() -> None:
    tested = breaker(consecutive_failures=3)
    tested.failed(0, "reset")
    tested.failed(1, "reset")
    assert state_of(tested) is BreakerState.CLOSED
    tested.failed(2, "refused")
    assert state_of(tested) is BreakerState.OPEN
    assert "3 failures in a row, the last: refused" in tested.reason
    assert not tested.allows(2.5)


def test_a_success_resets_the_consecutive_count() -> None:
    tested = breaker(consecutive_failures=3, min_requests=100)
    for now in range(10):
        tested.failed(now, "reset")
        tested.failed(now + 0.5, "reset")
        tested.succeeded(now + 0.9)
    assert state_of(tested) is BreakerState.CLOSED


def test_the_failure_rate_opens_it_once_min_requests_are_in_the_window() -> None:
    tested = breaker(consecutive_failures=100, failure_rate=0.5, min_requests=4, window=10)
    tested.failed(0, "reset")
    tested.succeeded(1)
    tested.failed(2, "reset")
    assert state_of(tested) is BreakerState.CLOSED  # 2 of 3: fewer than min_requests
    tested.succeeded(3)
    tested.failed(4, "timeout")
    assert state_of(tested) is BreakerState.OPEN  # 3 of 5
    assert "3 of 5 handshakes failed: timeout" in tested.reason


def test_the_failure_rate_must_be_reached() -> None:
    tested = breaker(consecutive_failures=100, failure_rate=0.5, min_requests=4, window=10)
    for now in range(0, 9, 3):
        tested.succeeded(now)
        tested.succeeded(now + 1)
        tested.failed(now + 2, "reset")
    assert state_of(tested) is BreakerState.CLOSED  # 3 of 9 < 0.5
    assert tested.failures_in_window == 3


def test_outcomes_older_than_the_window_are_forgotten() -> None:
    tested = breaker(consecutive_failures=100, failure_rate=0.5, min_requests=4, window=10)
    tested.failed(0, "reset")
    tested.failed(1, "reset")
    tested.succeeded(2)
    tested.succeeded(3)
    tested.failed(20, "reset")  # 3 of 5 counting the old ones; 1 of 1 without
    assert state_of(tested) is BreakerState.CLOSED
    assert (tested.in_window, tested.failures_in_window) == (1, 1)
    tested.succeeded(21)
    tested.succeeded(22)
    tested.failed(23, "reset")
    assert state_of(tested) is BreakerState.OPEN  # 2 of 4, all within the window


@settings(max_examples=200, deadline=None)
@given(events=st.lists(st.tuples(st.floats(0, 5), st.booleans()), max_size=60))
def test_the_window_counts_exactly_the_seconds_it_keeps(events: list[tuple[float, bool]]) -> None:
    tested = breaker(consecutive_failures=1000, failure_rate=1.0, min_requests=1000, window=10)
    now = 0.0
    seen: list[tuple[float, bool]] = []
    for step, failed in events:
        now += step
        seen.append((now, failed))
        if failed:
            tested.failed(now, "reset")
        else:
            tested.succeeded(now)
        kept = [outcome for when, outcome in seen if int(when) + 1 > now - 10]  # whole seconds in the window
        assert (tested.in_window, tested.failures_in_window) == (len(kept), sum(kept))
        assert len(tested.buckets) <= 11  # bounded by the window, whatever the rate


def test_trip_opens_at_once() -> None:
    tested = breaker()
    tested.trip(100, "the vendor refused lanner's account")
    assert state_of(tested) is BreakerState.OPEN
    assert tested.reason == "the vendor refused lanner's account"
    assert tested.reopen_at == 130.0
    assert not tested.allows(129.9)


# Half-open: after open_for, one probe decides.


def test_open_turns_half_open_after_open_for() -> None:
    tested = breaker(open_for=10)
    tested.trip(0, "x")
    assert not tested.allows(9.99)
    assert state_of(tested) is BreakerState.OPEN
    assert tested.allows(10)
    assert state_of(tested) is BreakerState.HALF_OPEN


def test_only_one_probe_goes_through_half_open() -> None:
    tested = breaker(open_for=10)
    tested.trip(0, "x")
    assert tested.allows(10)
    tested.probe_started()
    assert not tested.allows(10)
    assert not tested.allows(1000)  # still waiting for the probe
    assert state_of(tested) is BreakerState.HALF_OPEN


def test_a_successful_probe_closes_and_resets_the_doubling() -> None:
    tested = breaker(open_for=10, max_open_for=300)
    tested.trip(0, "x")
    assert tested.allows(10)
    tested.probe_started()
    tested.failed(10, "still down")
    assert tested.reopen_at == 30  # doubled
    assert tested.allows(30)
    tested.probe_started()
    tested.succeeded(31)
    assert state_of(tested) is BreakerState.CLOSED
    assert tested.allows(31)
    tested.trip(40, "again")
    assert tested.reopen_at == 50  # open_for again, not 40


def test_failed_probes_double_the_open_time_up_to_max_open_for() -> None:
    tested = breaker(open_for=10, max_open_for=35)
    tested.trip(0, "x")
    now = 0.0
    for expected in (20, 35, 35):
        now = tested.reopen_at
        assert tested.allows(now)
        tested.probe_started()
        tested.failed(now, "still down")
        assert state_of(tested) is BreakerState.OPEN
        assert tested.reason == "probe failed: still down"
        assert tested.reopen_at - now == expected


def test_a_probe_failure_reopens_even_below_the_thresholds() -> None:
    tested = breaker(consecutive_failures=5, open_for=10)
    tested.trip(0, "x")
    assert tested.allows(10)
    tested.failed(10, "one failure")
    assert state_of(tested) is BreakerState.OPEN


def test_a_late_success_does_not_close_an_open_breaker() -> None:
    tested = breaker(consecutive_failures=2, open_for=10)
    tested.failed(0, "reset")
    tested.failed(0.1, "reset")
    assert state_of(tested) is BreakerState.OPEN
    tested.succeeded(0.2)  # a handshake begun at 0 answers now
    assert state_of(tested) is BreakerState.OPEN
    assert not tested.allows(0.3)


# The rate limit: a token bucket of one second's worth.


def test_rate_limit_bursts_one_second_then_refills() -> None:
    limit = RateLimit(3)
    assert [limit.take(100.0) for _ in range(4)] == [True, True, True, False]
    assert not limit.take(100.2)  # 0.6 of a token
    assert limit.take(100.34)  # 1.02 tokens
    assert not limit.take(100.34)
    assert limit.take(101.0)


def test_rate_limit_never_holds_more_than_one_second() -> None:
    limit = RateLimit(2)
    assert limit.take(0.0)
    assert limit.take(0.0)
    assert [limit.take(10_000.0) for _ in range(3)] == [True, True, False]


@settings(max_examples=100, deadline=None)
@given(rate=st.integers(1, 50), steps=st.lists(st.floats(0, 3), min_size=1, max_size=50))
def test_rate_limit_allows_at_most_rate_per_second_plus_burst(rate: int, steps: list[float]) -> None:
    limit = RateLimit(rate)
    now = 0.0
    taken = 0
    for step in steps:
        now += step
        while limit.take(now):
            taken += 1
        assert limit.tokens <= rate
    assert taken <= rate + rate * now + 1e-6


def test_a_rate_below_one_per_second_still_allows_tunnels() -> None:
    limit = RateLimit(0.5)
    assert any(limit.take(float(now)) for now in range(0, 10))


# Provider.unavailable and over_rate.


def test_available_by_default() -> None:
    tested = make_provider()
    assert tested.unavailable(0) is None
    assert tested.over_rate(0) is None


def test_unavailable_while_the_breaker_is_open() -> None:
    tested = make_provider(breaker={"open_for": 10})
    tested.breaker.trip(0, "x")
    assert tested.unavailable(5) == "oxylabs: breaker open"
    assert tested.unavailable(10) is None  # half-open: this tunnel may be the probe
    tested.breaker.probe_started()
    assert tested.unavailable(10) == "oxylabs: breaker half_open"


def test_traffic_probes_false_hides_a_half_open_provider() -> None:
    tested = make_provider(breaker={"open_for": 10})
    tested.traffic_probes = False
    tested.breaker.trip(0, "x")
    assert tested.unavailable(10) == "oxylabs: breaker half_open"
    tested.breaker.succeeded(11)  # the check-target probe passed
    assert tested.unavailable(11) is None


def test_unavailable_while_banned_by_another_node() -> None:
    tested = make_provider()
    tested.banned_until = 50.0
    assert tested.unavailable(49.9) == "oxylabs: banned by another node"
    assert tested.unavailable(50.0) is None


def test_unavailable_at_max_connections_until_a_tunnel_closes() -> None:
    tested = make_provider(max_connections=2)
    first, second = FakeTunnel(), FakeTunnel()
    tested.opened(first)
    assert tested.unavailable(0) is None
    tested.opened(second)
    assert tested.unavailable(0) == "oxylabs: 2 tunnels open"
    assert tested.describe()["open_tunnels"] == 2
    first.closing = True
    assert tested.unavailable(0) is None
    assert tested.tunnels == {second}  # closed tunnels are forgotten


def test_tunnels_are_not_kept_without_max_connections() -> None:
    tested = make_provider()
    tested.opened(FakeTunnel())
    assert tested.tunnels == set()


def test_over_rate() -> None:
    tested = make_provider(requests_per_second=2)
    assert tested.over_rate(0) is None
    assert tested.over_rate(0) is None
    assert tested.over_rate(0) == "oxylabs: over 2 tunnels/s"
    assert tested.over_rate(0.5) is None


def test_endpoints_are_tried_in_turn() -> None:
    tested = make_provider()
    assert [tested.endpoint() for _ in range(3)] == [("127.0.0.1", 9), ("127.0.0.2", 9), ("127.0.0.1", 9)]


def test_failures_of_tunnels_begun_before_it_opened_do_not_reopen_it() -> None:
    tested = breaker(consecutive_failures=2, open_for=30, max_open_for=300)
    tested.failed(0, "reset")
    tested.failed(0, "reset")
    assert state_of(tested) is BreakerState.OPEN and tested.opened == 1
    for _ in range(50):  # late failures of handshakes in flight when it opened
        tested.failed(0.5, "reset")
    assert tested.opened == 1 and tested.reopen_at == 30
