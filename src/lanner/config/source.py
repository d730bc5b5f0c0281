"""Where a running gateway's config comes from: a file (or the embedded defaults) and the command line.

`lanner run` reads its config through a `ConfigSource`, and every reload reads
it again the same way, so that flags given on the command line (`--workers`,
`--json-logs`, `--log-level`, `--intercept`) hold for every config generation,
not only the first. `stamp` is what the file watcher compares between looks.
This module reads and validates; it never applies a config.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from lanner.config.load import ConfigError, load_config, load_default
from lanner.config.model import Config

# (device, inode, size, mtime ns, ctime ns): an editor's write-then-rename changes the inode,
# an in-place write the size or the times.
Stamp = tuple[int, int, int, int, int]


@dataclass(frozen=True, slots=True)
class Overrides:
    """Command-line flags that replace what the file says."""

    workers: int | None = None
    log_format: str | None = None
    log_level: str | None = None
    intercept: tuple[str, ...] = ()  # host globs, appended to the file's intercept rules

    def apply(self, config: Config) -> Config:
        updates: dict[str, Any] = {}
        if self.workers:
            updates["workers"] = self.workers
        log_updates = {
            key: value for key, value in (("format", self.log_format), ("level", self.log_level)) if value
        }
        if log_updates:
            updates["log"] = config.log.model_copy(update=log_updates)
        if self.intercept:
            updates["intercept"] = [*config.intercept, *({"hosts": [glob]} for glob in self.intercept)]
        if not updates:
            return config
        return Config.model_validate({**config.model_dump(), **updates})


@dataclass(frozen=True, slots=True)
class ConfigSource:
    path: str | None = None  # None: the embedded defaults (nothing to watch or reload)
    overrides: Overrides = field(default_factory=Overrides)

    def load(self) -> Config:
        """The config as it reads now, overrides applied; ConfigError (file, line, reason) if invalid."""
        config = load_config(self.path) if self.path else load_default()
        return self.overrides.apply(config)

    def read(self) -> tuple[Config, Stamp | None]:
        """`load()`, and the file's stamp just before: a change made while it was read is seen later."""
        stamp = self.stamp()
        return self.load(), stamp

    def stamp(self) -> Stamp | None:
        """The file's identity and times now; None if it cannot be looked at (or there is no file)."""
        if self.path is None:
            return None
        try:
            info = os.stat(self.path)
        except OSError:
            return None
        return (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns)


__all__ = ["ConfigError", "ConfigSource", "Overrides", "Stamp"]
