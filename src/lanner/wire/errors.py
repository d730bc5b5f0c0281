"""The one exception a wire parser may raise."""

from __future__ import annotations


class ProtocolError(Exception):
    """The peer broke the protocol.

    `reply_hint` is the protocol-level answer that fits the fault (a SOCKS reply
    code, an HTTP status), or None when the only answer is to close.
    """

    def __init__(self, message: str, reply_hint: int | None = None) -> None:
        super().__init__(message)
        self.reply_hint = reply_hint
