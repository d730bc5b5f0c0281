"""HAR export validated against the HAR 1.2 structure, and re-imported into the same flows."""

from __future__ import annotations

import gzip
import io
import json
from pathlib import Path

import jsonschema
import pytest

from lanner.record.har import HarError, read_har, write_har
from lanner.record.model import Body, FlowRecord

SCHEMA = json.loads((Path(__file__).parent / "har-1.2.schema.json").read_text())
T0 = 1_700_000_000.25


def flows() -> list[FlowRecord]:
    page = "<p>héllo</p>".encode()
    zipped = gzip.compress(b'{"answer": 42}')
    binary = bytes(range(256))
    return [
        FlowRecord(
            conn_uid="a.1", proto="http", started=T0, method="GET", host="example.com", port=80,
            path="/page?q=1&lang=fr", request_headers=[("Host", "example.com"), ("Cookie", "a=1; b=2")],
            request_ended=T0 + 0.001, status=200, reason="OK",
            response_headers=[("Content-Type", "text/html; charset=utf-8"), ("Set-Cookie", "s=3; Path=/")],
            response_body=Body(page, len(page)), response_started=T0 + 0.01, response_ended=T0 + 0.02,
            listener="forward", client="127.0.0.1:1", user="alice", id=1,
        ),
        FlowRecord(
            conn_uid="a.1", proto="http", started=T0 + 1, method="POST", host="api.example.com", port=8080,
            path="/v1/things", http_version="1.1",
            request_headers=[("Content-Type", "application/octet-stream"), ("Transfer-Encoding", "chunked")],
            request_body=Body(binary, len(binary)), request_trailers=[("X-Checksum", "7")],
            request_ended=T0 + 1.002, status=201, reason="Created", interim=[100],
            response_headers=[("Content-Type", "application/json"), ("Content-Encoding", "gzip")],
            response_body=Body(zipped, len(zipped)), response_started=T0 + 1.01, response_ended=T0 + 1.03,
            listener="forward", client="127.0.0.1:2", notes={"request_decode_error": "none"}, id=2,
        ),
        FlowRecord(
            conn_uid="b.7", proto="http", started=T0 + 2, method="GET", host="down.example.com", port=80,
            path="/", request_ended=T0 + 2.001, error="lanner answered 502: refused", listener="forward",
            client="127.0.0.1:3", id=3,
        ),
        FlowRecord(
            conn_uid="b.8", proto="http", started=T0 + 3, method="GET", host="big.example.com", port=80,
            path="/huge", request_ended=T0 + 3.001, status=200, reason="OK",
            response_headers=[("Content-Type", "text/plain")],
            response_body=Body(b"firstlast", 5_000_000_000, True, 5), response_started=T0 + 3.1,
            response_ended=T0 + 9.5, listener="forward", client="127.0.0.1:4", id=4,
        ),
    ]  # fmt: skip


def export(records: list[FlowRecord]) -> dict[str, object]:
    out = io.StringIO()
    assert write_har(out, records) == len(records)
    document: dict[str, object] = json.loads(out.getvalue())
    return document


def test_export_is_valid_har_1_2() -> None:
    document = export(flows())
    jsonschema.validate(document, SCHEMA)
    entries = document["log"]["entries"]  # type: ignore[index]
    page, post, failed, big = entries
    assert page["request"]["url"] == "http://example.com/page?q=1&lang=fr"
    assert page["request"]["queryString"] == [{"name": "q", "value": "1"}, {"name": "lang", "value": "fr"}]
    assert page["request"]["cookies"] == [{"name": "a", "value": "1"}, {"name": "b", "value": "2"}]
    assert page["response"]["cookies"] == [{"name": "s", "value": "3"}]
    assert page["response"]["content"]["text"] == "<p>héllo</p>"
    assert page["startedDateTime"] == "2023-11-14T22:13:20.250+00:00" and page["time"] == 20.0
    assert post["request"]["postData"]["encoding"] == "base64"
    assert json.loads(post["response"]["content"]["text"]) == {"answer": 42}  # decoded, as HAR readers expect
    assert failed["response"]["status"] == 0 and failed["comment"] == "lanner answered 502: refused"
    assert big["response"]["content"]["size"] == 5_000_000_000


def test_export_then_import_gives_the_same_flows() -> None:
    originals = flows()
    out = io.StringIO()
    write_har(out, originals)
    back = list(read_har(io.StringIO(out.getvalue())))
    assert len(back) == len(originals)
    for original, imported in zip(originals, back, strict=True):
        for name in FlowRecord.__slots__:  # type: ignore[attr-defined]
            if name == "id":
                continue  # the store gives imported flows new ids
            assert getattr(imported, name) == getattr(original, name), (original.id, name)


