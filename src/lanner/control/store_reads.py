"""Reads of the flow store for the admin API, off the event loop.

Queries run on a small thread pool of their own, each thread with its own
read-only SQLite connection (opened on first use, reopened after an error), so
a slow search never holds up proxying or another API call for long. Before
the writer has created the store (no file, or a file without its schema yet)
there is nothing to read: `read` gives None. Other store errors are raised (the
API answers 503 `store_unavailable`).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from lanner.record.sqlite import SqliteStore
from lanner.record.store import StoreError, StoreNotCreated

T = TypeVar("T")

READ_THREADS = 2


class StoreReader:
    def __init__(self, path: str) -> None:
        self.path = path
        self._pool = ThreadPoolExecutor(READ_THREADS, thread_name_prefix="lanner-admin-store")
        # Exports read the whole store: on a thread of their own, queued behind each other,
        # so pages, details and the live stream stay quick meanwhile.
        self._exports = ThreadPoolExecutor(1, thread_name_prefix="lanner-admin-export")
        self._local = threading.local()

    async def read(self, query: Callable[[SqliteStore], T], export: bool = False) -> T | None:
        """`query(store)` on a reader thread; None while no store exists yet."""
        pool = self._exports if export else self._pool
        return await asyncio.get_running_loop().run_in_executor(pool, self._run, query)

    def _run(self, query: Callable[[SqliteStore], T]) -> T | None:
        store: SqliteStore | None = getattr(self._local, "store", None)
        if store is None:
            if not Path(self.path).exists():
                return None
            try:
                store = SqliteStore(self.path, readonly=True)
            except StoreNotCreated:
                return None
            self._local.store = store
        try:
            return query(store)
        except StoreError:
            store.close()
            self._local.store = None
            raise

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._exports.shutdown(wait=False, cancel_futures=True)
