"""Rewriting HTTP/1.x messages for a reverse proxy: forwarding headers, request ids, route rules.

Pure functions over parsed heads. What the backend is told about the client
(`X-Forwarded-For`, `-Proto`, `-Host`, RFC 7239 `Forwarded`, `X-Real-IP`)
comes from lanner itself unless the client is a trusted proxy, in which case
its values are kept and extended; an untrusted client's copies are dropped,
never passed on. A request id is passed through when the client sent a
usable one (from anyone: it correlates, it grants nothing), else generated.
"""

from __future__ import annotations

import itertools
import os
import string
from dataclasses import dataclass, field

from lanner.entry.http_forward import HOP_BY_HOP, response_for_client
from lanner.route.reverse import CompiledHeaderRules
from lanner.wire.http1 import Headers, RequestHead, ResponseHead

_FORWARDING = (b"x-forwarded-for", b"x-forwarded-proto", b"x-forwarded-host", b"forwarded", b"x-real-ip")
MAX_REQUEST_ID = 200
MAX_CACHED_HOSTS = 16  # per client connection
_TOKEN = frozenset((string.ascii_letters + string.digits + "!#$%&'*+-.^_`|~").encode())  # RFC 9110 5.6.2


@dataclass(frozen=True, slots=True)
class Forwarding:
    """What one client connection contributes to every request's forwarding headers."""

    client_ip: bytes  # as written in X-Forwarded-For: 192.0.2.1 or 2001:db8::1
    node: bytes  # as written in Forwarded's for=: 192.0.2.1 or "[2001:db8::1]" (RFC 7239 section 6)
    scheme: bytes
    trusted: bool  # the client is a trusted proxy: its forwarding headers are kept
    request_id_header: bytes
    request_id_name: bytes  # lowercase
    watched: frozenset[int]  # lengths of the header names a request's loop must look at
    blocks: dict[bytes, bytes] = field(default_factory=dict)  # host -> rendered lines (untrusted)

    @classmethod
    def for_client(cls, client_ip: str, scheme: str, trusted: bool, request_id_header: str) -> Forwarding:
        node = f'"[{client_ip}]"' if ":" in client_ip else client_ip
        name = request_id_header.lower().encode()
        watched = frozenset(len(n) for n in (*HOP_BY_HOP, *_FORWARDING, name, b"host"))
        return cls(
            client_ip.encode(),
            node.encode(),
            scheme.encode(),
            trusted,
            request_id_header.encode(),
            name,
            watched,
        )

    def block(self, host: bytes) -> bytes:
        """The forwarding header lines for an untrusted client asking for `host` (cached per host)."""
        rendered = self.blocks.get(host)
        if rendered is None:
            lines: list[bytes] = []
            _forwarding_lines(lines, {}, self, host)
            rendered = b"".join(lines)
            if len(self.blocks) >= MAX_CACHED_HOSTS:
                self.blocks.clear()
            self.blocks[host] = rendered
        return rendered


class _Ids:
    """Request ids: a random per-process prefix and a counter (unique without a syscall per request)."""

    def __init__(self) -> None:
        self.reset()
        os.register_at_fork(after_in_child=self.reset)  # workers must not share the prefix

    def reset(self) -> None:
        self.prefix = os.urandom(8).hex().encode()
        self.counter = itertools.count(1)

    def next(self) -> bytes:
        return b"%s%016x" % (self.prefix, next(self.counter))


_ids = _Ids()


def new_request_id() -> bytes:
    return _ids.next()


def _quoted(value: bytes) -> bytes:
    """A Forwarded parameter value: a token as is, anything else as a quoted string."""
    if value and all(c in _TOKEN for c in value):
        return value
    return b'"' + value.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'


