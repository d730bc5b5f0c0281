"""Decoders for the bodies of PostgreSQL protocol messages (protocol chapter 55.7), sans-I/O.

Each function reads one message body (the bytes after the type byte and length) and
returns plain values. `partial` says the body is only the first bytes of a message
too long to keep (see `postgres_framing`): then a field cut by the end is returned
as far as it goes and later fields are left out, where a complete body that ends
early is malformed and raises `ProtocolError`, the only exception raised here.
Nothing here keeps secrets: password and SASL messages are never decoded.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Final

from lanner.wire.errors import ProtocolError
from lanner.wire.postgres_events import PgError

INT16: Final = struct.Struct(">h")
INT32: Final = struct.Struct(">i")
UINT32: Final = struct.Struct(">I")
_FIELD_TAIL: Final = 18  # RowDescription: table OID, column number, type OID, size, modifier, format
_COUNTED_TAGS: Final = frozenset({"SELECT", "INSERT", "UPDATE", "DELETE", "MERGE", "FETCH", "MOVE", "COPY"})
_ERROR_NAMED: Final = frozenset("SVCMDHP")


@dataclass(frozen=True, slots=True)
class ParamLimits:
    """How much of each Bind or FunctionCall value an event keeps."""

    max_param: int
    max_params: int
    redact: bool


def text(raw: bytes) -> str:
    return raw.decode("utf-8", "replace")


def cstring(body: bytes, pos: int, partial: bool) -> tuple[str, int]:
    """The NUL-terminated string at `pos` and the position after its NUL."""
    end = body.find(b"\0", pos)
    if end == pos:
        return "", end + 1  # unnamed statements and portals: the common case
    if end < 0:
        if not partial:
            raise ProtocolError("string without its terminating NUL")
        return text(body[pos:]), len(body)
    return text(body[pos:end]), end + 1


def has(body: bytes, pos: int, size: int, partial: bool) -> bool:
    """Whether `size` bytes follow `pos`; a complete body that lacks them is malformed."""
    if pos + size <= len(body):
        return True
    if partial:
        return False
    raise ProtocolError("message shorter than its fields")


def cut_sql(raw: bytes, max_sql: int, cut: bool) -> tuple[str, bool]:
    """SQL text kept to `max_sql` characters; `cut` says `raw` already lost its end."""
    # No character takes more than 4 bytes in UTF-8, so the slice holds every kept one.
    sql = text(raw[: 4 * max_sql])
    if len(sql) > max_sql:
        return sql[:max_sql], True
    return sql, cut or len(raw) > 4 * max_sql


def query(body: bytes, partial: bool, max_sql: int) -> tuple[str, bool]:
    """A Query's SQL and whether it was cut."""
    end = body.find(b"\0")
    if end < 0:
        if not partial:
            raise ProtocolError("Query without its terminating NUL")
        return cut_sql(body, max_sql, True)
    return cut_sql(body[:end], max_sql, False)


def parse(body: bytes, partial: bool, max_sql: int) -> tuple[str, str, bool, tuple[int, ...]]:
    """A Parse: statement name, SQL, whether the SQL was cut, parameter type OIDs."""
    name, pos = cstring(body, 0, partial)
    end = body.find(b"\0", pos)
    if end < 0:
        if not partial:
            raise ProtocolError("Parse without the NUL after its query")
        sql, _ = cut_sql(body[pos:], max_sql, True)
        return name, sql, True, ()
    sql, truncated = cut_sql(body[pos:end], max_sql, False)
    return name, sql, truncated, _oids(body, end + 1, partial)


def parameter_description(body: bytes, partial: bool) -> tuple[int, ...]:
    return _oids(body, 0, partial)


def _oids(body: bytes, pos: int, partial: bool) -> tuple[int, ...]:
    if not has(body, pos, 2, partial):
        return ()
    (count,) = INT16.unpack_from(body, pos)
    pos += 2
    if count < 0:
        raise ProtocolError("negative type count")
    if not has(body, pos, 4 * count, partial):
        count = (len(body) - pos) // 4
    return struct.unpack_from(f">{count}I", body, pos)


def row_description(body: bytes, partial: bool) -> tuple[tuple[str, int], ...]:
    """RowDescription: (name, type OID) of each column (as many as a cut body holds)."""
    if not has(body, 0, 2, partial):
        return ()
    (count,) = INT16.unpack_from(body, 0)
    columns = []
    pos = 2
    for _ in range(count):
        end = body.find(b"\0", pos)
        if end < 0 or not has(body, end + 1, _FIELD_TAIL, partial):
            if partial:
                break
            raise ProtocolError("RowDescription shorter than its fields")
        columns.append((text(body[pos:end]), UINT32.unpack_from(body, end + 7)[0]))
        pos = end + 1 + _FIELD_TAIL
    return tuple(columns)


def error_fields(body: bytes, partial: bool) -> PgError:
    """An ErrorResponse or NoticeResponse; 'V' (never translated) is preferred to 'S'."""
    fields: dict[str, str] = {}
    extra: list[tuple[str, str]] = []
    pos, size = 0, len(body)
    while pos < size and body[pos]:
        code = chr(body[pos])
        value, pos = cstring(body, pos + 1, partial)
        if code in _ERROR_NAMED:
            fields[code] = value
        else:
            extra.append((code, value))
    return PgError(
        severity=fields.get("V", fields.get("S", "")),
        sqlstate=fields.get("C", ""),
        message=fields.get("M", ""),
        detail=fields.get("D"),
        hint=fields.get("H"),
        position=fields.get("P"),
        extra=tuple(extra),
    )


