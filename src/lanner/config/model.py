"""The configuration as validated, immutable data.

A `Config` is a snapshot: built once from YAML and the environment, checked
completely, never mutated. Every limit the engine enforces has a field here
with its default.
"""

from __future__ import annotations

import ipaddress
import os
from typing import Annotated, Any, Literal

from pydantic import Discriminator, Field, Tag, model_validator

from lanner.config.admin import AdminConfig
from lanner.config.analysis import AnalysisConfig, Analyze
from lanner.config.pools import PoolConfig, ProxyProtocolConfig, ReverseRoute
from lanner.config.types import (
    DEFAULT_BIND,
    Duration,
    HostPort,
    PortSpec,
    Size,
    parse_duration,
    parse_size,
    split_hostport,
)
from lanner.config.types import Frozen as _Frozen
from lanner.config.vendors import VendorsConfig

__all__ = ["DEFAULT_BIND", "parse_duration", "parse_size", "split_hostport"]  # re-exported

Protocol = Literal["http", "socks4", "socks5"]
_ALL_PROTOCOLS: tuple[Protocol, ...] = ("http", "socks4", "socks5")


class Limits(_Frozen):
    """Named bounds; each listener may override any of them."""

    handshake_timeout: float = Field(10.0, gt=0, description="seconds to finish a handshake")
    connect_timeout: float = Field(10.0, gt=0, description="seconds to open an upstream")
    idle_timeout: float = Field(120.0, gt=0, description="seconds without a byte either way")
    max_connections: int = Field(10_000, gt=0, description="open client connections per listener")
    max_header_bytes: int = Field(32 * 1024, ge=1024, description="HTTP head size (431 past it)")
    max_request_line: int = Field(8 * 1024, ge=256, description="request line size (414 past it)")
    max_socks_field: int = Field(255, ge=1, le=1024, description="SOCKS4 userid/4a host length")


class User(_Frozen):
    name: str = Field(min_length=1)
    password: str = ""
    socks4: bool = Field(False, description="may identify by SOCKS4 userid alone (no password)")


class Rule(_Frozen):
    """Allow or deny destinations; every criterion given must match. First match wins."""

    action: Literal["allow", "deny"]
    hosts: list[str] = Field(default_factory=list, description="host name globs, e.g. *.example.com")
    cidrs: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = Field(default_factory=list)
    ports: list[PortSpec] = Field(default_factory=list)
    listeners: list[str] = Field(default_factory=list)
    users: list[str] = Field(default_factory=list)
    clients: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = Field(
        default_factory=list, description="client addresses (after PROXY protocol) the rule applies to"
    )


class RedactConfig(_Frozen):
    """What is replaced by `[redacted]` before a flow reaches the store."""

    headers: list[str] = Field(
        default_factory=lambda: ["authorization", "proxy-authorization", "cookie", "set-cookie"],
        description="header names whose values are redacted (case-insensitive)",
    )
    query_params: list[str] = Field(default_factory=list, description="URL query parameters")
    json_fields: list[str] = Field(default_factory=list, description="keys in JSON bodies, at any depth")
    patterns: list[str] = Field(
        default_factory=list, description="regexes redacted in URLs, header values and text bodies"
    )


class RetentionConfig(_Frozen):
    max_age: Duration | None = Field(7 * 86400.0, description="flows older than this are deleted")
    max_size: Size | None = Field(1024**3, description="the store is kept under this size")
    interval: Duration = Field(60.0, description="seconds between retention passes")


class RecordConfig(_Frozen):
    """Recording of connections and analyzed exchanges into the flow store."""

    enabled: bool = True
    path: str | None = Field(None, description="SQLite file; default: <data_dir>/lanner.db")
    queue: int = Field(20_000, ge=1, description="records waiting for the writer; past it they are dropped")
    batch: int = Field(1_000, ge=1, description="records written per transaction at most")
    max_body: Size = Field(
        1024 * 1024, description="bodies larger than this keep their first and last halves of it"
    )
    sample: float = Field(1.0, ge=0, le=1, description="share of exchanges kept (errors always are)")
    sample_paths: dict[str, float] = Field(
        default_factory=dict, description="path prefix -> share kept; the longest prefix wins"
    )
    redact: RedactConfig = Field(default_factory=lambda: RedactConfig())
    retention: RetentionConfig = Field(default_factory=lambda: RetentionConfig())

    @model_validator(mode="after")
    def _rates(self) -> RecordConfig:
        for prefix, rate in self.sample_paths.items():
            if not 0 <= rate <= 1:
                raise ValueError(f"sample_paths[{prefix!r}] must be between 0 and 1")
        return self


class InterceptRule(_Frozen):
    """Which CONNECT and SOCKS tunnels lanner opens up; every criterion given must match.

    The first matching rule decides; `action: bypass` carves exceptions out of
    a later, broader rule. Tunnels no rule intercepts stay bypassed tunnels.
    """

    action: Literal["intercept", "bypass"] = "intercept"
    hosts: list[str] = Field(default_factory=list, description="destination host globs; none: any")
    ports: list[PortSpec] = Field(default_factory=list)
    listeners: list[str] = Field(default_factory=list)
    users: list[str] = Field(default_factory=list)
    verify: bool = Field(True, description="verify the upstream's certificate (false: test setups only)")
    ca_file: str | None = Field(None, description="extra CA certificates (PEM) trusted upstream")


