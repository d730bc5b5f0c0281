"""Flows as the admin API shows them."""

from __future__ import annotations

import gzip
import json

from lanner.control.views import body_view, detail, summary
from lanner.record.model import Body, FlowRecord


def flow(**changes: object) -> FlowRecord:
    record = FlowRecord(conn_uid="ab12cd.3", proto="http", started=100.0, method="GET", host="h", port=80, path="/x")
    for key, value in changes.items():
        setattr(record, key, value)
    return record


def test_json_is_pretty_text_is_text_binary_is_not_text() -> None:
    packed = gzip.compress(b'{"a":1,"b":[2]}')
    record = flow(
        response_headers=[("Content-Type", "application/json"), ("Content-Encoding", "gzip")],
        response_body=Body(packed, len(packed)),
        request_headers=[("Content-Type", "application/octet-stream")],
        request_body=Body(b"\x00\xff\xfe", 3),
    )
    response = body_view(record, "response", record.response_headers, record.response_body)
    assert json.loads(response["text"]) == {"a": 1, "b": [2]} and "\n  " in response["text"]
    assert (response["size"], response["stored"], response["binary"]) == (len(packed), len(packed), False)
    request = body_view(record, "request", record.request_headers, record.request_body)
    assert request["text"] is None and request["binary"] is True


def test_truncated_encoded_body_says_why_it_is_not_decoded() -> None:
    packed = gzip.compress(b"x" * 1000)
    record = flow(
        response_headers=[("Content-Type", "text/plain"), ("Content-Encoding", "gzip")],
        response_body=Body(packed[:10], 5000, truncated=True, head_len=5),
    )
    view = body_view(record, "response", record.response_headers, record.response_body)
    assert view["truncated"] is True and view["decode_error"].startswith("truncated")


def test_summary_and_detail_shapes() -> None:
    record = flow(status=200, reason="OK", response_started=100.01, response_ended=100.02, id=7)
    shown = summary(record)
    assert shown["id"] == 7 and shown["url"] == "http://h/x" and shown["duration_ms"] == 20.0
    whole = detail(record, None, [flow(proto="websocket", method="text", id=8)])
    assert whole["connection"] is None and [m["id"] for m in whole["messages"]] == [8]
    assert whole["timings"]["response_ended"] == 100.02
