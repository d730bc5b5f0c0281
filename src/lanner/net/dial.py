"""Opening upstream connections: rules, resolution, connect, error mapping.

`dial` is the one place where OS-level connect errors become the gateway's
error taxonomy (`map_dial_errors`). It checks the destination against the
rules before resolving, checks each resolved address again (CIDR rules and
the no-loop guard), then tries the allowed addresses in order within one
connect timeout. A dial that succeeds is timed, per listener
(`lanner_upstream_connect_seconds`).
"""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, TypeVar

from lanner.errors import (
    ConnectRefused,
    ConnectTimeout,
    Denied,
    GatewayError,
    HostUnreachable,
    NetUnreachable,
    UpstreamFailed,
)
from lanner.route.auth import user_name
from lanner.route.rules import Verdict

if TYPE_CHECKING:
    from lanner.net.conn import Conn

P = TypeVar("P", bound=asyncio.BaseProtocol)


@contextmanager
def map_dial_errors(host: str, port: int) -> Iterator[None]:
    where = f"{host}:{port}"
    try:
        yield
    except GatewayError:
        raise
    except ConnectionRefusedError as exc:
        raise ConnectRefused(f"{where} refused the connection") from exc
    except TimeoutError as exc:
        raise ConnectTimeout(f"{where} did not answer in time") from exc
    except OSError as exc:
        if exc.errno == errno.ENETUNREACH:
            raise NetUnreachable(f"network unreachable for {where}") from exc
        if exc.errno in (errno.EHOSTUNREACH, errno.EADDRNOTAVAIL, errno.EAFNOSUPPORT):
            raise HostUnreachable(f"{where} unreachable: {exc.strerror}") from exc
        if exc.errno == errno.ETIMEDOUT:
            raise ConnectTimeout(f"{where} did not answer in time") from exc
        raise UpstreamFailed(f"{where}: {exc.strerror or exc}") from exc


async def dial(conn: Conn, host: str, port: int, factory: Callable[[], P]) -> tuple[asyncio.Transport, P]:
    """Connect to host:port for `conn`, or raise a GatewayError saying why not."""
    started = time.monotonic()
    opened = await _dial(conn, host, port, factory)
    conn.listener.metrics.connected(time.monotonic() - started)
    return opened


async def _dial(conn: Conn, host: str, port: int, factory: Callable[[], P]) -> tuple[asyncio.Transport, P]:
    listener = conn.listener
    services = listener.services
    router = services.router
    conn.dest = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    verdict = router.check(listener.name, conn.account, host, port, None, client_address(conn))
    if verdict is Verdict.DENY:
        raise Denied(f"a rule denies {conn.dest}")
    pool = conn.params.pool or listener.config.upstream_pool
    if pool is not None and services.vendors is not None:
        return await _dial_via_vendor(conn, pool, host, port, factory, verdict)
    loop = asyncio.get_running_loop()
    with map_dial_errors(host, port):
        async with asyncio.timeout(listener.limits.connect_timeout):
            addresses = await services.resolver.resolve(host)
            allowed = [a for a in addresses if _address_allowed(conn, host, port, a, verdict)]
            if not allowed:
                raise Denied(f"a rule denies every address of {conn.dest}")
            failure: OSError | None = None
            for address in allowed:
                try:
                    transport, protocol = await loop.create_connection(factory, address, port)
                except OSError as exc:
                    failure = exc
                    continue
                return transport, protocol
            assert failure is not None
            raise failure


async def _dial_via_vendor(
    conn: Conn, pool: str, host: str, port: int, factory: Callable[[], P], verdict: Verdict
) -> tuple[asyncio.Transport, P]:
    """Through an upstream proxy vendor: the vendor resolves the name; rules on addresses still hold."""
    services = conn.listener.services
    assert services.vendors is not None
    if verdict is Verdict.NEED_ADDRESS:
        with map_dial_errors(host, port):
            async with asyncio.timeout(conn.listener.limits.connect_timeout):
                addresses = await services.resolver.resolve(host)
        if not all(_address_allowed(conn, host, port, address, verdict) for address in addresses):
            raise Denied(f"a rule denies an address of {conn.dest}")
    user = conn.account or user_name(conn.user or "")
    return await services.vendors.dial(pool, user, conn.params, host, port, factory, conn.note)


def client_address(conn: Conn) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The client's address for rules that name clients (None when no rule does)."""
    if not conn.listener.services.router.by_client or not conn.client:
        return None
    return ipaddress.ip_address(conn.client[0])


def _address_allowed(conn: Conn, host: str, port: int, address: str, verdict: Verdict) -> bool:
    router = conn.listener.services.router
    if verdict is Verdict.ALLOW and not router.listens_on_port(port):
        return True  # settled without parsing the address
    ip = ipaddress.ip_address(address)
    if router.is_own_address(ip, port):
        return False
    if verdict is Verdict.NEED_ADDRESS:
        verdict = router.check(conn.listener.name, conn.account, host, port, ip, client_address(conn))
        return verdict is Verdict.ALLOW
    return True
