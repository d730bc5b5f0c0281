"""`--workers N`: N gateway processes sharing the listeners through SO_REUSEPORT.

The supervisor forks the workers before any event loop exists, forwards
SIGINT/SIGTERM (and SIGHUP, reload) to them, and exits 0 once all have exited cleanly. If one
worker fails (a port it cannot bind), the others are stopped and the
supervisor exits 1. Each worker also watches the config file and reloads itself;
SIGUSR1 from worker 0 (a reload through its admin API) sends SIGHUP to the others.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from types import FrameType

from lanner.config.model import Config
from lanner.config.source import ConfigSource, Stamp

RELOAD_OTHERS = signal.SIGUSR1  # from worker 0 to the supervisor: SIGHUP every other worker


def supervise(config: Config, source: ConfigSource | None = None, stamp: Stamp | None = None) -> int:
    from lanner.app import run  # here: the admin API imports this module's RELOAD_OTHERS

    children: list[int] = []
    for index in range(config.workers):
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                code = run(config, worker=index, source=source, stamp=stamp)
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        children.append(pid)
        time.sleep(0.02)

    def forward(signum: int, _frame: FrameType | None) -> None:
        for child in children:
            _signal(child, signum)

    signal.signal(signal.SIGINT, forward)
    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGHUP, forward)  # each worker reloads its config

    def reload_others(_signum: int, _frame: FrameType | None) -> None:
        for child in children[1:]:
            _signal(child, signal.SIGHUP)

    # Worker 0 reloaded through the admin API (it answers with its own result): the others follow.
    signal.signal(RELOAD_OTHERS, reload_others)
    failed = False
    remaining = set(children)
    while remaining:
        pid, status = os.wait()
        remaining.discard(pid)
        if os.waitstatus_to_exitcode(status) != 0 and not failed:
            failed = True
            for child in remaining:
                _signal(child, signal.SIGTERM)
    return 1 if failed else 0


def _signal(pid: int, signum: int) -> None:
    try:
        os.kill(pid, signum)
    except ProcessLookupError:
        pass
