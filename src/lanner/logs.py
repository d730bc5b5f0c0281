"""Logging: human-readable lines by default, one JSON object per line with `--json-logs`.

Structured records carry their fields in `extra={"fields": {...}}`; both
formatters render them, so a call site never formats for one output only.

The per-connection line is the one log call on the data path, so it skips the
`logging` machinery: `record()` formats it the same way and appends it to a
buffer that is written at most every `FLUSH_INTERVAL` seconds (and at exit).
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import time
from typing import Any, TextIO

FLUSH_INTERVAL = 0.05


_second: list[object] = [-1, ""]  # the last whole second formatted, and its text


def _stamp(created: float) -> str:
    whole = int(created)
    if whole != _second[0]:  # strftime once per second, not once per line
        _second[:] = [whole, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole))]
    return f"{_second[1]}.{int(created % 1 * 1000):03d}Z"


def text_line(created: float, level: str, msg: str, fields: dict[str, Any] | None) -> str:
    line = f"{_stamp(created)} {level} {msg}"
    if fields:
        line += " " + " ".join(f"{key}={_text(value)}" for key, value in fields.items())
    return line


def json_line(created: float, level: str, logger: str, msg: str, fields: dict[str, Any] | None) -> str:
    data: dict[str, Any] = {"time": round(created, 3), "level": level, "logger": logger, "msg": msg}
    if fields:
        data.update(fields)
    return json.dumps(data, default=str)


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = text_line(
            record.created, record.levelname.lower(), record.getMessage(), getattr(record, "fields", None)
        )
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        fields = dict(getattr(record, "fields", None) or {})
        if record.exc_info:
            fields["exc"] = self.formatException(record.exc_info)
        return json_line(record.created, record.levelname.lower(), record.name, record.getMessage(), fields)


def _text(value: Any) -> str:
    text = "-" if value is None else str(value)
    return json.dumps(text) if " " in text or not text else text


class _Lines:
    """Buffered structured lines for the data path."""

    def __init__(self) -> None:
        self.json = False
        self.stream: TextIO = sys.stderr
        self.enabled = True
        self._buffer: list[str] = []
        self._scheduled = False

    def record(self, logger: str, msg: str, fields: dict[str, Any]) -> None:
        if not self.enabled:
            return
        now = time.time()
        if self.json:
            self._buffer.append(json_line(now, "info", logger, msg, fields))
        else:
            self._buffer.append(text_line(now, "info", msg, fields))
        if not self._scheduled:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                self.flush()
                return
            self._scheduled = True
            loop.call_later(FLUSH_INTERVAL, self.flush)

    def flush(self) -> None:
        self._scheduled = False
        if self._buffer:
            self.stream.write("\n".join(self._buffer) + "\n")
            self._buffer.clear()
            self.stream.flush()


lines = _Lines()


def record(logger: str, msg: str, fields: dict[str, Any]) -> None:
    """An info line on the data path (buffered; same format as `logging` lines)."""
    lines.record(logger, msg, fields)


def flush() -> None:
    lines.flush()


def setup(fmt: str, level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    lines.json = fmt == "json"
    lines.stream = sys.stderr
    lines.enabled = root.isEnabledFor(logging.INFO)
