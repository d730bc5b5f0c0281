"""Retention: old flows are deleted in the background, on a thread of their own.

The store's `prune` deletes in small transactions, so the recorder's writer
(on its own connection to the same file) waits at most one of them. One
process runs retention: the only one, or the first of several workers.
"""

from __future__ import annotations

import logging
import threading
import time

from lanner.config.model import RetentionConfig
from lanner.record.recorder import StoreFactory
from lanner.record.store import Store, StoreError

log = logging.getLogger("lanner.record")


class Retention:
    def __init__(self, config: RetentionConfig, open_store: StoreFactory) -> None:
        self.config = config
        self.open_store = open_store
        self.deleted = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self.config.max_age is None and self.config.max_size is None:
            return
        self._thread = threading.Thread(target=self._loop, name="lanner-retention", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5.0)

    def _loop(self) -> None:
        store: Store | None = None
        while not self._stop.wait(float(self.config.interval)):
            try:
                store = store or self.open_store()
                self.run_once(store)
            except StoreError as exc:
                log.warning("retention pass failed", extra={"fields": {"reason": str(exc)}})
                store = None
        if store is not None:
            store.close()

    def run_once(self, store: Store) -> int:
        max_age = self.config.max_age
        max_size = self.config.max_size
        deleted = store.prune(
            float(max_age) if max_age is not None else None,
            int(max_size) if max_size is not None else None,
            time.time(),
        )
        if deleted:
            self.deleted += deleted
            log.info("retention deleted old records", extra={"fields": {"deleted": deleted}})
        return deleted
