"""Body codecs: compression for storage, content decoding for display and search.

Storage compression is chosen by size (none under 1 KiB, LZ4 up to 64 KiB,
Zstandard above). Content decoding (gzip, deflate, br, zstd, chained) never
raises and never produces more than `max_output` bytes, so a decompression
bomb costs a bounded amount of memory.
"""

from __future__ import annotations

import zlib
from typing import Final

import brotli
import lz4.frame
import zstandard

from lanner.record.model import FlowRecord, Headers, header

COMPRESS_MIN: Final = 1024
ZSTD_MIN: Final = 64 * 1024
MAX_OUTPUT: Final = 16 * 1024 * 1024
_TEXT_TYPES: Final = ("text/", "json", "xml", "javascript", "x-www-form-urlencoded", "graphql", "yaml")

_zstd_compressor = zstandard.ZstdCompressor(level=3)


def compress(data: bytes) -> tuple[str, bytes]:
    if len(data) < COMPRESS_MIN:
        return "", data
    if len(data) < ZSTD_MIN:
        return "lz4", lz4.frame.compress(data)
    return "zstd", _zstd_compressor.compress(data)


def decompress(codec: str, blob: bytes) -> bytes:
    if not codec:
        return blob
    if codec == "lz4":
        return bytes(lz4.frame.decompress(blob))
    if codec == "zstd":
        return zstandard.ZstdDecompressor().decompress(blob)
    raise ValueError(f"unknown body codec {codec!r}")


def decode_content(
    content_encoding: str | None, data: bytes, max_output: int = MAX_OUTPUT
) -> tuple[bytes, str | None]:
    """Undo the content codings in order (RFC 9110 section 8.4); (bytes, None) or (best effort, why)."""
    if not content_encoding:
        return data, None
    codings = [c.strip().lower() for c in content_encoding.split(",") if c.strip()]
    for coding in reversed(codings):  # the last coding listed was applied last
        try:
            data = _decode_one(coding, data, max_output)
        except _DecodeError as exc:
            return data, f"{coding}: {exc}"
    return data, None


class _DecodeError(Exception):
    pass


def _decode_one(coding: str, data: bytes, max_output: int) -> bytes:
    if coding == "identity":
        return data
    try:
        if coding in ("gzip", "x-gzip"):
            return _zlib(data, 16 + zlib.MAX_WBITS, max_output)
        if coding == "deflate":
            try:
                return _zlib(data, zlib.MAX_WBITS, max_output)
            except zlib.error:  # many servers send raw deflate without the zlib wrapper
                return _zlib(data, -zlib.MAX_WBITS, max_output)
        if coding == "br":
            return _brotli(data, max_output)
        if coding == "zstd":
            return _zstd(data, max_output)
    except (zlib.error, brotli.error, zstandard.ZstdError) as exc:
        raise _DecodeError(str(exc) or type(exc).__name__) from exc
    raise _DecodeError("unsupported content coding")


def _zlib(data: bytes, wbits: int, max_output: int) -> bytes:
    decoder = zlib.decompressobj(wbits)
    out = decoder.decompress(data, max_output)
    if decoder.unconsumed_tail:
        raise _DecodeError(f"decoded body larger than {max_output} bytes")
    if not decoder.eof:
        raise _DecodeError("truncated stream")
    return out


def _brotli(data: bytes, max_output: int) -> bytes:
    decoder = brotli.Decompressor()
    out = decoder.process(data)  # brotli's binding has no output bound; checked right after
    if len(out) > max_output:
        raise _DecodeError(f"decoded body larger than {max_output} bytes")
    if not decoder.is_finished():
        raise _DecodeError("truncated stream")
    return bytes(out)


def _zstd(data: bytes, max_output: int) -> bytes:
    reader = zstandard.ZstdDecompressor().stream_reader(data)
    out = reader.read(max_output + 1)
    if len(out) > max_output:
        raise _DecodeError(f"decoded body larger than {max_output} bytes")
    return out


def is_text(content_type: str | None) -> bool:
    if not content_type:
        return False
    lowered = content_type.lower()
    return any(marker in lowered for marker in _TEXT_TYPES)


def search_text(
    content_type: str | None, content_encoding: str | None, data: bytes, limit: int = 16384
) -> tuple[str, str | None]:
    """Decoded text of a body for the full-text index (capped), and the decode error if any."""
    if not data:
        return "", None
    decoded, error = decode_content(content_encoding, data)
    if error is not None or not is_text(content_type):
        return "", error
    return decoded[:limit].decode("utf-8", "replace"), None


def _content_encoding(record: FlowRecord, side: str, headers: Headers) -> str | None:
    """The coding to undo; none when redaction rewrote the body (it was stored decoded)."""
    return None if f"{side}_body" in record.notes else header(headers, "content-encoding")


def readable(record: FlowRecord, side: str) -> tuple[bytes, str | None]:
    """A flow's request or response body with its content coding undone, for display and export.

    A truncated body cannot be decoded (its middle is missing) and comes back as
    captured; so does one that fails to decode, with the reason.
    """
    body, headers = (
        (record.request_body, record.request_headers)
        if side == "request"
        else (record.response_body, record.response_headers)
    )
    encoding = _content_encoding(record, side, headers)
    if body.truncated and encoding:
        return body.data, "truncated: shown as captured (still content-encoded)"
    return decode_content(encoding, body.data)


def flow_search_text(record: FlowRecord, limit: int = 16384) -> str:
    """Decoded text of both bodies for the store's full-text index; decode failures go to notes."""
    parts = []
    for side, headers, body in (
        ("request", record.request_headers, record.request_body),
        ("response", record.response_headers, record.response_body),
    ):
        if not body.data:
            continue
        encoding = _content_encoding(record, side, headers)
        found, error = search_text(header(headers, "content-type"), encoding, body.data, limit)
        if error is not None:
            record.notes[f"{side}_decode_error"] = error
        if found:
            parts.append(found)
    return "\n".join(parts)