def tag_rows(tag: str) -> int | None:
    """The row count of a CommandComplete tag that has one ("INSERT 0 1" -> 1)."""
    word, _, rest = tag.partition(" ")
    if word in _COUNTED_TAGS:
        count = rest.rpartition(" ")[2]
        if count.isascii() and count.isdigit() and len(count) <= 20:
            return int(count)
    return None


def values(
    body: bytes, pos: int, formats: tuple[int, ...], partial: bool, limits: ParamLimits
) -> tuple[str | None, ...]:
    """Bind parameters or FunctionCall arguments: a count, then (length, bytes) each, -1 for NULL.

    Runs for every Bind: the checks are inline, and only the kept part of a value is copied.
    """
    end = len(body)
    if not has(body, pos, 2, partial):
        return ()
    (count,) = INT16.unpack_from(body, pos)
    pos += 2
    # No code: all text; one code: all of that format; else one code each (section 55.7, Bind).
    every = formats[0] if len(formats) == 1 else 0
    each = len(formats) > 1
    redact, max_param = limits.redact, limits.max_param
    max_hex = max(max_param - 2, 0) // 2
    kept: list[str | None] = []
    for index in range(min(count, limits.max_params)):
        if pos + 4 > end:
            has(body, pos, 4, partial)
            break
        (size,) = INT32.unpack_from(body, pos)
        pos += 4
        if size < 0:
            kept.append("<redacted>" if redact else None)
            continue
        if redact:
            kept.append("<redacted>")
        elif (formats[index] if index < len(formats) else 0) if each else every:
            kept.append("\\x" + body[pos : pos + min(size, max_hex)].hex())
        else:
            kept.append(body[pos : pos + min(size, 4 * max_param)].decode("utf-8", "replace")[:max_param])
        pos += size
        if pos > end:
            has(body, pos, 0, partial)  # a complete body that ends inside a value is malformed
            break
    return tuple(kept)


def format_codes(body: bytes, pos: int, partial: bool) -> tuple[tuple[int, ...], int]:
    """An int16 count and that many int16 format codes; the position after them."""
    if not has(body, pos, 2, partial):
        return (), len(body)
    (count,) = INT16.unpack_from(body, pos)
    pos += 2
    if count < 0:
        raise ProtocolError("negative format code count")
    if not has(body, pos, 2 * count, partial):
        return (), len(body)
    if count <= 1:  # the common cases, without building a struct format
        return INT16.unpack_from(body, pos) if count else (), pos + 2 * count
    return struct.unpack_from(f">{count}h", body, pos), pos + 2 * count


def bind(body: bytes, partial: bool, limits: ParamLimits) -> tuple[str, str, tuple[str | None, ...]]:
    """A Bind: portal name, statement name, parameters (result formats after them are not needed)."""
    portal, pos = cstring(body, 0, partial)
    statement, pos = cstring(body, pos, partial)
    formats, pos = format_codes(body, pos, partial)
    return portal, statement, values(body, pos, formats, partial, limits)


def function_call(body: bytes, partial: bool, limits: ParamLimits) -> tuple[int, tuple[str | None, ...]]:
    """A FunctionCall: the function's OID and its arguments."""
    if not has(body, 0, 4, partial):
        return 0, ()
    (oid,) = UINT32.unpack_from(body, 0)
    formats, pos = format_codes(body, 4, partial)
    return oid, values(body, pos, formats, partial, limits)


def copy_format(body: bytes) -> str:
    """CopyInResponse / CopyOutResponse / CopyBothResponse: the overall format."""
    if not body:
        raise ProtocolError("copy response without a format")
    return "binary" if body[0] else "text"


def name_and_value(body: bytes, partial: bool) -> tuple[str, str]:
    """A ParameterStatus."""
    name, pos = cstring(body, 0, partial)
    value, _ = cstring(body, pos, partial)
    return name, value


def notification(body: bytes, partial: bool, max_payload: int) -> tuple[int, str, str]:
    """A NotificationResponse: sender's PID, channel, payload cut to `max_payload` characters."""
    has(body, 0, 4, False)
    (pid,) = INT32.unpack_from(body, 0)
    channel, pos = cstring(body, 4, partial)
    end = body.find(b"\0", pos)
    if end < 0 and not partial:
        raise ProtocolError("NotificationResponse payload without its NUL")
    payload = body[pos : end if end >= 0 else len(body)]
    return pid, channel, text(payload[: 4 * max_payload])[:max_payload]


def startup_parameters(body: bytes) -> list[tuple[str, str]]:
    """The name/value pairs of a StartupMessage after its protocol version."""
    pairs: list[tuple[str, str]] = []
    pos = 0
    while True:
        if pos >= len(body):
            raise ProtocolError("StartupMessage without its final NUL")
        if body[pos] == 0:
            return pairs
        name, pos = cstring(body, pos, False)
        value, pos = cstring(body, pos, False)
        pairs.append((name, value))
