"""10,000 connections at once against a cap of 1,000: refused past the cap, memory bounded."""

from __future__ import annotations

import asyncio
import re
import resource
from typing import Any

from tests.integration.raw import connect, recv_until_close
from tests.integration.servers import Origin

CLIENTS = 10_000
CAP = 1_000


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        match = re.search(r"VmRSS:\s+(\d+) kB", status.read())
    assert match
    return int(match.group(1))


async def flood(port: int) -> tuple[int, int, int]:
    """Open CLIENTS connections at once; (connected, then closed by lanner, failed to connect)."""
    opened: list[asyncio.StreamReader] = []
    writers: list[asyncio.StreamWriter] = []
    failed = 0

    async def open_one() -> None:
        nonlocal failed
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 20)
        except (TimeoutError, OSError):
            failed += 1
            return
        opened.append(reader)
        writers.append(writer)

    await asyncio.gather(*(open_one() for _ in range(CLIENTS)))

    async def closed_by_peer(reader: asyncio.StreamReader) -> bool:
        try:
            return await asyncio.wait_for(reader.read(1), 2) == b""
        except (TimeoutError, OSError):
            return isinstance(reader.exception(), OSError) if reader.exception() else False

    results = await asyncio.gather(*(closed_by_peer(reader) for reader in opened))
    for writer in writers:
        writer.close()
    return len(opened), sum(results), failed


def test_ten_thousand_connections_against_a_cap(start_lanner: Any, origin: Origin) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, CLIENTS + 2000)), hard))
    lanner = start_lanner({"limits": {"max_connections": CAP, "handshake_timeout": 30}})
    before = rss_kib(lanner.proc.pid)
    connected, refused, failed = asyncio.run(flood(lanner.port))
    after = rss_kib(lanner.proc.pid)
    assert connected + failed == CLIENTS
    # At most CAP stay open; everything else was closed by lanner or never got in.
    assert connected - refused <= CAP
    assert refused + failed >= CLIENTS - CAP
    assert lanner.alive()
    assert after - before < 150 * 1024, f"RSS grew from {before} KiB to {after} KiB"
    match = lanner.wait_log(r"listener at capacity: refused connections .*refused_total=(\d+)")
    assert int(match.group(1)) > 0
    # The same process still serves a normal request once the flood is gone.
    sock = connect(lanner.port)
    sock.sendall(f"GET http://127.0.0.1:{origin.port}/small HTTP/1.1\r\nConnection: close\r\n\r\n".encode())
    assert recv_until_close(sock).endswith(b"hello-from-origin\n")
