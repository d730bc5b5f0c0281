"""Bounded human text for Redis values, in redis-cli's manner: '"a\\x00b"', '(integer) 5'.

Strings are quoted and escaped like redis-cli's sdscatrepr(); anything cut is marked
with a trailing '…', and no text is longer than the limit it is given.
"""

from __future__ import annotations

from typing import Final

ELLIPSIS: Final = "…"

_SAFE: Final = bytes(byte for byte in range(0x20, 0x7F) if byte not in b'"\\')
_NAMED: Final = {ord("\\"): "\\\\", ord('"'): '\\"', 10: "\\n", 13: "\\r", 9: "\\t", 7: "\\a", 8: "\\b"}
_ESCAPED: Final = [
    _NAMED.get(byte, chr(byte) if 0x20 <= byte < 0x7F else f"\\x{byte:02x}") for byte in range(256)
]


def bound(text: str, limit: int, cut: bool = False) -> str:
    """`text` if it fits in `limit` characters and nothing was cut before; else its start and '…'."""
    if cut or len(text) > limit:
        return text[: limit - 1] + ELLIPSIS
    return text


def quote(value: bytes, limit: int, cut: bool = False) -> str:
    """A string as redis-cli shows it, bounded; `cut` says `value` is only the start of it."""
    if value.translate(None, _SAFE):
        text = '"' + "".join([_ESCAPED[byte] for byte in value]) + '"'
    else:
        text = '"' + value.decode("ascii") + '"'
    return bound(text, limit, cut)
