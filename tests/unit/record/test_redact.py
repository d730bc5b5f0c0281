"""Redaction rules applied to flows before they are stored."""

from __future__ import annotations

import gzip
import json

from lanner.config.model import RedactConfig
from lanner.record.model import Body, FlowRecord
from lanner.record.redact import MARK, Redactor


def flow(**fields: object) -> FlowRecord:
    record = FlowRecord(conn_uid="t.1", proto="http", started=1.0)
    for key, value in fields.items():
        setattr(record, key, value)
    return record


def test_default_headers_are_redacted_case_insensitively() -> None:
    record = flow(
        request_headers=[("AUTHORIZATION", "Bearer x"), ("Cookie", "a=b"), ("Accept", "*/*")],
        response_headers=[("set-cookie", "sid=1"), ("Content-Type", "text/plain")],
        request_trailers=[("Proxy-Authorization", "Basic y")],
    )
    Redactor(RedactConfig()).apply(record)
    assert record.request_headers == [("AUTHORIZATION", MARK), ("Cookie", MARK), ("Accept", "*/*")]
    assert record.response_headers == [("set-cookie", MARK), ("Content-Type", "text/plain")]
    assert record.request_trailers == [("Proxy-Authorization", MARK)]


def test_query_parameters_are_redacted_and_the_rest_kept() -> None:
    record = flow(path="/login?user=ada&token=s3cr3t&x=1")
    Redactor(RedactConfig(query_params=["token"])).apply(record)
    assert record.path == "/login?user=ada&token=[redacted]&x=1"


def test_path_without_matching_parameters_is_unchanged() -> None:
    record = flow(path="/a?b=c%20d")
    Redactor(RedactConfig(query_params=["token"])).apply(record)
    assert record.path == "/a?b=c%20d"


def test_json_fields_at_any_depth() -> None:
    body = json.dumps({"user": "ada", "password": "p", "list": [{"password": "q", "ok": 1}]}).encode()
    record = flow(
        request_headers=[("Content-Type", "application/json")],
        request_body=Body(body, len(body), False, len(body)),
    )
    Redactor(RedactConfig(json_fields=["password"])).apply(record)
    assert json.loads(record.request_body.data) == {
        "user": "ada",
        "password": MARK,
        "list": [{"password": MARK, "ok": 1}],
    }
    assert record.request_body.size == len(body)  # the original size is kept


def test_patterns_apply_to_url_headers_and_text_bodies() -> None:
    body = b"card 4111-1111 in text"
    record = flow(
        path="/pay?card=4111-1111",
        request_headers=[("X-Card", "4111-1111")],
        response_headers=[("Content-Type", "text/plain")],
        response_body=Body(body, len(body), False, len(body)),
    )
    Redactor(RedactConfig(patterns=[r"\d{4}-\d{4}"])).apply(record)
    assert "4111" not in record.path
    assert record.request_headers == [("X-Card", MARK)]
    assert record.response_body.data == b"card [redacted] in text"


def test_encoded_body_is_decoded_to_be_redacted_and_says_so() -> None:
    body = gzip.compress(b'{"secret": "s", "keep": "k"}')
    record = flow(
        response_headers=[("Content-Type", "application/json"), ("Content-Encoding", "gzip")],
        response_body=Body(body, len(body), False, len(body)),
    )
    Redactor(RedactConfig(json_fields=["secret"])).apply(record)
    assert json.loads(record.response_body.data) == {"secret": MARK, "keep": "k"}
    assert record.notes["response_body"] == "decoded for redaction"


def test_undecodable_encoded_body_is_replaced() -> None:
    record = flow(
        response_headers=[("Content-Encoding", "gzip")],
        response_body=Body(b"not gzip at all", 15, False, 15),
    )
    Redactor(RedactConfig(patterns=["x"])).apply(record)
    assert record.response_body.data == MARK.encode()
    assert record.notes["response_body"].startswith("replaced")


def test_truncated_json_is_replaced_when_fields_are_redacted() -> None:
    record = flow(
        request_headers=[("Content-Type", "application/json")],
        request_body=Body(b'{"password": "abc', 5000, True, 10),
    )
    Redactor(RedactConfig(json_fields=["password"])).apply(record)
    assert record.request_body.data == MARK.encode()


def test_bodies_untouched_without_body_rules() -> None:
    body = Body(b"password=1", 10, False, 10)
    record = flow(request_body=body)
    Redactor(RedactConfig()).apply(record)
    assert record.request_body is body


def test_patterns_apply_to_sql_its_normalized_form_and_parameters() -> None:
    record = flow(
        proto="postgres",
        command="select * from users where email = 'ada@example.com'",
        statement="select * from users where email = $1",
        notes={"params": '["bob@example.com"]'},
        request_body=Body(b"select * from users where email = 'ada@example.com'"),
    )
    Redactor(RedactConfig(patterns=[r"[\w.]+@[\w.]+"])).apply(record)
    assert "ada@example.com" not in record.command and MARK in record.command
    assert "bob@example.com" not in record.notes["params"]
    assert b"ada@example.com" not in record.request_body.data


def test_pattern_redaction_keeps_parameter_lists_valid_json() -> None:
    record = flow(
        proto="postgres",
        command="select $1",
        notes={"params": json.dumps(["token=abc123", None, "plain"]), "notices": json.dumps(["WARNING x"])},
        error="ERROR 23505: Key (token)=(token=abc123) already exists",
    )
    Redactor(RedactConfig(patterns=[r"token=\S+"])).apply(record)
    assert json.loads(record.notes["params"]) == [MARK, None, "plain"]
    assert record.error is not None and "abc123" not in record.error
