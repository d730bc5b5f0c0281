"""Upstream proxy vendors, as validated data: providers, their credential templates, pools.

A provider is described by config alone: where it listens, which handshake it
speaks, and a template that renders lanner's routing parameters into the
vendor's own credential grammar. Templates are checked here (known fields,
balanced optional groups); `upstream/templates.py` renders them.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator, model_validator

from lanner.config.types import Duration, Frozen, HostPort

# The routing parameters a client may put after its name; the same names are the template fields.
GEO_PARAMS = ("country", "state", "city", "asn")
CLIENT_PARAMS = (*GEO_PARAMS, "session", "ttl", "pool", "provider")
TEMPLATE_FIELDS = (*GEO_PARAMS, "session", "ttl", "user")

Action = Literal["auth", "session_gone", "no_exit", "target", "failure"]

_FIELD = re.compile(r"\{([a-z_]+)\}")

# What a vendor's refusal of the tunnel means (statuses vendors document; override per provider).
DEFAULT_HTTP_ACTIONS: dict[int, Action] = {
    402: "auth",  # payment required: the account is out of traffic
    403: "auth",
    407: "auth",
    429: "failure",
    502: "session_gone",
    503: "failure",
    504: "target",
    522: "no_exit",
    525: "no_exit",
}
# SOCKS5 reply codes (RFC 1928 section 6); a refused method or password is "auth".
DEFAULT_SOCKS_ACTIONS: dict[int, Action] = {
    0x01: "failure",
    0x02: "auth",
    0x03: "target",
    0x04: "target",
    0x05: "target",
    0x06: "target",
}


def template_fields(template: str) -> list[str]:
    """The fields a credential template names, after checking its optional groups."""
    depth = 0
    for char in template:
        if char == "[":
            depth += 1
        elif char == "]":
            depth -= 1
        if depth not in (0, 1):
            raise ValueError(f"optional groups [...] must be balanced and not nested: {template!r}")
    if depth:
        raise ValueError(f"optional groups [...] must be balanced and not nested: {template!r}")
    fields = _FIELD.findall(template)
    unknown = sorted(set(fields) - set(TEMPLATE_FIELDS))
    if unknown:
        raise ValueError(f"unknown template fields {unknown}; known: {list(TEMPLATE_FIELDS)}")
    if "ttl" in _FIELD.findall(re.sub(r"\[[^\]]*\]", "", template)):
        raise ValueError("{ttl} is written only with a session: keep it in an [optional group]")
    stray = _FIELD.sub("", template)
    if "{" in stray or "}" in stray:
        raise ValueError(f"a brace that opens no {{field}}: {template!r}")
    return fields


class FieldFormat(Frozen):
    """How one geo value is written for a vendor."""

    case: Literal["lower", "upper", "keep"] = "lower"
    space: str = Field("", description="what a space (written + by clients) becomes, e.g. _")
    prefix: str = Field("", description="put before the value, e.g. us_ for an Oxylabs state")


class SessionFormat(Frozen):
    """The vendor's session id: lanner derives it from the client's (HMAC), in this charset and length."""

    charset: Literal["alnum", "lower_alnum", "digits", "hex"] = "lower_alnum"
    length: int = Field(10, ge=4, le=64)


class TtlFormat(Frozen):
    """How a session's lifetime is written for a vendor."""

    unit: Literal["s", "m", "h"] = "m"
    suffix: bool = Field(False, description="write the unit after the number (30m), as IPRoyal does")
    min: Duration = Field(1.0, description="shorter lifetimes are raised to this")
    max: Duration = Field(86400.0, description="longer lifetimes are cut to this")


class ProviderBreaker(Frozen):
    """A provider leaves selection after repeated failures; a probe brings it back."""

    consecutive_failures: int = Field(5, ge=1, description="failures in a row that open the breaker")
    failure_rate: float = Field(0.5, gt=0, le=1, description="share of failures in the window that opens it")
    window: Duration = Field(30.0, description="seconds the failure rate is measured over")
    min_requests: int = Field(20, ge=1, description="handshakes in the window before the rate counts")
    open_for: Duration = Field(30.0, description="seconds before a half-open probe (doubles each time)")
    max_open_for: Duration = 300.0


