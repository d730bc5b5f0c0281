"""The per-run directory where every process of one `lanner run` keeps its metric values.

prometheus_client picks where values live once, when it is first imported:
in memory, or (with PROMETHEUS_MULTIPROC_DIR set) in one memory-mapped file
per process in that directory, which any process can add up
(`metrics.exposition`). `lanner run` calls `per_run` before anything imports
it; forked workers and the recording writer children inherit the variable.
The directory is fresh for each run (files left by an earlier run would be
added in) and the process that made it removes it at exit.

This module must never import prometheus_client: that would settle the
choice before the variable is set.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager

ENV = "PROMETHEUS_MULTIPROC_DIR"

log = logging.getLogger("lanner")


@contextmanager
def per_run() -> Iterator[str | None]:
    """A fresh directory for this run's processes (None if prometheus_client was imported too early)."""
    if "prometheus_client" in sys.modules:
        # Too late: values already live in this process's memory. Metrics still work,
        # but each process then reports only its own.
        log.warning("metrics: prometheus_client was imported too early; each process reports apart")
        yield None
        return
    try:
        path = tempfile.mkdtemp(prefix="lanner-metrics-")
    except OSError as exc:  # no writable temporary directory: metrics stay per process
        why = {"fields": {"error": str(exc)}}
        log.warning("metrics: no directory to share; each process reports apart", extra=why)
        yield None
        return
    os.environ[ENV] = path  # a value set by the caller is replaced: its files are not this run's
    owner = os.getpid()
    try:
        yield path
    finally:
        if os.getpid() == owner:  # a forked child leaving through here must not remove it
            shutil.rmtree(path, ignore_errors=True)
            os.environ.pop(ENV, None)
