"""Choosing a router listener's target by the name a client asked for (TLS SNI or HTTP Host).

Matching order: the exact name, then the most specific wildcard
(`*.api.example.com` before `*.example.com`; a wildcard matches any depth
of subdomain, never the bare parent), then the catch-all route for that
kind of connection (TLS or plain HTTP), then no route. Every answer says
which route matched and why, for the connection's log line.
"""

from __future__ import annotations

from dataclasses import dataclass

from lanner.config.model import RouteConfig


@dataclass(frozen=True, slots=True)
class RouteChoice:
    route: RouteConfig
    reason: str  # "exact", "wildcard" or "catch-all"

    def describe(self, name: str | None) -> str:
        asked = name or "no name"
        return f"{self.reason} {self.route.match} ({asked}) -> {self.route.target}"


class NameRoutes:
    def __init__(self, routes: list[RouteConfig]) -> None:
        self.exact: dict[tuple[str, str], RouteConfig] = {}
        self.wildcards: list[tuple[str, str, RouteConfig]] = []  # (".suffix", kind, route)
        self.catch_all: dict[str, RouteConfig] = {}
        for route in routes:
            kinds = ("tls", "http") if route.protocol == "any" else (route.protocol,)
            match = route.match.lower().rstrip(".")
            for kind in kinds:
                if match == "*":
                    self.catch_all.setdefault(kind, route)
                elif match.startswith("*."):
                    self.wildcards.append((match[1:], kind, route))
                else:
                    self.exact.setdefault((match, kind), route)
        self.wildcards.sort(key=lambda item: len(item[0]), reverse=True)  # most specific first

    def choose(self, name: str | None, kind: str) -> RouteChoice | None:
        """The route for `name` (None: the client named nothing) on a `kind` ("tls"/"http") connection."""
        if name:
            name = name.lower().rstrip(".")
            route = self.exact.get((name, kind))
            if route is not None:
                return RouteChoice(route, "exact")
            for suffix, route_kind, route in self.wildcards:
                if route_kind == kind and name.endswith(suffix) and len(name) > len(suffix):
                    return RouteChoice(route, "wildcard")
        route = self.catch_all.get(kind)
        return RouteChoice(route, "catch-all") if route is not None else None