class ProviderConfig(Frozen):
    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9.-]+$")
    protocol: Literal["http", "socks5"] = Field(
        "http", description="the vendor's handshake: CONNECT or SOCKS5"
    )
    endpoints: list[HostPort] = Field(min_length=1, description="the vendor's gateways (tried in turn)")
    username: str | None = Field(None, description="credential template, e.g. customer-X[-cc-{country}]")
    password: str | None = Field(None, description="credential template (some vendors route by password)")
    requires_whitelist: bool = Field(False, description="the vendor knows lanner by address: no credentials")
    weight: int = Field(1, ge=1, le=10_000)
    defaults: dict[str, str] = Field(
        default_factory=dict, description="parameters used when a client names none"
    )
    countries: list[str] = Field(default_factory=list, description="the only countries it serves; none: any")
    fields: dict[str, FieldFormat] = Field(default_factory=dict, description="country, state, city, asn")
    session: SessionFormat = Field(default_factory=lambda: SessionFormat())
    ttl: TtlFormat = Field(default_factory=lambda: TtlFormat())
    max_connections: int | None = Field(None, ge=1, description="open tunnels through it at most")
    requests_per_second: float | None = Field(None, gt=0, description="new tunnels per second at most")
    errors: dict[int, Action] = Field(
        default_factory=dict, description="HTTP status -> action (adds to defaults)"
    )
    socks_errors: dict[int, Action] = Field(default_factory=dict, description="SOCKS5 reply -> action")
    breaker: ProviderBreaker = Field(default_factory=lambda: ProviderBreaker())
    handshake_timeout: Duration = Field(
        10.0, description="seconds to connect and finish the vendor's handshake"
    )

    @field_validator("username", "password")
    @classmethod
    def _template(cls, template: str | None) -> str | None:
        if template is not None:
            template_fields(template)
        return template

    @field_validator("countries")
    @classmethod
    def _countries(cls, countries: list[str]) -> list[str]:
        return [country.lower() for country in countries]

    @model_validator(mode="after")
    def _consistent(self) -> ProviderConfig:
        if self.requires_whitelist and (self.username or self.password):
            raise ValueError(f"provider {self.name!r}: requires_whitelist takes no credentials")
        if not self.requires_whitelist and self.username is None:
            raise ValueError(f"provider {self.name!r} needs a username template (or requires_whitelist)")
        unknown = set(self.defaults) - set(GEO_PARAMS)
        unknown |= set(self.fields) - set(GEO_PARAMS)
        if unknown:
            raise ValueError(
                f"provider {self.name!r}: defaults and fields name geo parameters only: {unknown}"
            )
        if self.ttl.min > self.ttl.max:
            raise ValueError(f"provider {self.name!r}: ttl.min is above ttl.max")
        return self

    @property
    def supports(self) -> frozenset[str]:
        """The parameters its templates can carry (its geo capability)."""
        return frozenset(template_fields(self.username or "") + template_fields(self.password or ""))

    def action_for_status(self, status: int) -> Action:
        return self.errors.get(status) or DEFAULT_HTTP_ACTIONS.get(status, "failure")

    def action_for_socks(self, code: int) -> Action:
        return self.socks_errors.get(code) or DEFAULT_SOCKS_ACTIONS.get(code, "failure")


class VendorPoolConfig(Frozen):
    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9.-]+$")
    providers: list[str] = Field(min_length=1)
    session_ttl: Duration = Field(600.0, description="a sticky session's lifetime when the client names none")
    attempts: int = Field(3, ge=1, le=10, description="providers (or endpoints) tried for one tunnel")


class VendorsConfig(Frozen):
    """Upstream proxy vendors behind lanner's forward listeners."""

    providers: list[ProviderConfig] = Field(default_factory=list)
    pools: list[VendorPoolConfig] = Field(
        default_factory=list, description="groups of providers; default: one pool `default` of all"
    )
    state: str | None = Field(None, description="redis://… to share pins, bans and counters; none: local")
    state_timeout: Duration = Field(
        0.25, description="seconds a Redis call may take before local state is used"
    )
    session_secret: str = Field(
        "lanner-sessions",
        min_length=8,
        description="HMAC key deriving vendor session ids; same on every node",
    )
    check_target: HostPort | None = Field(
        None, description="host:port a half-open breaker's probe CONNECTs to; none: a real request probes"
    )
    max_ttl: Duration = Field(86400.0, description="the longest session a client may ask for")

    @field_validator("state")
    @classmethod
    def _redis_url(cls, url: str | None) -> str | None:
        if url is not None and not url.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("state is a redis://, rediss:// or unix:// URL")
        return url

    @model_validator(mode="after")
    def _names_resolve(self) -> VendorsConfig:
        names = [provider.name for provider in self.providers]
        if len(set(names)) != len(names):
            raise ValueError("duplicate provider names")
        pool_names = [pool.name for pool in self.pools]
        if len(set(pool_names)) != len(pool_names):
            raise ValueError("duplicate vendor pool names")
        for pool in self.pools:
            unknown = set(pool.providers) - set(names)
            if unknown:
                raise ValueError(f"vendor pool {pool.name!r} names unknown providers {sorted(unknown)}")
        return self

    @property
    def all_pools(self) -> list[VendorPoolConfig]:
        if self.pools or not self.providers:
            return list(self.pools)
        return [VendorPoolConfig(name="default", providers=[provider.name for provider in self.providers])]
