"""Redaction: secrets are replaced before a flow reaches the store.

Applied on the recorder's writer thread to every flow, before compression and
before anything touches disk. Header values by name (Authorization,
Proxy-Authorization, Cookie and Set-Cookie by default), URL query parameters,
keys of JSON bodies at any depth, and regular expressions over the URL, header
values and text bodies.

A body that crossed the wire content-encoded (gzip, br, ...) and that body
rules apply to is decoded to be redacted and stored decoded; its flow says so
in `notes` ("<side>_body": "decoded for redaction"), so readers do not decode
it again. An encoded body that cannot be decoded cannot be checked, so it is
replaced by a marker; so is a truncated JSON body when JSON fields are redacted.
"""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode

from lanner.config.model import RedactConfig
from lanner.record import bodies
from lanner.record.model import Body, FlowRecord, Headers

MARK = "[redacted]"
MARK_BYTES = MARK.encode()


class Redactor:
    def __init__(self, config: RedactConfig) -> None:
        self.headers = frozenset(name.lower() for name in config.headers)
        self.params = frozenset(config.query_params)
        self.fields = frozenset(config.json_fields)
        self.patterns = [re.compile(pattern) for pattern in config.patterns]
        self.byte_patterns = [re.compile(pattern.encode()) for pattern in config.patterns]

    @property
    def touches_bodies(self) -> bool:
        return bool(self.fields or self.patterns)

    def apply(self, flow: FlowRecord) -> None:
        flow.path = self.path(flow.path)
        flow.request_headers = self.header_list(flow.request_headers)
        flow.response_headers = self.header_list(flow.response_headers)
        flow.request_trailers = self.header_list(flow.request_trailers)
        flow.response_trailers = self.header_list(flow.response_trailers)
        if self.touches_bodies:
            flow.request_body = self.body(flow, "request", flow.request_headers, flow.request_body)
            flow.response_body = self.body(flow, "response", flow.response_headers, flow.response_body)
        if self.patterns and flow.proto in ("redis", "postgres"):
            self.database_fields(flow)

    def apply_database(self, flow: FlowRecord) -> None:
        """A Redis or PostgreSQL flow: only patterns apply (it has no headers, query or JSON bodies)."""
        if self.patterns:
            self.apply(flow)

    def database_fields(self, flow: FlowRecord) -> None:
        """A Redis command line or SQL text, what derives from it, and the server's error text."""
        flow.command = self.text(flow.command)
        flow.statement = self.text(flow.statement)
        flow.keys = [self.text(key) for key in flow.keys]
        if flow.error is not None:
            flow.error = self.text(flow.error)
        notes = flow.notes
        for name in ("error_detail", "error_hint"):
            if name in notes:
                notes[name] = self.text(notes[name])
        for name in ("params", "notices"):  # JSON lists: each item redacted, the list kept valid
            if name in notes:
                items = json.loads(notes[name])
                redacted = [self.text(item) if isinstance(item, str) else item for item in items]
                notes[name] = json.dumps(redacted, ensure_ascii=False)

    def header_list(self, headers: Headers) -> Headers:
        if not headers:
            return headers
        if not self.patterns:
            names = self.headers
            return [(name, MARK if name.lower() in names else value) for name, value in headers]
        return [(name, self.header_value(name, value)) for name, value in headers]

    def header_value(self, name: str, value: str) -> str:
        if name.lower() in self.headers:
            return MARK
        return self.text(value)

    def text(self, value: str) -> str:
        for pattern in self.patterns:
            value = pattern.sub(MARK, value)
        return value

    def path(self, path: str) -> str:
        base, question, query = path.partition("?")
        if question and self.params:
            pairs = parse_qsl(query, keep_blank_values=True)
            if any(key in self.params for key, _ in pairs):
                redacted = [(key, MARK if key in self.params else value) for key, value in pairs]
                query = urlencode(redacted, quote_via=quote, safe="[]")
        return self.text(base + question + query)

    def body(self, flow: FlowRecord, side: str, headers: Headers, body: Body) -> Body:
        if not body.data:
            return body
        encoding = _header(headers, "content-encoding")
        data = body.data
        if encoding and encoding.strip().lower() != "identity":
            decoded, error = bodies.decode_content(encoding, data)
            if error is not None:
                flow.notes[f"{side}_body"] = f"replaced: could not be decoded for redaction ({error})"
                return Body(MARK_BYTES, body.size, body.truncated, len(MARK_BYTES))
            data = decoded
        redacted = self.body_bytes(_header(headers, "content-type") or "", data, body.truncated)
        if redacted == body.data:
            return body
        if data is not body.data:
            flow.notes[f"{side}_body"] = "decoded for redaction"
        return Body(redacted, body.size, body.truncated, min(body.head_len, len(redacted)))

    def body_bytes(self, content_type: str, data: bytes, truncated: bool) -> bytes:
        if self.fields and "json" in content_type.lower():
            if truncated:
                return MARK_BYTES  # a cut JSON document cannot be parsed to find its fields
            data = self.json_body(data)
        for pattern in self.byte_patterns:
            data = pattern.sub(MARK_BYTES, data)
        return data

    def json_body(self, data: bytes) -> bytes:
        try:
            document = json.loads(data)
        except ValueError:
            return data
        redacted = self.json_value(document)
        return data if redacted == document else json.dumps(redacted).encode()

    def json_value(self, value: Any) -> Any:
        if isinstance(value, dict):
            return {key: MARK if key in self.fields else self.json_value(item) for key, item in value.items()}
        if isinstance(value, list):
            return [self.json_value(item) for item in value]
        return value


def _header(headers: Headers, name: str) -> str | None:
    found = None
    for key, value in headers:
        if key.lower() == name:
            found = value
    return found