def test_import_of_another_tools_har() -> None:
    """A minimal entry as browsers write it: no _lanner fields, decoded content."""
    document = {
        "log": {
            "version": "1.2",
            "creator": {"name": "WebInspector", "version": "537.36"},
            "entries": [
                {
                    "startedDateTime": "2026-11-24T10:00:00.000Z",
                    "time": 50,
                    "request": {
                        "method": "GET", "url": "https://example.org:8443/a?b=c", "httpVersion": "http/2.0",
                        "headers": [{"name": ":authority", "value": "example.org"}], "cookies": [],
                        "queryString": [], "headersSize": -1, "bodySize": 0,
                    },
                    "response": {
                        "status": 200, "statusText": "", "httpVersion": "http/2.0", "cookies": [],
                        "headers": [{"name": "content-encoding", "value": "br"}],
                        "content": {"size": 5, "mimeType": "text/plain", "text": "hello"},
                        "redirectURL": "", "headersSize": -1, "bodySize": -1,
                    },
                    "cache": {},
                    "timings": {"send": 1, "wait": 40, "receive": 9},
                }
            ],
        }
    }  # fmt: skip
    (record,) = read_har(io.StringIO(json.dumps(document)))
    assert (record.scheme, record.host, record.port, record.path) == ("https", "example.org", 8443, "/a?b=c")
    assert record.http_version == "2.0" and record.status == 200
    assert record.response_body.data == b"hello"
    assert record.notes["response_body"] == "decoded by the HAR producer"
    assert record.duration == pytest.approx(0.05)
    assert record.response_started == pytest.approx(record.started + 0.041)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("not json", "not JSON"),
        ("[]", "no log.entries"),
        ('{"log": {"entries": {}}}', "no log.entries"),
        ('{"log": {"entries": [{"request": {}}]}}', "log.entries[0]"),
        ('{"log": {"entries": [{"startedDateTime": "yesterday", "request": {"url": "http://x/", '
         '"method": "GET"}, "response": {"status": 200}}]}}', "log.entries[0]: ValueError"),
    ],
)  # fmt: skip
def test_malformed_har(text: str, message: str) -> None:
    with pytest.raises(HarError, match=message.replace("[", r"\[").replace("]", r"\]")):
        list(read_har(io.StringIO(text)))


def websocket_flows() -> tuple[FlowRecord, list[FlowRecord]]:
    upgrade = FlowRecord(
        conn_uid="w.1", proto="https", started=T0, method="GET", scheme="https", host="live.example.com",
        port=443, path="/socket", request_headers=[("Upgrade", "websocket")], request_ended=T0 + 0.001,
        status=101, reason="Switching Protocols", response_started=T0 + 0.002, response_ended=T0 + 0.002,
        listener="forward", client="127.0.0.1:5", notes={"upgraded": "101"}, id=10,
    )  # fmt: skip

    def message(index: int, sent: bool, opcode: str, data: bytes, **notes: str) -> FlowRecord:
        record = FlowRecord(
            conn_uid="w.1", proto="websocket", started=T0 + index, method=opcode, scheme="wss",
            host="live.example.com", port=443, path="/socket", request_ended=T0 + index,
            reason="send" if sent else "receive", listener="forward", client="127.0.0.1:5",
            notes={"direction": "send" if sent else "receive", **notes}, id=10 + index,
        )  # fmt: skip
        if sent:
            record.request_body = Body(data, len(data))
        else:
            record.response_body = Body(data, len(data))
        return record

    return upgrade, [
        message(1, True, "TEXT", "héllo".encode()),
        message(2, False, "BINARY", bytes(range(256)), compressed="permessage-deflate"),
        message(3, True, "CLOSE", b"\x03\xe8bye", close="1000 bye"),
    ]


def test_websocket_messages_are_written_under_their_upgrade_and_read_back() -> None:
    upgrade, messages = websocket_flows()
    out = io.StringIO()
    # Message flows given as entries are skipped: they belong inside their upgrade's entry.
    assert write_har(out, [upgrade, *messages], lambda _upgrade: messages) == 1
    document = json.loads(out.getvalue())
    jsonschema.validate(document, SCHEMA)
    (item,) = document["log"]["entries"]
    written = item["_webSocketMessages"]
    assert [(m["type"], m["opcode"]) for m in written] == [("send", 1), ("receive", 2), ("send", 8)]
    assert written[0]["data"] == "héllo" and written[0]["time"] == T0 + 1
    back = list(read_har(io.StringIO(out.getvalue())))
    assert len(back) == 4 and back[0].status == 101
    for original, restored in zip(messages, back[1:], strict=True):
        assert (restored.proto, restored.method, restored.reason) == (
            "websocket",
            original.method,
            original.reason,
        )
        assert restored.request_body.data == original.request_body.data
        assert restored.response_body.data == original.response_body.data
        assert restored.notes == original.notes and restored.conn_uid == "w.1" and restored.scheme == "wss"
