"""Reverse-proxy routes and backend pools, as validated data.

Defaults for outlier detection follow Envoy's (consecutive 5xx 5, consecutive
gateway failures 5, base ejection 30 s, at most 10% of a pool ejected but
always at least one backend), except that gateway failures are enforced by
default (Envoy leaves that to the operator).
"""

from __future__ import annotations

import ipaddress
from typing import Literal

from pydantic import Field, field_validator, model_validator

from lanner.config.types import Duration, Frozen, HostPort

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def _status_range(spec: int | str) -> int | str:
    low, _, high = str(spec).partition("-")
    if not low.isdigit() or (high and not high.isdigit()) or not 100 <= int(low) <= int(high or low) <= 599:
        raise ValueError(f"expected a status or a range like 200-399, got {spec!r}")
    return spec


class HeaderRules(Frozen):
    """Header changes; values may use $remote_addr, $scheme, $host, $request_id, $upstream_addr."""

    set: dict[str, str] = Field(default_factory=dict, description="replace (or add) these headers")
    add: dict[str, str] = Field(default_factory=dict, description="add these, keeping existing ones")
    remove: list[str] = Field(default_factory=list, description="header names removed")

    @property
    def empty(self) -> bool:
        return not (self.set or self.add or self.remove)


class RouteMatch(Frozen):
    """Every criterion given must match; an empty match matches every request."""

    hosts: list[str] = Field(default_factory=list, description="Host names: exact or *.wildcard")
    path: str | None = Field(None, description="path prefix, e.g. /api/ (matches /api/ and below)")
    methods: list[str] = Field(default_factory=list, description="request methods, e.g. [GET, HEAD]")
    headers: dict[str, str] = Field(
        default_factory=dict, description="header name -> exact value, or * for any value (present)"
    )

    @field_validator("path")
    @classmethod
    def _absolute(cls, path: str | None) -> str | None:
        if path is not None and not path.startswith("/"):
            raise ValueError("a path prefix starts with /")
        return path


class ReverseRoute(Frozen):
    """A reverse listener's route: requests it matches go to `pool`. The first match wins."""

    match: RouteMatch = Field(default_factory=lambda: RouteMatch())
    pool: str = Field(min_length=1)
    strip_prefix: str | None = Field(None, description="removed from the start of the path")
    add_prefix: str | None = Field(None, description="put before the path (after strip_prefix)")
    request_headers: HeaderRules = Field(default_factory=lambda: HeaderRules())
    response_headers: HeaderRules = Field(default_factory=lambda: HeaderRules())

    @field_validator("strip_prefix", "add_prefix")
    @classmethod
    def _prefix(cls, prefix: str | None) -> str | None:
        if prefix is not None and not prefix.startswith("/"):
            raise ValueError("a prefix starts with /")
        return prefix


class BackendConfig(Frozen):
    address: HostPort
    weight: int = Field(1, ge=1, le=10_000)
    drain: bool = Field(False, description="no new requests; those in flight finish")


class HealthCheckConfig(Frozen):
    """Active checks of every backend; a backend is down after `fall` failures, up after `rise` passes."""

    type: Literal["http", "tcp"] = "http"
    path: str = Field("/", description="http: the path requested with GET")
    host: str | None = Field(None, description="http: the Host header (default: the backend's address)")
    statuses: list[int | str] = Field(
        default_factory=lambda: list[int | str](["200-399"]), description="http: statuses that pass"
    )
    interval: Duration = 5.0
    timeout: Duration = 2.0
    rise: int = Field(2, ge=1)
    fall: int = Field(3, ge=1)
    jitter: float = Field(0.2, ge=0, le=1, description="share of the interval added at random")

    @field_validator("statuses")
    @classmethod
    def _statuses(cls, statuses: list[int | str]) -> list[int | str]:
        for spec in statuses:
            _status_range(spec)
        return statuses

    def passes(self, status: int) -> bool:
        for spec in self.statuses:
            low, _, high = str(spec).partition("-")
            if int(low) <= status <= int(high or low):
                return True
        return False


class OutlierConfig(Frozen):
    """Passive ejection of backends that fail real requests (Envoy's defaults as a reference)."""

    consecutive_5xx: int = Field(5, ge=0, description="5xx answers in a row (gateway failures count); 0: off")
    consecutive_gateway_failures: int = Field(
        5, ge=0, description="connect refused/reset/timeout in a row; 0: off"
    )
    base_ejection_time: Duration = Field(30.0, description="times the number of ejections so far")
    max_ejection_time: Duration = 300.0
    max_ejection_percent: int = Field(
        10, ge=0, le=100, description="share of the pool ejected at once (at least one backend)"
    )


class BreakerConfig(Frozen):
    """Per backend: past a limit a request is answered 503 at once instead of queueing."""

    max_connections: int = Field(1024, ge=1, description="open connections to the backend")
    max_pending: int = Field(1024, ge=0, description="requests waiting for a connection")
    max_requests: int = Field(1024, ge=1, description="requests in flight")


class RetryConfig(Frozen):
    """Idempotent requests that failed before the backend answered are tried on another backend."""

    attempts: int = Field(1, ge=0, le=5, description="tries after the first")
    budget: float = Field(0.2, ge=0, le=1, description="retries in flight at most this share of requests")
    min_concurrency: int = Field(3, ge=0, description="retries always allowed up to this many at once")


class PoolConfig(Frozen):
    name: str = Field(min_length=1)
    backends: list[BackendConfig] = Field(min_length=1)
    strategy: Literal["round_robin", "least_connections", "random_two", "hash"] = "round_robin"
    hash_on: Literal["client", "header", "cookie"] = Field(
        "client", description="hash strategy: what is hashed (the client address, a header or a cookie)"
    )
    hash_name: str | None = Field(None, description="hash strategy: the header or cookie name")
    health: HealthCheckConfig | None = None
    outlier: OutlierConfig = Field(default_factory=lambda: OutlierConfig())
    breaker: BreakerConfig = Field(default_factory=lambda: BreakerConfig())
    retries: RetryConfig = Field(default_factory=lambda: RetryConfig())
    connect_timeout: Duration = 5.0
    response_timeout: Duration = Field(60.0, description="seconds until the response head arrives (504)")
    read_timeout: Duration = Field(60.0, description="seconds without a byte of the response (cut off)")
    max_idle: int = Field(64, ge=0, description="idle keep-alive connections kept per backend")
    idle_timeout: Duration = Field(60.0, description="an idle kept connection is closed after this")
    send_proxy: Literal["v1", "v2"] | None = Field(None, description="PROXY protocol header to backends")
    tls: bool = Field(False, description="speak HTTPS to the backends")
    verify: bool = Field(True, description="tls: verify the backends' certificates")
    ca_file: str | None = Field(None, description="tls: extra CAs trusted for the backends")

    @model_validator(mode="after")
    def _consistent(self) -> PoolConfig:
        addresses = [backend.address for backend in self.backends]
        if len(set(addresses)) != len(addresses):
            raise ValueError(f"pool {self.name!r} lists a backend twice")
        if self.strategy == "hash" and self.hash_on != "client" and not self.hash_name:
            raise ValueError(f"hash_on {self.hash_on} needs hash_name")
        return self


class ProxyProtocolConfig(Frozen):
    """Accept PROXY protocol v1/v2 headers, only from these peers (a header from others is refused)."""

    trusted: list[Network] = Field(min_length=1, description="addresses allowed (and required) to send one")