def request_for_backend(
    head: RequestHead,
    path: bytes,
    host: bytes | None,
    forwarding: Forwarding,
    rules: CompiledHeaderRules | None = None,
    variables: dict[str, bytes] | None = None,
    new_host: bytes | None = None,
) -> tuple[bytes, bytes]:
    """The request head for the backend and its request id (`new_host` replaces the Host header).

    The client's request id is kept when it sent exactly one of at most 200 bytes; otherwise a
    new one is made. With `variables`, the id is added to them before the rules are rendered.
    """
    version = b"1.0" if head.version == "1.0" else b"1.1"
    lines = [head.method, b" ", path, b" HTTP/", version, b"\r\n"]
    if new_host is not None:
        lines += (b"Host: ", new_host, b"\r\n")
    dropped = HOP_BY_HOP | head.connection if head.connection else HOP_BY_HOP
    watched = forwarding.watched
    rule_drop = rules.drop if rules is not None else frozenset()
    if head.connection or rule_drop:
        watched = watched | {len(name) for name in head.connection} | {len(name) for name in rule_drop}
    id_name = forwarding.request_id_name
    trusted = forwarding.trusted
    incoming_id: bytes | None = None
    kept: dict[bytes, bytes] = {}
    for name, value in head.headers:
        if len(name) in watched:  # most headers are passed on without a lower()
            lowered = name.lower()
            if lowered in dropped or lowered in rule_drop:
                continue
            if lowered == id_name:
                incoming_id = value if incoming_id is None else b","  # several: none is usable
                continue
            if lowered in _FORWARDING:
                if trusted:
                    previous = kept.get(lowered)
                    kept[lowered] = value if previous is None else previous + b", " + value
                continue
            if new_host is not None and lowered == b"host":
                continue
        lines += (name, b": ", value, b"\r\n")
    usable = incoming_id is not None and 0 < len(incoming_id) <= MAX_REQUEST_ID and b"," not in incoming_id
    request_id = incoming_id if usable else new_request_id()
    assert request_id is not None
    if kept:
        _forwarding_lines(lines, kept, forwarding, host or b"")
    else:
        lines.append(forwarding.block(host or b""))
    lines += (forwarding.request_id_header, b": ", request_id, b"\r\n")
    if rules is not None:
        variables = variables if variables is not None else {}
        variables["request_id"] = request_id
        rules.apply(lines, [], variables)
    if head.upgrade:
        upgrade = b", ".join(value for name, value in head.headers if name.lower() == b"upgrade")
        lines += (b"Connection: upgrade\r\nUpgrade: ", upgrade, b"\r\n")
    elif not head.keep_alive:
        lines.append(b"Connection: close\r\n")
    lines.append(b"\r\n")
    return b"".join(lines), request_id


def _forwarding_lines(
    lines: list[bytes], kept: dict[bytes, bytes], forwarding: Forwarding, host: bytes
) -> None:
    chain = kept.get(b"x-forwarded-for")
    ip = forwarding.client_ip
    lines += (b"X-Forwarded-For: ", chain + b", " + ip if chain else ip, b"\r\n")
    lines += (b"X-Forwarded-Proto: ", kept.get(b"x-forwarded-proto") or forwarding.scheme, b"\r\n")
    if host or b"x-forwarded-host" in kept:
        lines += (b"X-Forwarded-Host: ", kept.get(b"x-forwarded-host") or host, b"\r\n")
    element = b"for=" + forwarding.node + b";proto=" + forwarding.scheme
    if host:
        element += b";host=" + _quoted(host)
    previous = kept.get(b"forwarded")
    lines += (b"Forwarded: ", previous + b", " + element if previous else element, b"\r\n")
    lines += (b"X-Real-IP: ", kept.get(b"x-real-ip") or ip, b"\r\n")


def response_with_rules(
    head: ResponseHead,
    close: bool,
    client_version: str,
    rules: CompiledHeaderRules | None,
    variables: dict[str, bytes],
) -> bytes:
    """The response head for the client, with the route's response header rules applied."""
    if rules is None:
        return response_for_client(head, close, client_version, False)
    kept: Headers = [(name, value) for name, value in head.headers if name.lower() not in rules.drop]
    extra: list[bytes] = []
    rules.apply(extra, [], variables)
    rendered = response_for_client(
        ResponseHead(
            head.status,
            head.reason,
            head.version,
            kept,
            head.keep_alive,
            head.framing,
            head.length,
            head.connection,
        ),
        close,
        client_version,
        False,
    )
    return rendered[:-2] + b"".join(extra) + b"\r\n"
