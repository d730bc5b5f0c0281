"""Which protocol a connection speaks, from the first bytes its client sends.

Used where a listener is told `analyze: auto` and the destination port names
no protocol. The verdict is "redis", "postgres", "http", "none" (something
else: TLS, SSH, binary) or "more" (too few bytes to tell yet). Only the
protocols' own framing is trusted: a PostgreSQL startup packet's length and
version code, a RESP array header or an inline line starting with a Redis
command, an HTTP request line ending in its version. Never raises.
"""

from __future__ import annotations

import re
from typing import Final, Literal

Verdict = Literal["redis", "postgres", "http", "none", "more"]

ENOUGH: Final = 1024  # bytes after which a missing line end means "none"

# StartupMessage version codes (3.0, 3.2) and the untagged request codes (protocol section 55.7).
_PG_SSL, _PG_GSS, _PG_CANCEL = 80877103, 80877104, 80877102
_PG_MAX_STARTUP = 10_000

_HTTP_METHODS: Final = frozenset(
    b"GET HEAD POST PUT DELETE OPTIONS PATCH TRACE CONNECT PROPFIND PROPPATCH MKCOL COPY MOVE LOCK".split()
)
_HTTP_LINE: Final = re.compile(rb"^[A-Z]+ \S+ HTTP/\d\.\d\r?$")

# Commands a client plausibly starts an inline (telnet-style) Redis session with.
_REDIS_INLINE: Final = frozenset(
    b"PING AUTH HELLO SELECT ECHO INFO QUIT GET SET DEL EXISTS KEYS SCAN INCR DECR MGET MSET TYPE TTL EXPIRE"
    b" LPUSH RPUSH LPOP RPOP LRANGE LLEN HGET HSET HGETALL SADD SMEMBERS ZADD ZRANGE SUBSCRIBE PSUBSCRIBE"
    b" PUBLISH MONITOR CLIENT CONFIG COMMAND DBSIZE FLUSHDB FLUSHALL MULTI EXEC WATCH EVAL XADD XREAD".split()
)


def sniff(head: bytes) -> Verdict:
    """The protocol `head` (the client's first bytes, possibly partial) belongs to."""
    if not head:
        return "more"
    first = head[0]
    if first == 0x16:  # a TLS record: a ClientHello
        return "none"
    if first == 0x2A:  # '*': a RESP array of bulk strings
        if len(head) < 2:
            return "more"
        return "redis" if head[1:2].isdigit() else "none"
    if first == 0:  # a PostgreSQL untagged packet's length starts with a zero byte
        return _postgres(head)
    return _line(head)


def _postgres(head: bytes) -> Verdict:
    if len(head) < 8:
        return "more"
    length = int.from_bytes(head[0:4], "big")
    code = int.from_bytes(head[4:8], "big")
    if code in (_PG_SSL, _PG_GSS):
        return "postgres" if length == 8 else "none"
    if code == _PG_CANCEL:
        return "postgres" if 16 <= length <= 12 + 256 else "none"
    if code >> 16 == 3 and 8 < length <= _PG_MAX_STARTUP:
        return "postgres"
    return "none"


def _line(head: bytes) -> Verdict:
    end = head.find(b"\n")
    if end < 0:
        if len(head) >= ENOUGH:
            return "none"
        word = head.split(b" ", 1)[0].upper()
        if b" " not in head and not any(name.startswith(word) for name in _HTTP_METHODS | _REDIS_INLINE):
            return "none"
        return "more"
    line = head[:end]
    if _HTTP_LINE.match(line) and line.split(b" ", 1)[0] in _HTTP_METHODS:
        return "http"
    word = line.strip().split(None, 1)[0].upper() if line.strip() else b""
    return "redis" if word in _REDIS_INLINE else "none"
