"""Balancing strategies: weighted shares, smooth interleaving, load awareness, consistent hashing."""

from __future__ import annotations

import random
from collections import Counter, deque
from collections.abc import Sequence
from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lanner.upstream.balance import (
    STRATEGY_NAMES,
    HashStrategy,
    LeastConnections,
    RandomTwoChoices,
    RoundRobin,
    Strategy,
    make_strategy,
)

PICKS = 10_000
TOLERANCE = 0.03  # three percentage points of share


@dataclass(slots=True)
class Backend:
    key: str
    weight: int = 1
    active: int = 0


def pool(*weights: int) -> list[Backend]:
    return [Backend(f"10.0.0.{index}:80", weight) for index, weight in enumerate(weights, start=1)]


def keys_of(picked: Sequence[Backend]) -> list[str]:
    return [backend.key for backend in picked]


def shares(strategy: Strategy, backends: list[Backend], picks: int = PICKS) -> list[float]:
    counts = Counter(strategy.pick(backends, None).key for _ in range(picks))
    return [counts[backend.key] / picks for backend in backends]


def assert_weighted(observed: list[float], weights: Sequence[int]) -> None:
    expected = [weight / sum(weights) for weight in weights]
    assert observed == pytest.approx(expected, abs=TOLERANCE)


def assert_even(picked: list[Backend], backends: list[Backend]) -> None:
    """Equal weights: each backend within one pick of an equal share (a change of set may cost one turn)."""
    counts = Counter(keys_of(picked))
    assert set(counts) == set(keys_of(backends))
    assert all(abs(counts[backend.key] - len(picked) / len(backends)) <= 1 for backend in backends)


# Every strategy on an idle pool: shares follow weights.


@pytest.mark.parametrize("name", STRATEGY_NAMES)
def test_idle_pool_is_shared_by_weight(name: str) -> None:
    strategy = make_strategy(name, random.Random(7))  # "hash" without a key falls back to round robin
    assert_weighted(shares(strategy, pool(1, 2, 3)), (1, 2, 3))


def test_hash_keys_are_shared_by_weight() -> None:
    backends = pool(1, 2, 3)
    strategy = HashStrategy()
    counts = Counter(strategy.pick(backends, f"client-{n}".encode()).key for n in range(PICKS))
    assert_weighted([counts[backend.key] / PICKS for backend in backends], (1, 2, 3))


# Round robin.


def test_equal_weights_rotate_in_order() -> None:
    backends = pool(1, 1, 1)
    strategy = RoundRobin()
    assert keys_of([strategy.pick(backends, None) for _ in range(6)]) == keys_of(backends) * 2


def test_smooth_round_robin_interleaves_the_heavy_backend() -> None:
    heavy, light_b, light_c = pool(5, 1, 1)
    strategy = RoundRobin()
    picked = [strategy.pick([heavy, light_b, light_c], None) for _ in range(14)]
    # nginx's smooth sequence for 5,1,1, repeated: never five of the heavy one in a row.
    one_cycle = [heavy, heavy, light_b, heavy, light_c, heavy, heavy]
    assert keys_of(picked) == keys_of(one_cycle) * 2


def test_round_robin_weights_change_takes_effect() -> None:
    backends = pool(1, 1)
    strategy = RoundRobin()
    shares(strategy, backends, picks=10)
    backends[1].weight = 3
    assert shares(strategy, backends, picks=400) == pytest.approx([0.25, 0.75], abs=0.01)


def test_round_robin_continues_when_a_backend_leaves_and_returns() -> None:
    first, leaving, third = pool(1, 1, 1)
    strategy = RoundRobin()
    for _ in range(4):
        strategy.pick([first, leaving, third], None)

    while_away = [strategy.pick([first, third], None) for _ in range(100)]
    assert_even(while_away, [first, third])

    back = [strategy.pick([first, leaving, third], None) for _ in range(300)]
    assert leaving in back[:3]  # it starts afresh, not behind by the turns it missed
    assert_even(back, [first, leaving, third])


def test_round_robin_forgets_departed_backends() -> None:
    strategy = RoundRobin()
    for generation in range(50):
        backends = [Backend(f"10.0.{generation}.{n}:80") for n in range(3)]
        strategy.pick(backends, None)
    # Backends with changing addresses come and go for ever; the state must not grow with them.
    assert len(strategy._smooth.current) == 3


# Least connections.


def test_least_connections_prefers_the_idle_backend() -> None:
    backends = pool(1, 1, 1)
    backends[0].active, backends[1].active, backends[2].active = 4, 0, 2
    strategy = LeastConnections()
    assert {strategy.pick(backends, None).key for _ in range(10)} == {backends[1].key}


def test_least_connections_compares_load_per_weight() -> None:
    light, heavy = pool(1, 4)
    light.active, heavy.active = 1, 3  # 1 per unit of weight against 0.75
    assert LeastConnections().pick([light, heavy], None) is heavy
    heavy.active = 5  # 1.25 per unit
    assert LeastConnections().pick([light, heavy], None) is light


def test_least_connections_ties_take_turns() -> None:
    backends = pool(1, 1, 1, 1)
    for backend in backends:
        backend.active = 2
    strategy = LeastConnections()
    assert keys_of([strategy.pick(backends, None) for _ in range(4)]) == keys_of(backends)


def test_least_connections_only_the_tied_share_a_tie() -> None:
    backends = pool(1, 1, 1)
    backends[1].active = 3
    strategy = LeastConnections()
    counts = Counter(strategy.pick(backends, None).key for _ in range(100))
    assert counts == {backends[0].key: 50, backends[2].key: 50}


