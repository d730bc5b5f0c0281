"""Choosing which backend of a pool serves the next request.

A strategy is handed the backends eligible right now and returns one of them.
The set may change between calls as backends go down and come back; strategies
that keep state (round robin, least-connections' tie-break) key it by
`Candidate.key` and drop the state of backends that left, so it stays as small
as the pool.

This runs once per proxied request, so a pick is one or two passes over the
candidates with integer arithmetic and no per-pick containers for round robin
and least-connections. It never does I/O, never reads the clock and never
changes a backend: the pool owns `active`.
"""

from __future__ import annotations

import hashlib
import math
import random
from collections.abc import Callable, Sequence
from typing import Protocol, TypeVar


class Weighted(Protocol):
    """What rendezvous hashing reads: a backend, or a vendor provider."""

    @property
    def key(self) -> str:
        """Stable identity ("host:port", a provider's name); unique within a pool."""

    @property
    def weight(self) -> int:
        """Relative share of requests, >= 1."""


class Candidate(Weighted, Protocol):
    """What a strategy reads from a backend."""

    @property
    def active(self) -> int:
        """Requests in flight now (the pool keeps it up to date)."""


B = TypeVar("B", bound=Candidate)
W = TypeVar("W", bound=Weighted)


class Strategy(Protocol):
    def pick(self, candidates: Sequence[B], hash_key: bytes | None) -> B:
        """One of `candidates` (non-empty); `hash_key` matters only to `HashStrategy`."""
        ...


class _SmoothWeights:
    """nginx's smooth weighted round robin: a running "current weight" per backend key.

    Each pick adds every offered backend's weight to its current weight, takes
    the highest and subtracts the offered total from it. Over any run the
    shares match the weights, and a heavy backend's turns are spread out
    (weights 5,1,1 give a a b a c a a) rather than bunched.
    """

    __slots__ = ("current",)

    def __init__(self) -> None:
        self.current: dict[str, int] = {}

    def pick(self, offered: Sequence[B]) -> B:
        current = self.current
        best = offered[0]
        best_value = -math.inf
        total = 0
        for candidate in offered:
            weight = candidate.weight
            total += weight
            value = current.get(candidate.key, 0) + weight
            current[candidate.key] = value
            if value > best_value:  # strictly greater: the first of equals wins, so equal weights rotate
                best, best_value = candidate, value
        current[best.key] -= total
        return best

    def forget_departed(self, candidates: Sequence[Candidate]) -> None:
        """Drop the state of backends no longer among `candidates`; one that returns starts from zero."""
        if len(self.current) <= len(candidates):
            return  # nobody left since the last pick (the common case, checked in O(1))
        current = self.current
        self.current = {c.key: current[c.key] for c in candidates if c.key in current}


class RoundRobin:
    """Smooth weighted round robin; with equal weights, plain rotation in candidate order."""

    __slots__ = ("_smooth",)

    def __init__(self) -> None:
        self._smooth = _SmoothWeights()

    def pick(self, candidates: Sequence[B], hash_key: bytes | None) -> B:
        chosen = self._smooth.pick(candidates)
        self._smooth.forget_departed(candidates)
        return chosen


class LeastConnections:
    """The backend with the fewest requests in flight per unit of weight.

    Loads are compared as `active * other.weight` to stay in integers. Ties --
    the usual case on an idle pool, where every backend has 0 in flight -- go
    to smooth weighted round robin among the tied backends (as nginx's
    least_conn does), so equal backends take turns instead of the first one
    taking everything, and an idle pool is still shared by weight.
    """

    __slots__ = ("_smooth",)

    def __init__(self) -> None:
        self._smooth = _SmoothWeights()

    def pick(self, candidates: Sequence[B], hash_key: bytes | None) -> B:
        best = candidates[0]
        ties = 0
        for candidate in candidates:
            difference = candidate.active * best.weight - best.active * candidate.weight
            if difference < 0:
                best, ties = candidate, 1
            elif difference == 0:
                ties += 1
        if ties == 1:
            return best
        least, weight = best.active, best.weight
        tied = [c for c in candidates if c.active * weight == least * c.weight]
        chosen = self._smooth.pick(tied)
        self._smooth.forget_departed(candidates)
        return chosen


