"""Routing parameters in a client's username: `alice_country-us_session-1a_ttl-10m`.

The grammar: the account name, then any number of `<separator><key>-<value>`
segments. Each key may appear once; the keys and their values are:

    country   two letters (ISO 3166-1 alpha-2), any case
    state     letters, digits and + (a space), up to 64
    city      letters, digits and + (a space), up to 64
    asn       digits, optionally after AS
    session   letters, digits and -, up to 64: the client's sticky session
    ttl       the session's lifetime: a number with s, m or h (a bare number is minutes)
    pool      a vendor pool's name
    provider  a provider's name (only that provider serves the connection)

Anything else -- an unknown key, a malformed value, a repeated key, an empty
segment -- is refused (`AuthFailed`, so 407 or a SOCKS authentication
failure) with the reason; a parameter is never silently ignored.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass

from lanner.errors import AuthFailed

SEPARATOR = "_"

_VALUES = {
    "country": re.compile(r"[A-Za-z]{2}"),
    "state": re.compile(r"[A-Za-z0-9+]{1,64}"),
    "city": re.compile(r"[A-Za-z0-9+]{1,64}"),
    "asn": re.compile(r"(?:[Aa][Ss])?[0-9]{1,10}"),
    "session": re.compile(r"[A-Za-z0-9-]{1,64}"),
    "ttl": re.compile(r"[0-9]{1,7}[smh]?"),
    "pool": re.compile(r"[A-Za-z0-9.-]{1,64}"),
    "provider": re.compile(r"[A-Za-z0-9.-]{1,64}"),
}
_TTL_UNITS = {"s": 1, "m": 60, "h": 3600}


@dataclass(frozen=True, slots=True)
class RouteParams:
    country: str | None = None
    state: str | None = None
    city: str | None = None
    asn: str | None = None
    session: str | None = None
    ttl: float | None = None  # seconds
    pool: str | None = None
    provider: str | None = None

    @property
    def geo(self) -> dict[str, str]:
        """The geo parameters given (country, state, city, asn)."""
        given = {"country": self.country, "state": self.state, "city": self.city, "asn": self.asn}
        return {key: value for key, value in given.items() if value is not None}


NO_PARAMS = RouteParams()


class ParamRules:
    """What a presented username may carry, given the configured pools and providers."""

    def __init__(self, pools: Collection[str], providers: Collection[str], max_ttl: float) -> None:
        self.pools = frozenset(pools)
        self.providers = frozenset(providers)
        self.max_ttl = max_ttl

    def parse(self, presented: str, account_len: int) -> RouteParams:
        """The parameters after the first `account_len` characters of `presented` (the account)."""
        rest = presented[account_len:]
        if not rest:
            return NO_PARAMS
        if not rest.startswith(SEPARATOR):
            raise AuthFailed(f"username {presented!r}: parameters must follow {SEPARATOR!r}")
        values: dict[str, str | float] = {}
        for segment in rest[len(SEPARATOR) :].split(SEPARATOR):
            key, dash, value = segment.partition("-")
            self._check(presented, key, dash, value, values)
            values[key] = self._normal(key, value)
        return RouteParams(**values)  # type: ignore[arg-type]

    def _check(self, presented: str, key: str, dash: str, value: str, seen: dict[str, str | float]) -> None:
        pattern = _VALUES.get(key)
        if pattern is None:
            raise AuthFailed(f"username {presented!r}: unknown routing parameter {key!r}")
        if key in seen:
            raise AuthFailed(f"username {presented!r}: parameter {key!r} given twice")
        if not dash or not pattern.fullmatch(value):
            raise AuthFailed(f"username {presented!r}: malformed {key} value {value!r}")
        if key == "pool" and value not in self.pools:
            raise AuthFailed(f"username {presented!r}: no vendor pool {value!r}")
        if key == "provider" and value not in self.providers:
            raise AuthFailed(f"username {presented!r}: no provider {value!r}")

    def _normal(self, key: str, value: str) -> str | float:
        if key == "ttl":
            unit = value[-1] if value[-1] in _TTL_UNITS else "m"
            seconds = float(value.rstrip("smh")) * _TTL_UNITS[unit]
            if not 1 <= seconds <= self.max_ttl:
                raise AuthFailed(f"ttl {value!r} is outside 1s..{self.max_ttl:g}s")
            return seconds
        if key == "asn":
            return value.lstrip("ASas")
        if key in ("session", "pool", "provider"):
            return value
        return value.lower()