def test_least_connections_under_load_shares_by_weight() -> None:
    backends = pool(1, 2, 3)
    strategy = LeastConnections()
    in_flight: deque[Backend] = deque()
    counts: Counter[str] = Counter()
    for _ in range(PICKS):
        chosen = strategy.pick(backends, None)
        chosen.active += 1
        in_flight.append(chosen)
        counts[chosen.key] += 1
        if len(in_flight) > 30:  # requests finish in the order they started
            in_flight.popleft().active -= 1
    assert_weighted([counts[backend.key] / PICKS for backend in backends], (1, 2, 3))


# Power of two choices.


def test_two_choices_never_picks_the_most_loaded_of_three() -> None:
    backends = pool(1, 1, 1)
    backends[2].active = 100
    strategy = RandomTwoChoices(random.Random(11))
    counts = Counter(strategy.pick(backends, None).key for _ in range(PICKS))
    # The two draws are distinct, so one of them is always an idle backend.
    assert counts[backends[2].key] == 0
    assert counts[backends[0].key] / PICKS == pytest.approx(0.5, abs=TOLERANCE)


def test_two_choices_prefers_lighter_load_per_weight() -> None:
    light, heavy = pool(1, 4)
    light.active, heavy.active = 1, 3
    strategy = RandomTwoChoices(random.Random(3))
    assert {strategy.pick([light, heavy], None).key for _ in range(50)} == {heavy.key}


def test_two_choices_with_one_candidate_returns_it() -> None:
    only = Backend("10.0.0.1:80", weight=5, active=9)
    assert RandomTwoChoices(random.Random(0)).pick([only], None) is only


def test_two_choices_is_reproducible_with_a_seed() -> None:
    backends = pool(1, 2, 3, 4)
    one, two = RandomTwoChoices(random.Random(42)), RandomTwoChoices(random.Random(42))
    assert keys_of([one.pick(backends, None) for _ in range(50)]) == keys_of(
        [two.pick(backends, None) for _ in range(50)]
    )


# Consistent hashing.

HASH_KEYS = [f"session-{n}".encode() for n in range(PICKS)]


def placement(backends: list[Backend]) -> dict[bytes, str]:
    strategy = HashStrategy()
    return {key: strategy.pick(backends, key).key for key in HASH_KEYS}


def test_hash_same_key_same_backend_whatever_the_order() -> None:
    backends = pool(1, 1, 2, 3)
    strategy = HashStrategy()
    chosen = strategy.pick(backends, b"user-42").key
    assert {strategy.pick(backends, b"user-42").key for _ in range(20)} == {chosen}
    assert strategy.pick(list(reversed(backends)), b"user-42").key == chosen


def test_hash_removing_a_backend_moves_only_its_keys() -> None:
    backends = pool(1, 1, 1, 1, 1)
    before = placement(backends)
    removed = backends.pop(2)
    after = placement(backends)
    moved = {key for key in HASH_KEYS if before[key] != after[key]}
    assert moved == {key for key in HASH_KEYS if before[key] == removed.key}
    assert all(after[key] != removed.key for key in HASH_KEYS)


def test_hash_adding_a_backend_moves_about_its_share_and_only_to_it() -> None:
    backends = pool(1, 1, 1, 1, 1)
    before = placement(backends)
    added = Backend("10.0.0.6:80")
    after = placement([*backends, added])
    moved = [key for key in HASH_KEYS if before[key] != after[key]]
    assert all(after[key] == added.key for key in moved)
    assert len(moved) / PICKS == pytest.approx(1 / 6, abs=TOLERANCE)


def test_hash_without_a_key_rotates() -> None:
    backends = pool(1, 1, 1)
    strategy = HashStrategy()
    assert keys_of([strategy.pick(backends, None) for _ in range(3)]) == keys_of(backends)


# Construction by name.


def test_make_strategy_by_name() -> None:
    kinds = {name: type(make_strategy(name, random.Random(1))) for name in STRATEGY_NAMES}
    assert kinds == {
        "round_robin": RoundRobin,
        "least_connections": LeastConnections,
        "random_two": RandomTwoChoices,
        "hash": HashStrategy,
    }
    assert isinstance(make_strategy("random_two"), RandomTwoChoices)  # its own rng when none is given


def test_make_strategy_rejects_an_unknown_name() -> None:
    with pytest.raises(ValueError, match="unknown balancing strategy 'weighted'"):
        make_strategy("weighted")


# Any candidates, any key: the answer is one of the candidates.

backend_lists = st.lists(
    st.builds(
        Backend,
        key=st.text(min_size=1, max_size=20),
        weight=st.integers(min_value=1, max_value=1000),
        active=st.integers(min_value=0, max_value=10_000),
    ),
    min_size=1,
    max_size=8,
)


@settings(max_examples=200, deadline=None)
@given(
    rounds=st.lists(st.tuples(backend_lists, st.none() | st.binary(max_size=64)), min_size=1, max_size=6),
    seed=st.integers(min_value=0, max_value=2**32),
)
def test_every_pick_is_one_of_the_candidates(
    rounds: list[tuple[list[Backend], bytes | None]], seed: int
) -> None:
    strategies = [make_strategy(name, random.Random(seed)) for name in STRATEGY_NAMES]
    for candidates, hash_key in rounds:  # one strategy sees the set change between picks
        for strategy in strategies:
            picked = strategy.pick(candidates, hash_key)
            assert any(picked is candidate for candidate in candidates)