class TlsConfig(_Frozen):
    """lanner's own CA and the certificates it shows intercepted clients."""

    ca_dir: str | None = Field(None, description="where the CA lives; default: <data_dir>/ca")
    leaf_cache: int = Field(1024, ge=1, description="leaf certificates kept in memory (LRU)")
    pinning_failures: int = Field(
        3, ge=1, description="failed client handshakes for a host before it is passed through"
    )


class RouteConfig(_Frozen):
    """A router or tls listener's route: connections naming `match` go to `target`."""

    match: str = Field(min_length=1, description="exact name, *.wildcard, or * (catch-all)")
    protocol: Literal["tls", "http", "any"] = Field(
        "any", description="router: which connections it routes (TLS by SNI, plain HTTP by Host)"
    )
    target: HostPort


class CertificateConfig(_Frozen):
    """A certificate a tls listener shows, chosen by the SNI the client sends."""

    cert: str = Field(description="PEM file: the certificate and its chain")
    key: str = Field(description="PEM file: its private key")
    names: list[str] = Field(
        default_factory=list, description="SNI names (exact or *.wildcard); default: the cert's SANs"
    )
    default: bool = Field(False, description="shown when no name matches (or the client sends none)")


def _route_kind(route: Any) -> str:
    """A route with a `target` is a router/tls route; any other names a pool (reverse listener)."""
    if isinstance(route, dict):
        return "<target>" if "target" in route else "<pool>"
    return "<target>" if isinstance(route, RouteConfig) else "<pool>"


AnyRoute = Annotated[
    Annotated[RouteConfig, Tag("<target>")] | Annotated[ReverseRoute, Tag("<pool>")],
    Discriminator(_route_kind),
]


class ListenerConfig(_Frozen):
    name: str = Field(min_length=1)
    type: Literal["forward", "tcp", "router", "tls", "reverse"] = "forward"
    bind: HostPort = DEFAULT_BIND
    protocols: list[Protocol] = Field(
        default_factory=lambda: list(_ALL_PROTOCOLS),
        description="forward listener: entry protocols accepted on this port",
    )
    auth: bool | None = Field(None, description="require credentials; default: when users exist")
    target: HostPort | None = Field(
        None, description="tcp listener: where every connection goes; tls listener: where unrouted ones go"
    )
    routes: list[AnyRoute] = Field(
        default_factory=list,
        description="router and tls listeners: targets chosen by SNI or Host; "
        "reverse listener: pools chosen by host, path, method and headers (first match wins)",
    )
    certificates: list[CertificateConfig] = Field(
        default_factory=list, description="tls and reverse listeners: the certificates it terminates with"
    )
    proxy_protocol: ProxyProtocolConfig | None = Field(
        None, description="accept PROXY protocol v1/v2 headers from trusted peers"
    )
    trusted_proxies: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = Field(
        default_factory=list,
        description="reverse listener: clients whose X-Forwarded-*, Forwarded and X-Real-IP are kept",
    )
    request_id_header: str = Field("X-Request-Id", description="reverse listener: the request id header")
    target_tls: bool = Field(False, description="tls listener: re-encrypt to the target")
    target_verify: bool = Field(True, description="tls listener: verify the target's certificate")
    target_ca_file: str | None = Field(None, description="tls listener: extra CAs trusted for the target")
    via: bool = Field(False, description="add a Via header to forwarded HTTP requests")
    upstream_pool: str | None = Field(
        None, description="forward listener: tunnel through this vendor pool (default: connect directly)"
    )
    analyze: Analyze | None = Field(
        None,
        description="parse and record traffic as http, redis or postgres; auto: by port, then by sniffing"
        " (default for tcp listeners; tls: none); forward and reverse listeners: http (default) or none",
    )
    limits: Limits | None = None

    @model_validator(mode="after")
    def _fields_for_type(self) -> ListenerConfig:
        if self.type == "tcp" and self.target is None:
            raise ValueError("a tcp listener needs a target")
        if self.type not in ("tcp", "tls") and self.target is not None:
            raise ValueError("target applies to tcp and tls listeners only")
        if self.type in ("router", "reverse") and not self.routes:
            raise ValueError(f"a {self.type} listener needs routes")
        if self.type not in ("router", "tls", "reverse") and self.routes:
            raise ValueError("routes apply to router, tls and reverse listeners only")
        reverse_routes = [route for route in self.routes if isinstance(route, ReverseRoute)]
        if self.type == "reverse" and len(reverse_routes) != len(self.routes):
            raise ValueError("a reverse listener's routes name a pool (not a target)")
        if self.type != "reverse" and reverse_routes:
            raise ValueError("routes naming a pool belong to reverse listeners")
        if self.type == "tls":
            if not self.certificates:
                raise ValueError("a tls listener needs certificates")
            if self.target is None and not self.routes:
                raise ValueError("a tls listener needs a target or routes")
            if sum(certificate.default for certificate in self.certificates) > 1:
                raise ValueError("at most one certificate may be the default")
        elif self.certificates and self.type != "reverse":
            raise ValueError("certificates apply to tls and reverse listeners only")
        if self.upstream_pool is not None and self.type != "forward":
            raise ValueError("upstream_pool applies to forward listeners only")
        if self.analyze not in (None, "http", "none") and self.type in ("forward", "reverse", "router"):
            raise ValueError(f"{self.type} listeners analyze http or none (tunnels follow analysis.tunnels)")
        return self


