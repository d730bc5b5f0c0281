"""PostgreSQL helpers for the integration tests: the machine's server, psql, raw protocol bytes."""

from __future__ import annotations

import os
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import psycopg

from lanner.record.filter import parse
from lanner.record.model import FlowRecord
from lanner.record.sqlite import SqliteStore
from lanner.record.store import StoreError
from tests.integration.store_reads import WAIT, wait_flows, whole

POSTGRES = ("127.0.0.1", 5432)
DIRECT = "host=127.0.0.1 port=5432 dbname=test user=postgres sslmode=disable gssencmode=disable"
T = TypeVar("T")


def postgres_up() -> bool:
    try:
        with socket.create_connection(POSTGRES, timeout=1):
            return True
    except OSError:
        return False


def direct() -> psycopg.Connection[Any]:
    """A connection straight to the server (not through lanner), for setup and checks."""
    return psycopg.connect(DIRECT, autocommit=True, connect_timeout=10)


def conninfo(lanner: Any, listener: str = "pg", **extra: str) -> str:
    host, port = lanner.addr(listener)
    words = {"host": host, "port": str(port), "dbname": "test", "user": "postgres", "connect_timeout": "10"}
    words.update(extra)
    return " ".join(f"{name}={value}" for name, value in words.items())


def psql(psql_path: str, info: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """psql -X against a conninfo string; `args` are its options (-c ...)."""
    out = subprocess.run(
        [psql_path, "-X", "-d", info, *args],
        capture_output=True, text=True, timeout=30, env={**os.environ, "PGCONNECT_TIMEOUT": "10"},
    )  # fmt: skip
    if check:
        assert out.returncode == 0, f"psql failed ({out.returncode}): {out.stderr}"
    return out


def cli(store_path: Path, *args: str) -> str:
    """`python -m lanner flows --db STORE ...` as a user runs it; its stdout."""
    out = subprocess.run(
        [sys.executable, "-m", "lanner", "flows", "--db", str(store_path), *args],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    return out.stdout


def flows(store_path: Path, count: int, text: str) -> list[FlowRecord]:
    """At least `count` whole flows matching `text`, oldest first (polled, bounded)."""
    return sorted(wait_flows(store_path, count, text), key=lambda flow: flow.id)


def count(store_path: Path, text: str) -> int:
    try:
        store = SqliteStore(str(store_path), readonly=True)
    except StoreError:
        return 0
    try:
        return store.count(parse(text))
    finally:
        store.close()


def wait_for(probe: Callable[[], T | None], what: str, timeout: float = WAIT) -> T:
    """Poll `probe` until it returns something (bounded)."""
    deadline = time.monotonic() + timeout
    while True:
        found = probe()
        if found is not None:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"never happened: {what}")
        time.sleep(0.1)


def matching(store_path: Path, text: str, keep: Callable[[FlowRecord], bool]) -> FlowRecord:
    """The first (whole) flow matching `text` for which `keep` holds, polled."""

    def probe() -> FlowRecord | None:
        try:
            store = SqliteStore(str(store_path), readonly=True)
        except StoreError:
            return None
        try:
            found = store.flows(parse(text), limit=1000)
        finally:
            store.close()
        for summary in sorted(found, key=lambda flow: flow.id):
            record = whole(store_path, summary.id)
            if keep(record):
                return record
        return None

    return wait_for(probe, f"a flow matching {text!r}")


# --- raw protocol 3.0 ------------------------------------------------------------------


def startup_message(**params: str) -> bytes:
    body = struct.pack("!I", 196608)
    for name, value in params.items():
        body += name.encode() + b"\0" + value.encode() + b"\0"
    body += b"\0"
    return struct.pack("!I", len(body) + 4) + body


def query_message(sql: str) -> bytes:
    body = sql.encode() + b"\0"
    return b"Q" + struct.pack("!I", len(body) + 4) + body


def messages(data: bytes) -> list[tuple[bytes, bytes]]:
    """Backend messages (type, body) of a byte stream; a cut-off tail is kept whole as ("?", rest)."""
    found = []
    offset = 0
    while offset + 5 <= len(data):
        (length,) = struct.unpack_from("!I", data, offset + 1)
        end = offset + 1 + length
        if length < 4 or end > len(data):
            break
        found.append((data[offset : offset + 1], data[offset + 5 : end]))
        offset = end
    if offset < len(data):
        found.append((b"?", data[offset:]))
    return found


def read_until_ready(sock: socket.socket, limit: int = 1 << 24) -> bytes:
    """Server bytes up to and including a ReadyForQuery that ends what was received."""
    data = b""
    while len(data) < limit:
        parsed = messages(data)
        if parsed and parsed[-1][0] == b"Z":
            return data
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


def masked(data: bytes) -> list[tuple[bytes, bytes]]:
    """The messages with BackendKeyData's pid and secret zeroed (they differ per session)."""
    return [(kind, bytes(len(body)) if kind == b"K" else body) for kind, body in messages(data)]
