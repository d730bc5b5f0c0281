"""Choosing a reverse listener's route for a request: host, path prefix, method, headers.

Routes are tried in order and the first whose criteria all match wins (an
empty match is a default route). Hosts match exactly or as `*.wildcard`
(any depth of subdomain, never the bare parent), compared without the port
and case-insensitively. A path prefix matches on segment boundaries: `/api`
matches `/api`, `/api/x` and `/api?q`, not `/apix`; `/api/` matches
everything under it. The chosen route also rewrites the path
(`strip_prefix`, then `add_prefix`) and carries its header rules compiled.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from lanner.config.pools import HeaderRules, ReverseRoute
from lanner.wire.http1 import Headers

# A header value template: literal bytes and variable names, in order.
Template = tuple[bytes | str, ...]
VARIABLES = frozenset({"remote_addr", "scheme", "host", "request_id", "upstream_addr"})


def compile_template(value: str) -> Template:
    """'$scheme://$host/x' into (var scheme, b'://', var host, b'/x'); unknown $names stay literal."""
    parts: list[bytes | str] = []
    literal = ""
    index = 0
    while index < len(value):
        if value[index] == "$":
            end = index + 1
            while end < len(value) and (value[end].isalnum() or value[end] == "_"):
                end += 1
            name = value[index + 1 : end]
            if name in VARIABLES:
                if literal:
                    parts.append(literal.encode())
                literal = ""
                parts.append(name)
                index = end
                continue
        literal += value[index]
        index += 1
    if literal:
        parts.append(literal.encode())
    return tuple(parts)


def render(template: Template, variables: dict[str, bytes]) -> bytes:
    return b"".join(part if isinstance(part, bytes) else variables.get(part, b"") for part in template)


@dataclass(frozen=True, slots=True)
class CompiledHeaderRules:
    set: tuple[tuple[bytes, Template], ...]
    add: tuple[tuple[bytes, Template], ...]
    drop: frozenset[bytes]  # lowercase names removed (set names included: they are replaced)

    @classmethod
    def compile(cls, rules: HeaderRules) -> CompiledHeaderRules | None:
        if rules.empty:
            return None
        drop = {name.lower().encode() for name in rules.remove} | {
            name.lower().encode() for name in rules.set
        }
        return cls(
            tuple((name.encode(), compile_template(value)) for name, value in rules.set.items()),
            tuple((name.encode(), compile_template(value)) for name, value in rules.add.items()),
            frozenset(drop),
        )

    def apply(self, lines: list[bytes], headers: Headers, variables: dict[str, bytes]) -> None:
        """Append `headers` without the dropped names, then the set and added ones, as header lines."""
        drop = self.drop
        for name, value in headers:
            if name.lower() not in drop:
                lines += (name, b": ", value, b"\r\n")
        for name, template in self.set + self.add:
            lines += (name, b": ", render(template, variables), b"\r\n")


@dataclass(frozen=True, slots=True)
class CompiledRoute:
    index: int
    config: ReverseRoute
    exact_hosts: frozenset[str]
    wildcard_hosts: tuple[str, ...]  # ".example.com"
    path: bytes | None
    methods: frozenset[bytes]
    headers: tuple[tuple[bytes, bytes | None], ...]  # lowercase name, value (None: any)
    strip: bytes | None
    prefix: bytes | None
    request_rules: CompiledHeaderRules | None
    response_rules: CompiledHeaderRules | None

    @classmethod
    def compile(cls, index: int, route: ReverseRoute) -> CompiledRoute:
        match = route.match
        hosts = [host.lower().rstrip(".") for host in match.hosts]
        return cls(
            index,
            route,
            frozenset(host for host in hosts if not host.startswith("*.")),
            tuple(host[1:] for host in hosts if host.startswith("*.")),
            match.path.encode() if match.path is not None else None,
            frozenset(method.upper().encode() for method in match.methods),
            tuple(
                (name.lower().encode(), None if value == "*" else value.encode())
                for name, value in match.headers.items()
            ),
            route.strip_prefix.encode() if route.strip_prefix else None,
            route.add_prefix.rstrip("/").encode() if route.add_prefix else None,
            CompiledHeaderRules.compile(route.request_headers),
            CompiledHeaderRules.compile(route.response_headers),
        )

    @property
    def pool(self) -> str:
        return self.config.pool

    def matches(self, host: str, path: bytes, method: bytes, headers: Headers) -> bool:
        if self.exact_hosts or self.wildcard_hosts:
            if host not in self.exact_hosts and not any(
                host.endswith(suffix) and len(host) > len(suffix) for suffix in self.wildcard_hosts
            ):
                return False
        if self.path is not None and not _under(path, self.path):
            return False
        if self.methods and method not in self.methods:
            return False
        return all(_has_header(headers, name, value) for name, value in self.headers)

    def rewrite(self, target: bytes) -> bytes:
        """The path to send the backend (query kept)."""
        if self.strip is not None and _under(target, self.strip):
            target = target[len(self.strip) :]
            if not target.startswith(b"/"):
                target = b"/" + target
        if self.prefix is not None:
            target = self.prefix + target
        return target

    def describe(self) -> str:
        match = self.config.match
        parts = [f"hosts={','.join(match.hosts)}"] if match.hosts else []
        if match.path:
            parts.append(f"path={match.path}")
        if match.methods:
            parts.append(f"methods={','.join(match.methods)}")
        return f"route {self.index} ({' '.join(parts) or 'default'}) -> {self.pool}"


def _under(path: bytes, prefix: bytes) -> bool:
    if not path.startswith(prefix):
        return False
    if len(path) == len(prefix) or prefix.endswith(b"/"):
        return True
    return path[len(prefix)] in b"/?"


def _has_header(headers: Headers, name: bytes, value: bytes | None) -> bool:
    size = len(name)
    for have, have_value in headers:
        if len(have) == size and have.lower() == name:
            if value is None or have_value == value:
                return True
    return False


def host_of(header: bytes | None) -> str:
    """The Host header's name, lowercased, without port or trailing dot ("" when absent)."""
    if not header:
        return ""
    if header.startswith(b"["):
        end = header.find(b"]")
        name = header[: end + 1] if end > 0 else header
    else:
        name = header.partition(b":")[0]
    return name.decode("latin-1").lower().rstrip(".")


class ReverseRoutes:
    def __init__(self, routes: Iterable[ReverseRoute]) -> None:
        self.routes = tuple(CompiledRoute.compile(index, route) for index, route in enumerate(routes))

    def choose(self, host: str, path: bytes, method: bytes, headers: Headers) -> CompiledRoute | None:
        for route in self.routes:
            if route.matches(host, path, method, headers):
                return route
        return None