class LogConfig(_Frozen):
    format: Literal["text", "json"] = "text"
    level: Literal["debug", "info", "warning", "error"] = "info"
    connections: bool = Field(True, description="one line per finished connection")


class Config(_Frozen):
    listeners: list[ListenerConfig] = Field(
        default_factory=lambda: [ListenerConfig(name="forward")], min_length=1
    )
    users: list[User] = Field(default_factory=list)
    rules: list[Rule] = Field(default_factory=list)
    limits: Limits = Field(default_factory=lambda: Limits())
    log: LogConfig = Field(default_factory=lambda: LogConfig())
    workers: int = Field(1, ge=1, le=256)
    shutdown_grace: float = Field(
        10.0, ge=0, description="seconds open connections get to finish at shutdown or on a removed listener"
    )
    config_watch_interval: float = Field(
        1.0, ge=0, description="seconds between looks at the config file (a change reloads it); 0: off"
    )
    dns_cache_ttl: float = Field(30.0, ge=0, description="seconds a resolved name is reused")
    data_dir: str = Field("./lanner-data", description="where lanner keeps its store and its CA")
    record: RecordConfig = Field(default_factory=lambda: RecordConfig())
    analysis: AnalysisConfig = Field(
        default_factory=lambda: AnalysisConfig(), description="Redis, PostgreSQL and HTTP analysis"
    )
    intercept: list[InterceptRule] = Field(default_factory=list, description="tunnels to open up (MITM)")
    pools: list[PoolConfig] = Field(default_factory=list, description="backend pools of reverse listeners")
    vendors: VendorsConfig = Field(
        default_factory=lambda: VendorsConfig(), description="upstream proxy vendors (aggregation)"
    )
    tls: TlsConfig = Field(default_factory=lambda: TlsConfig())
    admin: AdminConfig = Field(
        default_factory=lambda: AdminConfig(), description="admin API, metrics, live stream and web UI"
    )
    splice_after_bytes: int = Field(
        1024 * 1024,
        ge=0,
        description="a tunnel moves to the zero-copy splice relay (Linux) after this many bytes; 0: never",
    )

    @model_validator(mode="after")
    def _names_resolve(self) -> Config:
        listener_names = [item.name for item in self.listeners]
        user_names = [item.name for item in self.users]
        for kind, names in (("listener", listener_names), ("user", user_names)):
            duplicates = {name for name in names if names.count(name) > 1}
            if duplicates:
                raise ValueError(f"duplicate {kind} names: {sorted(duplicates)}")
        pool_names = [pool.name for pool in self.pools]
        if len(set(pool_names)) != len(pool_names):
            raise ValueError("duplicate pool names")
        for listener in self.listeners:
            for route in listener.routes:
                if isinstance(route, ReverseRoute) and route.pool not in pool_names:
                    raise ValueError(f"listener {listener.name!r}: a route names unknown pool {route.pool!r}")
        vendor_pools = {pool.name for pool in self.vendors.all_pools}
        for listener in self.listeners:
            if listener.upstream_pool is not None and listener.upstream_pool not in vendor_pools:
                pool = listener.upstream_pool
                raise ValueError(f"listener {listener.name!r}: no vendor pool {pool!r}")
        named: list[Rule | InterceptRule] = [*self.rules, *self.intercept]
        for rule in named:
            unknown = set(rule.listeners) - set(listener_names)
            unknown |= set(rule.users) - set(user_names)
            if unknown:
                raise ValueError(f"rule names unknown listeners or users: {sorted(unknown)}")
        return self

    def limits_for(self, listener: ListenerConfig) -> Limits:
        return listener.limits or self.limits

    def analyze_for(self, listener: ListenerConfig) -> Analyze:
        if listener.analyze is not None:
            return listener.analyze
        if listener.type in ("forward", "reverse"):
            return "http"
        return "auto" if listener.type == "tcp" else "none"

    @property
    def ca_dir(self) -> str:
        return self.tls.ca_dir or os.path.join(self.data_dir, "ca")

    @property
    def audit_path(self) -> str:
        return self.admin.audit_log or os.path.join(self.data_dir, "audit.log")

    @property
    def store_path(self) -> str:
        return self.record.path or os.path.join(self.data_dir, "lanner.db")
