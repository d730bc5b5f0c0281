"""The writer process: where recorded traffic is converted, redacted, indexed and stored.

A proxy process starts one (`WriterProcess`) and sends it packed batches over
a pipe: a 4-byte length, then a pickle of plain tuples (`convert.pack`). The
child (`python -m lanner.record.writer`) runs a `StoreWriter`, so SQLite,
compression and the Python work of conversion never take the proxy's
interpreter lock; it runs at a lower CPU priority (nice 19), so on a saturated
machine proxying comes first and recording falls behind: the recorder's queue
(`record.queue`) absorbs bursts, and past it records are dropped, counted and
logged.

When the pipe is full the feeder thread waits and the recorder's bounded queue
absorbs the rest. If the child dies, the batch in hand is lost (logged with
the count, counted in lanner_recorder_lost_total) and a new child is started.
At stop the pipe is closed: the child writes what it holds and exits; past
the timeout it is told to give up.
"""

from __future__ import annotations

import fcntl
import logging
import os
import pickle
import signal
import subprocess
import sys
import time
from types import FrameType
from typing import IO, Final

from lanner.config.model import RecordConfig
from lanner.control import metrics
from lanner.record.recorder import RETRY_INTERVAL, Item, StoreWriter

log = logging.getLogger("lanner.record")

NICE: Final = 19  # the writer's CPU priority below the proxy's
PIPE_SIZE: Final = 1024 * 1024
_F_SETPIPE_SZ: Final = 1031  # fcntl.F_SETPIPE_SZ (Linux), missing from older Pythons' fcntl


class WriterProcess:
    """The proxy's end: a `Sink` that pipes batches to a child process."""

    def __init__(
        self, config: RecordConfig, path: str, log_format: str = "text", log_level: str = "info"
    ) -> None:
        settings = [config.model_dump_json(), path, log_format, log_level]
        self.argv = [sys.executable, "-m", "lanner.record.writer", *settings]
        self.proc: subprocess.Popen[bytes] | None = None
        self.lost = 0
        self.restarts = 0

    def start(self) -> None:
        self.proc = subprocess.Popen(self.argv, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL)
        assert self.proc.stdin is not None
        try:
            fcntl.fcntl(self.proc.stdin.fileno(), _F_SETPIPE_SZ, PIPE_SIZE)
        except OSError:
            pass  # above /proc/sys/fs/pipe-max-size: the default pipe is smaller, nothing else changes

    def send(self, items: list[Item]) -> None:
        data = pickle.dumps(items, protocol=pickle.HIGHEST_PROTOCOL)
        if self.proc is None:
            self.start()
        assert self.proc is not None and self.proc.stdin is not None
        try:
            self.proc.stdin.write(len(data).to_bytes(4, "big"))
            self.proc.stdin.write(data)
            self.proc.stdin.flush()
        except OSError:  # the child is gone (BrokenPipeError) or its pipe broke
            self.lost += len(items)
            metrics.RECORDER_LOST.labels("writer_exit").inc(len(items))
            metrics.WRITER_RESTARTS.inc()
            code = self.proc.poll()
            metrics.process_gone(self.proc.pid)
            log.error(
                "recording writer process exited; starting another",
                extra={"fields": {"code": code, "lost": len(items), "lost_total": self.lost}},
            )
            self.proc = None
            self.restarts += 1
            time.sleep(RETRY_INTERVAL)

    def stop(self) -> None:
        """Nothing to do here: `close` tells the child to give up if it outlives its timeout."""

    def close(self, timeout: float) -> None:
        proc, self.proc = self.proc, None
        if proc is None:
            return
        assert proc.stdin is not None
        try:
            proc.stdin.close()  # end of input: the child writes what it holds and exits
        except OSError:
            pass
        try:
            proc.wait(timeout)
            return
        except subprocess.TimeoutExpired:
            proc.terminate()  # stop retrying a failing store
        try:
            proc.wait(5.0)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            log.error("recording writer process killed at stop")


def _read_frame(source: IO[bytes]) -> bytes | None:
    head = source.read(4)
    if len(head) < 4:
        return None
    size = int.from_bytes(head, "big")
    data = source.read(size)
    return data if len(data) == size else None


def _lower_priority() -> None:
    """Below the proxy's CPU priority, but not so low that recording starves.

    SCHED_IDLE was tried (2026-11-27, docs/BENCHMARKS.md): on a busy 2-core machine the
    writer then got too little time, the recorder's queue overflowed and 4-47% of the
    records were dropped, with no gain in proxy throughput. Nice 19 stored every one.
    """
    try:
        os.nice(NICE)
    except OSError:
        pass


def main(argv: list[str]) -> int:
    from lanner import logs
    from lanner.record.sqlite import SqliteStore

    config_json, path, log_format, log_level = argv
    # A terminal's Ctrl-C reaches the parent too, which then closes the pipe: finish, don't die.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    logs.setup(log_format, log_level)
    _lower_priority()
    writer = StoreWriter(RecordConfig.model_validate_json(config_json), lambda: SqliteStore(path))

    def give_up(_signum: int, _frame: FrameType | None) -> None:
        writer.stop()

    signal.signal(signal.SIGTERM, give_up)
    source = sys.stdin.buffer
    while (frame := _read_frame(source)) is not None:
        writer.send(pickle.loads(frame))
    writer.close()
    logs.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
