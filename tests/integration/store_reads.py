"""Reading the flow store from tests the way `lanner flows` does: a separate reader, polled."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from lanner.record.filter import parse
from lanner.record.model import ConnectionRecord, FlowRecord
from lanner.record.sqlite import SqliteStore
from lanner.record.store import StoreError

WAIT = 15.0


def _reader(path: Path) -> SqliteStore | None:
    try:
        return SqliteStore(str(path), readonly=True)
    except StoreError:  # not created yet
        return None


def wait_flows(path: Path, count: int, text: str = "", timeout: float = WAIT) -> list[FlowRecord]:
    """Poll the store (as a separate reader, like `lanner flows`) until `count` flows match."""
    deadline = time.monotonic() + timeout
    found: list[FlowRecord] = []
    while time.monotonic() < deadline:
        store = _reader(path)
        if store is None:
            time.sleep(0.1)
            continue
        try:
            found = store.flows(parse(text) if text else None, limit=1000)
        finally:
            store.close()
        if len(found) >= count:
            return [whole(path, summary.id) for summary in found]
        time.sleep(0.1)
    raise AssertionError(f"expected {count} flows matching {text!r}, found {len(found)}")


def whole(path: Path, flow_id: int) -> FlowRecord:
    store = SqliteStore(str(path), readonly=True)
    try:
        found = store.get(flow_id)
    finally:
        store.close()
    assert found is not None
    return found


def wait_connection_records(path: Path, predicate: Callable[[ConnectionRecord], bool]) -> ConnectionRecord:
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        store = _reader(path)
        if store is None:
            time.sleep(0.1)
            continue
        try:
            for conn in store.connections(limit=1000):
                if predicate(conn):
                    return conn
        finally:
            store.close()
        time.sleep(0.1)
    raise AssertionError("no matching connection record")
