"""Pub/sub as the analyzer follows it: which pushes confirm a command, which are messages.

redis-server confirms (P|S)(UN)SUBSCRIBE once per channel, with the client's
subscription count, as arrays in RESP2 and pushes in RESP3; it delivers messages the
same way, and RESP3 adds other pushes (client-tracking invalidations). `Subscriptions`
keeps the counts those confirmations report: they say how many confirmations an
UNSUBSCRIBE without channels gets, and whether a RESP2 array may be a message at all.
Pure state, no I/O.
"""

from __future__ import annotations

from typing import Final

from lanner.wire.resp_describe import Waiting
from lanner.wire.resp_reader import Aggregate, RedisReply
from lanner.wire.resp_text import bound

CONFIRMATIONS: Final = frozenset(
    {b"subscribe", b"unsubscribe", b"psubscribe", b"punsubscribe", b"ssubscribe", b"sunsubscribe"}
)
_CHANNEL_AT: Final = {b"message": 1, b"smessage": 1, b"pmessage": 2}  # pmessage: pattern, channel, payload

Pushed = tuple[str, bytes | None, bytes | None, str, int, float]  # MessagePushed's fields


class Subscriptions:
    """The subscription counts redis-server last reported for this client."""

    def __init__(self, max_arg: int, max_summary: int) -> None:
        self.max_arg = max_arg
        self.max_summary = max_summary
        self.channels = self.patterns = self.shards = 0

    @property
    def active(self) -> bool:
        """In RESP2 subscribed mode: arrays may be messages."""
        return bool(self.channels or self.patterns or self.shards)

    def reset(self) -> None:
        self.channels = self.patterns = self.shards = 0

    def confirms(self, value: Aggregate, head: Waiting) -> bool:
        values = value.values
        first = values[0] if values else None
        return (
            head.confirm is not None
            and len(values) >= 3
            and isinstance(first, bytes)
            and first.lower() == head.confirm.kind
        )

    def confirmed(self, value: Aggregate, head: Waiting) -> bool:
        """Count one confirmation of `head`; True when it was the last."""
        confirm = head.confirm
        assert confirm is not None
        if not confirm.expected and not confirm.received:
            confirm.expected = max(1, self._count_of(confirm.kind))
        total = value.values[2]
        self._counted(confirm.kind, total)
        confirm.received += 1
        confirm.size += value.reply.size
        confirm.total = total if isinstance(total, int) else None
        confirm.reply_kind = value.reply.kind
        confirm.attributes = confirm.attributes or value.reply.attributes
        if confirm.length < self.max_summary:
            channel = value.summaries[1] if confirm.received == 1 else ", " + value.summaries[1]
            confirm.parts.append(channel)
            confirm.length += len(channel)
        return confirm.received >= confirm.expected

    def reply(self, head: Waiting) -> RedisReply:
        """The reply a subscribing command got, made of its confirmations."""
        confirm = head.confirm
        assert confirm is not None
        channels = "".join(confirm.parts)
        cut = confirm.length >= self.max_summary
        total = f" (total {confirm.total})"
        summary = bound(f"{confirm.kind.decode()} {channels}", self.max_summary - len(total), cut) + total
        kind, size, count = confirm.reply_kind, confirm.size, confirm.received
        return RedisReply(kind, summary, size, None, count, confirm.attributes)

    def pushed(self, value: Aggregate, now: float) -> Pushed | None:
        """The push `value` is, or None when it is not one (a RESP2 array that answers a command)."""
        values, reply = value.values, value.reply
        first = values[0] if values else None
        name = first.lower() if isinstance(first, bytes) else b""
        at = _CHANNEL_AT.get(name)
        if at is not None and len(values) > at:
            pattern = self._cut(values[1]) if at == 2 else None
            payload = value.summaries[at + 1] if len(values) > at + 1 else ""
            return name.decode(), self._cut(values[at]), pattern, payload, reply.size, now
        if name in CONFIRMATIONS and len(values) >= 3:  # confirms nothing we wait for
            self._counted(name, values[2])
            return name.decode(), self._cut(values[1]), None, reply.summary, reply.size, now
        if reply.kind != "push":
            return None
        if name == b"invalidate":
            keys = value.summaries[1] if len(values) > 1 else "(nil)"
            return "invalidate", None, None, keys, reply.size, now
        kind = bound(name.decode("utf-8", "replace"), 64) if name else "push"
        return kind, None, None, reply.summary, reply.size, now

    def _cut(self, value: object) -> bytes | None:
        return value[: self.max_arg] if isinstance(value, bytes) else None

    def _count_of(self, kind: bytes) -> int:
        if kind == b"unsubscribe":
            return self.channels
        return self.patterns if kind == b"punsubscribe" else self.shards

    def _counted(self, kind: bytes, total: object) -> None:
        # The count covers channels and patterns together, shard channels apart (pubsub.c).
        if not isinstance(total, int):
            return
        if kind in (b"subscribe", b"unsubscribe"):
            self.channels = max(0, total - self.patterns)
        elif kind in (b"psubscribe", b"punsubscribe"):
            self.patterns = max(0, total - self.channels)
        else:
            self.shards = max(0, total)
