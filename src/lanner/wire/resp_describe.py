"""A command as the analyzer reports it: name, bounded arguments, keys, redactions, effects.

`Describer` turns a parsed `Request` into a `Waiting` record (what `CommandCompleted`
will say about the command, plus what its reply will change). It redacts what is secret
whatever the configuration says (AUTH, HELLO's AUTH pair, CONFIG SET values, MIGRATE
credentials, ACL SETUSER rules) and what the configuration names. Pure data: no I/O.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Sequence
from typing import Final

from lanner.wire.resp_commands import CommandInfo, parse_count, redacted_positions
from lanner.wire.resp_request import NAME_KEEP, Request

REDACTED: Final = b"<redacted>"

# Commands whose reply changes how later ones are answered; the analyzer applies the change.
_EFFECTS: Final = {
    "SELECT": "select",
    "HELLO": "hello",
    "RESET": "reset",
    "MULTI": "multi",
    "EXEC": "exec",
    "DISCARD": "discard",
    "MONITOR": "monitor",
    "CLIENT REPLY": "reply",
}
_OPTION_SIZES: Final = {b"GROUP": 3, b"COUNT": 2}  # XREAD(GROUP) options and their values
_SUBSCRIBING: Final = frozenset(
    {"SUBSCRIBE", "PSUBSCRIBE", "SSUBSCRIBE", "UNSUBSCRIBE", "PUNSUBSCRIBE", "SUNSUBSCRIBE"}
)


class Confirmations:
    """The confirmations a (P|S)(UN)SUBSCRIBE waits for: one per channel, or one per subscription."""

    __slots__ = (
        "kind",
        "expected",
        "received",
        "parts",
        "length",
        "size",
        "total",
        "reply_kind",
        "attributes",
    )

    def __init__(self, kind: bytes, expected: int) -> None:
        self.kind = kind  # b"subscribe", b"punsubscribe"...
        self.expected = expected  # 0: as many as there are subscriptions when it runs
        self.received = 0
        self.parts: list[str] = []  # the confirmed channels' summaries, as far as they fit
        self.length = 0
        self.size = 0
        self.total: int | None = None  # the subscription count the last one reported
        self.reply_kind = "array"
        self.attributes = False


class Waiting:
    """A command sent: what its event will say, and what its reply will change."""

    __slots__ = (
        "name",
        "args",
        "arg_sizes",
        "arg_count",
        "keys",
        "category",
        "inline",
        "started",
        "blocking",
        "redacted",
        "hide_reply",
        "size",
        "effect",
        "effect_arg",
        "confirm",
        "silent",
    )

    def __init__(
        self,
        info: CommandInfo,
        args: tuple[bytes, ...],
        arg_sizes: tuple[int, ...],
        keys: tuple[bytes, ...],
        request: Request,
        started: float,
    ) -> None:
        self.name = info.name
        self.args = args
        self.arg_sizes = arg_sizes
        self.arg_count = 0
        self.keys = keys
        self.category = info.category
        self.inline = request.inline
        self.started = started
        self.blocking = info.blocking
        self.redacted = False
        self.hide_reply = False
        self.size = request.size
        self.effect = _EFFECTS.get(info.name)
        self.effect_arg: int | None = None
        self.confirm: Confirmations | None = None
        self.silent = False  # not answered; kept in line only so that its effect comes in order


class Describer:
    """Builds `Waiting` records within the configured bounds and redactions."""

    def __init__(
        self, max_arg: int, max_args: int, redact_commands: frozenset[str], redact_keys: tuple[str, ...]
    ) -> None:
        self.max_arg = max_arg
        self.max_args = max_args
        self.cut = max_arg < NAME_KEEP  # the reader keeps names longer than other arguments
        self.redact_commands = frozenset(name.upper() for name in redact_commands)
        pattern = "|".join(fnmatch.translate(glob) for glob in redact_keys)
        self.redact_keys = re.compile(pattern, re.DOTALL) if redact_keys else None
        self.redacting = bool(redact_commands or redact_keys)

    def __call__(self, info: CommandInfo, first: int, request: Request, started: float) -> Waiting:
        argv, count, max_args = request.argv, request.count, self.max_args
        span = info.span
        if span is not None:  # most commands: no list of positions needed
            stop = span[1] + 1 if span[1] >= 0 else count + span[1] + 1
            keys = argv[span[0] : stop : span[2]]
        elif info.keys is not None:
            keys = [argv[index] for index in info.keys(argv, count) if index < len(argv)]
        else:
            keys = []
        if len(keys) > max_args:
            del keys[max_args:]
        args = argv[first : first + max_args]
        if self.cut:
            args, keys = [arg[: self.max_arg] for arg in args], [key[: self.max_arg] for key in keys]
        sizes = request.sizes[first : first + max_args]
        waiting = Waiting(info, tuple(args), tuple(sizes), tuple(keys), request, started)
        waiting.arg_count = count - first
        if info.redact or self.redacting:
            self._redact(waiting, info, argv, count, first)
        if info.block_option:
            waiting.blocking = _block_option(argv)
        if waiting.effect is not None:
            waiting.effect_arg = parse_count(argv[1]) if len(argv) > 1 else None
        if info.name in _SUBSCRIBING:
            waiting.confirm = Confirmations(info.name.lower().encode(), count - 1)
        return waiting

    def _redact(self, waiting: Waiting, info: CommandInfo, argv: list[bytes], count: int, first: int) -> None:
        secret = redacted_positions(info, argv, count, first)
        if self.redacting and self._hidden(info, waiting.keys):
            keys = set(info.keys(argv, count)) if info.keys is not None else set()
            secret = [index for index in range(first, first + len(waiting.args)) if index not in keys]
            waiting.hide_reply = waiting.redacted = True
        args = waiting.args
        if any(first + at in secret for at in range(len(args))):
            waiting.args = tuple(REDACTED if first + at in secret else arg for at, arg in enumerate(args))
            waiting.redacted = True

    def _hidden(self, info: CommandInfo, keys: Sequence[bytes]) -> bool:
        if info.name in self.redact_commands or info.name.partition(" ")[0] in self.redact_commands:
            return True
        matcher = self.redact_keys
        return matcher is not None and any(matcher.match(key.decode("latin-1")) for key in keys)


def _block_option(argv: Sequence[bytes]) -> bool:
    """XREAD [COUNT n] [BLOCK ms] STREAMS..., XREADGROUP GROUP g c [...]: a BLOCK option."""
    index = 1
    while index < len(argv):
        word = argv[index].upper()
        if word in (b"BLOCK", b"STREAMS"):
            return word == b"BLOCK"
        index += _OPTION_SIZES.get(word, 1)
    return False
