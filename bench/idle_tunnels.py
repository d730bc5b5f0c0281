"""Resident memory a proxy spends per idle open tunnel.

Opens WARMUP tunnels and closes them (first-use allocations are not per
tunnel), samples the proxy's RSS, opens N tunnels (CONNECT or SOCKS5) to the
origin and keeps them open and silent, waits for the proxy to settle, samples
again and prints the growth per tunnel. RSS is summed over the proxy's whole
process tree, so multi-process proxies are charged for every process.

    idle_tunnels.py connect|socks5 PROXY_PORT ORIGIN_PORT N PROXY_PID

Prints one JSON object: opened, rss_before_kib, rss_after_kib, per_tunnel_kib.
"""

from __future__ import annotations

import asyncio
import json
import resource
import struct
import sys

from report import tree  # this directory is on sys.path when run as a script

HOST = "127.0.0.1"
WARMUP = 50
SETTLE_S = 2.0


def rss_kib(pid: int) -> int:
    total = 0
    for member in tree(pid):
        try:
            with open(f"/proc/{member}/status") as handle:
                for line in handle:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        except OSError:
            pass
    return total


async def open_tunnel(mode: str, proxy_port: int, origin_port: int) -> asyncio.StreamWriter:
    reader, writer = await asyncio.open_connection(HOST, proxy_port)
    if mode == "socks5":
        writer.write(b"\x05\x01\x00")
        if await reader.readexactly(2) != b"\x05\x00":
            raise RuntimeError("socks5 greeting refused")
        writer.write(b"\x05\x01\x00\x01" + bytes([127, 0, 0, 1]) + struct.pack("!H", origin_port))
        reply = await reader.readexactly(10)
        if reply[1] != 0:
            raise RuntimeError(f"socks5 reply code {reply[1]}")
    else:
        target = f"{HOST}:{origin_port}".encode()
        writer.write(b"CONNECT " + target + b" HTTP/1.1\r\nHost: " + target + b"\r\n\r\n")
        head = await reader.readuntil(b"\r\n\r\n")
        if head.split(b" ")[1:2] != [b"200"]:
            raise RuntimeError(f"CONNECT answered {head[:40]!r}")
    writer.transport.pause_reading()  # idle: we will not read; keep our own memory flat too
    return writer


async def open_many(mode: str, proxy_port: int, origin_port: int, count: int) -> list:
    gate = asyncio.Semaphore(100)

    async def guarded() -> asyncio.StreamWriter:
        async with gate:
            return await asyncio.wait_for(open_tunnel(mode, proxy_port, origin_port), 10)

    return await asyncio.gather(*(guarded() for _ in range(count)), return_exceptions=True)


async def main(mode: str, proxy_port: int, origin_port: int, count: int, pid: int) -> dict:
    warm = await open_many(mode, proxy_port, origin_port, WARMUP)
    for item in warm:
        if not isinstance(item, BaseException):
            item.close()
    await asyncio.sleep(SETTLE_S)
    before = rss_kib(pid)
    results = await open_many(mode, proxy_port, origin_port, count)
    tunnels = [item for item in results if not isinstance(item, BaseException)]
    failures = [item for item in results if isinstance(item, BaseException)]
    await asyncio.sleep(SETTLE_S)
    after = rss_kib(pid)
    for writer in tunnels:
        writer.close()
    await asyncio.sleep(0.5)
    return {
        "opened": len(tunnels),
        "failed": len(failures),
        "first_error": repr(failures[0])[:120] if failures else None,
        "processes": len(tree(pid)),
        "rss_before_kib": before,
        "rss_after_kib": after,
        "per_tunnel_kib": round((after - before) / max(len(tunnels), 1), 2),
    }


if __name__ == "__main__":
    if len(sys.argv) != 6 or sys.argv[1] not in ("connect", "socks5"):
        sys.exit(__doc__)
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    args = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
    print(json.dumps(asyncio.run(main(*args))))
