"""Watches the config file: a change, once it has settled, reloads the gateway once.

Every `config_watch_interval` seconds (read anew each time, since a reload may
change it; 0 stops watching) the file's stamp — device, inode, size, times —
is compared with the stamp of the file as last read. A new stamp is acted on
when the next look finds it unchanged, so a slow write or an editor's
write-then-rename reloads once, with the finished file. Every reload, whatever
started it, notes the stamp it read (`note_read`): a SIGHUP sent after editing
the file does not also reload from here, and an invalid file is reported once
per change, not once per look. The watcher never reads or applies the config
itself: the gateway's `reload` does, whatever asked for it.

A stat() per second on the event loop costs microseconds and needs neither a
thread nor a new dependency; inotify-style watching would also have to follow
the file across renames and does not work on every filesystem (network mounts,
some container volumes) a config may live on.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from lanner.config.source import ConfigSource, Stamp


class ConfigWatcher:
    def __init__(
        self,
        source: ConfigSource,
        read: Stamp | None,
        interval: Callable[[], float],
        reload: Callable[[], object],
    ) -> None:
        self.source = source
        self.read = read  # the file as last read: at start (the running config's), then by each reload
        self.interval = interval  # seconds between looks, as the running config says now
        self.reload = reload
        self._pending: Stamp | None = None  # a new stamp seen once, waiting to be seen again
        self._changing = False
        self._timer: asyncio.TimerHandle | None = None

    def start(self) -> None:
        """Look from now on (again), unless there is no file or the interval is 0; idempotent."""
        if self._timer is None and self.source.path is not None and self.interval() > 0:
            self._timer = asyncio.get_running_loop().call_later(self.interval(), self._look)

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def note_read(self, stamp: Stamp | None) -> None:
        """A reload is reading the file as `stamp` describes it."""
        self.read = stamp
        self._changing = False

    def _look(self) -> None:
        self._timer = None
        stamp = self.source.stamp()
        try:
            if stamp == self.read:
                self._changing = False
            elif self._changing and stamp == self._pending:
                self.reload()  # which calls note_read
            else:
                self._changing, self._pending = True, stamp
        finally:
            self.start()