class RandomTwoChoices:
    """Power of two choices: draw two distinct backends by weight, keep the less loaded.

    Because the two are distinct, the single most loaded backend of a pool is
    never chosen unless it ties. On a tie the first draw wins, which keeps an
    idle pool's shares proportional to weight.
    """

    __slots__ = ("_rng",)

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng

    def pick(self, candidates: Sequence[B], hash_key: bytes | None) -> B:
        if len(candidates) == 1:
            return candidates[0]
        total = 0
        for candidate in candidates:
            total += candidate.weight
        first = _draw(candidates, self._rng.randrange(total), skip=-1)
        drawn = candidates[first]
        other = candidates[_draw(candidates, self._rng.randrange(total - drawn.weight), skip=first)]
        if other.active * drawn.weight < drawn.active * other.weight:
            return other
        return drawn


def _draw(candidates: Sequence[Candidate], point: int, skip: int) -> int:
    """The index whose weight interval holds `point`, laying the weights end to end without `skip`."""
    for index, candidate in enumerate(candidates):
        if index == skip:
            continue
        point -= candidate.weight
        if point < 0:
            return index
    raise ValueError("point beyond the total weight (is every weight >= 1?)")


class HashStrategy:
    """Weighted rendezvous (highest random weight) hashing of `hash_key` onto a backend.

    Every backend gets a score from a hash of (hash_key, backend key) alone,
    and the highest wins. A key's scores do not depend on which other
    backends are present, so removing a backend moves only the keys it held
    and adding one moves to it only the keys it now outscores (about
    weight/total of them). The score `-weight / ln(u)`, with `u` uniform in
    (0, 1), wins with probability weight/total.

    Without a hash key there is nothing to be consistent about: requests are
    spread by smooth weighted round robin instead.
    """

    __slots__ = ("_fallback",)

    def __init__(self) -> None:
        self._fallback = RoundRobin()

    def pick(self, candidates: Sequence[B], hash_key: bytes | None) -> B:
        if hash_key is None:
            return self._fallback.pick(candidates, None)
        keyed = _keyed(hash_key)
        best = candidates[0]
        best_score = -1.0
        for candidate in candidates:
            score = _rendezvous_score(keyed, candidate)
            # Equal scores (a 52-bit collision) go to the larger key so that order never matters.
            if score > best_score or (score == best_score and candidate.key > best.key):
                best, best_score = candidate, score
        return best


def rendezvous_order(candidates: Sequence[W], hash_key: bytes) -> list[W]:
    """`candidates` by their rendezvous score for `hash_key`, best first (HashStrategy picks the first)."""
    keyed = _keyed(hash_key)
    return sorted(candidates, key=lambda c: (_rendezvous_score(keyed, c), c.key), reverse=True)


def _keyed(hash_key: bytes) -> hashlib.blake2b:
    # Length-prefixed so that no (hash_key, candidate key) pair hashes like another.
    keyed = hashlib.blake2b(len(hash_key).to_bytes(8, "big"), digest_size=8)
    keyed.update(hash_key)
    return keyed


_UNIT_STEPS = float(1 << 52)


def rendezvous_score(hash_key: bytes, candidate: Weighted) -> float:
    """One candidate's weighted rendezvous score for `hash_key` (higher wins)."""
    return _rendezvous_score(_keyed(hash_key), candidate)


def _rendezvous_score(keyed: hashlib.blake2b, candidate: Weighted) -> float:
    digest = keyed.copy()
    digest.update(candidate.key.encode())
    draw = int.from_bytes(digest.digest(), "big") >> 12
    # 52 bits and a half step keep u exactly representable and strictly inside (0, 1),
    # so the log is finite and negative and the score positive.
    unit = (draw + 0.5) / _UNIT_STEPS
    return -candidate.weight / math.log(unit)


STRATEGY_NAMES = ("round_robin", "least_connections", "random_two", "hash")


def make_strategy(name: str, rng: random.Random | None = None) -> Strategy:
    """A fresh strategy by its configuration name; `rng` is used by "random_two" (seed it in tests)."""
    factories: dict[str, Callable[[], Strategy]] = {
        "round_robin": RoundRobin,
        "least_connections": LeastConnections,
        "random_two": lambda: RandomTwoChoices(rng if rng is not None else random.Random()),
        "hash": HashStrategy,
    }
    factory = factories.get(name)
    if factory is None:
        raise ValueError(f"unknown balancing strategy {name!r}; expected one of {', '.join(STRATEGY_NAMES)}")
    return factory()
