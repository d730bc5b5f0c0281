"""Redis conversations read from copies of both directions of a connection, sans-I/O.

A transparent relay hands `RespAnalyzer` each chunk it forwards (the client's and the
server's, each direction in order) with the time it arrived. The analyzer pairs replies
with commands the way redis-server 7 answers them: in order, except for what it never
answers (CLIENT REPLY OFF/SKIP), what it answers several times (SUBSCRIBE a b c), what
it pushes unasked (pub/sub messages, tracking invalidations, MONITOR lines) and what a
transaction queues. It follows the state that changes this (MULTI, SELECT, HELLO,
RESET, MONITOR, subscriptions) and returns one `CommandCompleted` per command and one
`MessagePushed` per push.

It only observes: it never alters, produces or answers bytes, never reads a clock or a
socket, and never raises. When a direction stops being RESP it sets `stopped`, reports
the commands still waiting as unanswered and returns nothing more.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Final

from lanner.wire.errors import ProtocolError
from lanner.wire.resp_commands import lookup
from lanner.wire.resp_describe import Describer, Waiting
from lanner.wire.resp_reader import Aggregate, RedisReply, ReplyReader, Value
from lanner.wire.resp_request import Request, RequestReader
from lanner.wire.resp_session import Subscriptions

__all__ = ["CommandCompleted", "MessagePushed", "RedisEvent", "RedisReply", "RespAnalyzer"]

DEFAULT_MAX_PENDING: Final = 100_000
REDACTED_TEXT: Final = "<redacted>"


@dataclass(frozen=True, slots=True)
class CommandCompleted:
    """One command and what answered it.

    `name` is upper-case, with the subcommand for container commands ("CONFIG SET");
    `args` the arguments after it, each cut to max_arg bytes, secrets replaced by
    b"<redacted>", at most max_args of them, with their real sizes in `arg_sizes`;
    `arg_count` how many arguments (after name and subcommand) it really had. `keys` are
    its key arguments (cut the same way). `db` and `protocol` are the server's when it ran
    the command. `started` is the time of the chunk that completed the command, `ended`
    that of the chunk that completed its reply. Without a reply, `unanswered` says why:
    "reply off", "reply skip" (CLIENT REPLY), "connection closed", "analysis stopped".
    `queued`: answered +QUEUED in a transaction (EXEC's reply has the result). `size` is
    the command's bytes on the wire.
    """

    name: str
    args: tuple[bytes, ...]
    arg_sizes: tuple[int, ...]
    arg_count: int
    keys: tuple[bytes, ...]
    category: str
    db: int
    protocol: int
    inline: bool
    started: float
    ended: float | None
    reply: RedisReply | None
    unanswered: str | None = None
    queued: bool = False
    blocking: bool = False
    redacted: bool = False
    size: int = 0


@dataclass(frozen=True, slots=True)
class MessagePushed:
    """A push that answers no command: a pub/sub message, a client-tracking invalidation, a MONITOR line."""

    kind: str
    channel: bytes | None
    pattern: bytes | None
    summary: str
    size: int
    time: float


RedisEvent = CommandCompleted | MessagePushed


class RespAnalyzer:
    """Both directions of one Redis connection; `stopped` says why analysis ended, if it did.

    Bounds: arguments keep `max_arg` bytes and commands `max_args` arguments; summaries are
    `max_summary` characters (at least 32); a line (an inline command, a RESP header) may be
    `max_inline` bytes; replies nest `max_depth` deep; `max_pending` commands may wait for
    replies. Crossing a bound other than a cut stops the analysis.
    """

    def __init__(
        self,
        max_arg: int = 256,
        max_args: int = 64,
        max_summary: int = 512,
        max_inline: int = 64 * 1024,
        max_depth: int = 64,
        redact_commands: frozenset[str] = frozenset(),
        redact_keys: tuple[str, ...] = (),
        max_pending: int = DEFAULT_MAX_PENDING,
    ) -> None:
        if max_arg < 0 or max_args < 0 or max_summary < 32 or max_inline < 1 or max_depth < 1:
            raise ValueError("limits must be positive (max_summary at least 32)")
        self.stopped: str | None = None
        self.max_pending = max_pending
        self._requests = RequestReader(max_arg, 2 * max_args + 16, max_inline)
        self._replies = ReplyReader(max_summary, max_depth, max_inline)
        self._describe = Describer(max_arg, max_args, redact_commands, redact_keys)
        self._subscriptions = Subscriptions(max_arg, max_summary)
        self._waiting: deque[Waiting] = deque()
        self._closed = False
        # What the server does at the point its reply stream has reached.
        self._db, self._protocol = 0, 2
        self._multi = self._monitor = False
        self._queued_effects: list[Waiting] = []
        # What the client has asked for so far, ahead of the replies.
        self._sent_db, self._sent_protocol = 0, 2
        self._reply_off = self._skip_next = self._sent_multi = False

    @property
    def buffered(self) -> int:
        """Bytes held for data not yet complete (a line's start, a string's kept prefix, summaries)."""
        return self._requests.buffered + self._replies.buffered

    def client_data(self, data: bytes, now: float) -> list[RedisEvent]:
        events: list[RedisEvent] = []
        if self.stopped is None and not self._closed:
            requests: list[Request] = []
            try:
                try:
                    self._requests.feed(data if type(data) is bytes else bytes(data), requests)
                finally:  # what came before a protocol error happened all the same
                    for request in requests:
                        self._sent(request, now, events)
            except ProtocolError as exc:
                self._stop(f"client: {exc}", events)
        return events

    def server_data(self, data: bytes, now: float) -> list[RedisEvent]:
        events: list[RedisEvent] = []
        if self.stopped is None and not self._closed:
            values: list[Value] = []
            try:
                try:
                    self._replies.feed(data if type(data) is bytes else bytes(data), values)
                finally:
                    for value in values:
                        self._received(value, now, events)
            except ProtocolError as exc:
                self._stop(f"server: {exc}", events)
        return events

    def close(self, now: float) -> list[RedisEvent]:
        """The connection ended: the commands still waiting were not answered."""
        events: list[RedisEvent] = []
        if self.stopped is None and not self._closed:
            self._closed = True
            self._flush("connection closed", events)
        return events

    def _stop(self, reason: str, events: list[RedisEvent]) -> None:
        self.stopped = reason
        self._flush("analysis stopped", events)

    def _flush(self, reason: str, events: list[RedisEvent]) -> None:
        while self._waiting:
            waiting = self._waiting.popleft()
            if waiting.silent:
                self._apply(waiting, True)
            else:
                events.append(self._event(waiting, None, None, reason, self._db, self._protocol))

    # -- the client's side --

    def _sent(self, request: Request, now: float, events: list[RedisEvent]) -> None:
        if not request.count:
            self._skip_next = False  # redis resets the client after an empty command too
            return
        info, first = lookup(request.argv, request.count)
        waiting = self._describe(info, first, request, now)
        if waiting.effect is None and not self._reply_off and not self._skip_next:
            unanswered = None  # the common case
        else:
            unanswered = self._will_answer(waiting, request)
            self._predict(waiting)
        if unanswered is not None:
            events.append(self._event(waiting, None, None, unanswered, self._sent_db, self._sent_protocol))
            if not waiting.effect:
                return
            if not self._waiting:
                self._apply(waiting, True)  # the replies have caught up: it takes effect now
                return
            waiting.silent = True  # its effect comes between the replies before and after it
        if len(self._waiting) >= self.max_pending:
            raise ProtocolError(f"more than {self.max_pending} commands waiting for replies")
        self._waiting.append(waiting)

    def _will_answer(self, waiting: Waiting, request: Request) -> str | None:
        """Why the server will not answer this command, if it will not (networking.c, CLIENT REPLY)."""
        skip, self._skip_next = self._skip_next, False
        effect = waiting.effect
        if effect == "reply" and not self._sent_multi:
            mode = request.argv[2].upper() if request.count == 3 else b""
            if mode == b"ON":
                self._reply_off = False
                return None  # answered even right after SKIP
            if mode == b"OFF":
                self._reply_off = True
                return "reply off"
            if mode == b"SKIP":
                self._skip_next = not self._reply_off
                return "reply off" if self._reply_off else "reply skip"
        if effect == "reset":
            self._reply_off = False
            return "reply skip" if skip else None
        return "reply off" if self._reply_off else "reply skip" if skip else None

    def _predict(self, waiting: Waiting) -> None:
        effect = waiting.effect
        if effect == "select" and waiting.effect_arg is not None:
            self._sent_db = waiting.effect_arg
        elif effect == "hello" and waiting.effect_arg in (2, 3):
            self._sent_protocol = waiting.effect_arg
        elif effect == "multi":
            self._sent_multi = True
        elif effect in ("exec", "discard", "reset"):
            self._sent_multi = False
            if effect == "reset":
                self._sent_db, self._sent_protocol = 0, 2

    # -- the server's side --

    def _received(self, value: Value, now: float, events: list[RedisEvent]) -> None:
        waiting = self._waiting
        while waiting and waiting[0].silent:
            self._apply(waiting.popleft(), True)
        head = waiting[0] if waiting else None
        if isinstance(value, Aggregate):
            reply = value.reply
            pubsub = reply.kind == "push" or (self._protocol == 2 and self._pubsub_possible(head))
            if pubsub and self._pubsub(value, head, now, events):
                return
        else:
            reply = value
            if self._monitor and reply.kind == "simple" and reply.summary[:1].isdigit():
                events.append(MessagePushed("monitor", None, None, reply.summary, reply.size, now))
                return
        if head is None:
            kind = "error" if reply.kind == "error" else "reply"  # e.g. "max number of clients reached"
            events.append(MessagePushed(kind, None, None, reply.summary, reply.size, now))
            return
        waiting.popleft()
        self._answered(head, reply, now, events)

    def _pubsub_possible(self, head: Waiting | None) -> bool:
        return self._subscriptions.active or (head is not None and head.confirm is not None)

    def _pubsub(self, value: Aggregate, head: Waiting | None, now: float, events: list[RedisEvent]) -> bool:
        """Handle a push, or a RESP2 array in subscribed mode, if it is pub/sub; False: it is a reply."""
        subscriptions = self._subscriptions
        if head is not None and subscriptions.confirms(value, head):
            if subscriptions.confirmed(value, head):
                self._waiting.popleft()
                reply = subscriptions.reply(head)
                events.append(self._event(head, reply, now, None, self._db, self._protocol))
            return True
        pushed = subscriptions.pushed(value, now)
        if pushed is None:
            return False
        events.append(MessagePushed(*pushed))
        return True

    def _answered(self, head: Waiting, reply: RedisReply, now: float, events: list[RedisEvent]) -> None:
        queued = self._multi and reply.kind == "simple" and reply.summary == "QUEUED"
        events.append(self._event(head, reply, now, None, self._db, self._protocol, queued))
        if queued:
            if head.effect:
                self._queued_effects.append(head)  # it takes effect when EXEC runs it
        elif head.effect:
            self._apply(head, reply.kind not in ("error", "null"))  # null: EXEC after a WATCH fired

    def _apply(self, waiting: Waiting, ok: bool) -> None:
        """The server state after `waiting` ran (`ok`: it did not fail)."""
        effect, arg = waiting.effect, waiting.effect_arg
        if effect == "exec":
            queued, self._queued_effects = self._queued_effects, []
            self._multi = False
            for done in queued if ok else ():
                self._apply(done, True)
        elif effect == "discard":
            self._multi, self._queued_effects = False, []
        elif effect == "reset":
            self._db, self._protocol, self._multi, self._monitor = 0, 2, False, False
            self._queued_effects = []
            self._subscriptions.reset()
        elif not ok:
            if effect in ("select", "hello"):
                self._sent_db, self._sent_protocol = self._db, self._protocol  # predicted to work, it did not
        elif effect == "select" and arg is not None:
            self._db = arg
        elif effect == "hello" and arg is not None:
            self._protocol = arg
        elif effect == "multi":
            self._multi = True
        elif effect == "monitor":
            self._monitor = True

    def _event(
        self,
        waiting: Waiting,
        reply: RedisReply | None,
        ended: float | None,
        unanswered: str | None,
        db: int,
        protocol: int,
        queued: bool = False,
    ) -> CommandCompleted:
        if reply is not None and waiting.hide_reply:
            reply = RedisReply(
                reply.kind, REDACTED_TEXT, reply.size, reply.error, reply.count, reply.attributes
            )
        return CommandCompleted(
            waiting.name,
            waiting.args,
            waiting.arg_sizes,
            waiting.arg_count,
            waiting.keys,
            waiting.category,
            db,
            protocol,
            waiting.inline,
            waiting.started,
            ended,
            reply,
            unanswered,
            queued,
            waiting.blocking,
            waiting.redacted,
            waiting.size,
        )
