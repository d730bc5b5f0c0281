"""`lanner flows` against a store that a running lanner writes: list, show, stats, export, import."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import requests

from tests.conftest import require_binary
from tests.integration.servers import Origin, refused_port
from tests.integration.store_reads import wait_flows

HAR_SCHEMA = json.loads((Path(__file__).parents[1] / "unit" / "record" / "har-1.2.schema.json").read_text())


def flows_cli(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lanner", "flows", *args],
        capture_output=True,
        text=True,
        check=check,
        timeout=60,
    )


@pytest.fixture(scope="module")
def recorded(module_lanner: Any, origin: Origin) -> Any:
    """A lanner with a few flows: curl GETs, a gzip JSON reply, a POST, a 503, a refused dial."""
    require_binary("curl")
    lanner = module_lanner({"listeners": [{"name": "forward"}]})
    base = f"http://127.0.0.1:{origin.port}"
    for args in (
        [f"{base}/small?tag=one"],
        [f"{base}/gzip?tag=zipped", "-H", "Accept-Encoding: gzip", "-H", "Authorization: Bearer hunter2"],
        [f"{base}/echo?tag=posted", "-d", "posted-body-text", "-H", "Content-Type: text/plain"],
        [f"{base}/status?code=503&tag=down"],
        [f"http://127.0.0.1:{refused_port()}/?tag=refused"],
    ):
        subprocess.run(["curl", "-s", "-x", lanner.http_proxy, "-o", "/dev/null", *args], check=True)
    wait_flows(lanner.store_path, 5)
    return lanner


def test_list_newest_first_with_filters(recorded: Any) -> None:
    db = str(recorded.store_path)
    out = flows_cli("--db", db, "list").stdout.splitlines()
    assert out[0].split()[:3] == ["ID", "TIME", "METHOD"]
    assert [line.split()[-1] if "!" not in line else "refused" for line in out[1:]][:1] == ["refused"]
    assert "tag=one" in out[-1] and "tag=refused" in out[1]
    assert "lanner answered 502" in out[1] and " ERR " in out[1]
    only_5xx = flows_cli("--db", db, "list", "status:5xx").stdout
    assert "tag=down" in only_5xx and "tag=one" not in only_5xx
    either = flows_cli(
        "--db", db, "list", "--", "(", "status:5xx", "or", "error:*", ")", "-method:POST"
    ).stdout
    assert "tag=down" in either and "tag=refused" in either and "tag=one" not in either
    assert "tag=zipped" in flows_cli("--db", db, "list", "zebracorn").stdout  # full text of a gzip body
    assert "tag=posted" in flows_cli("--db", db, "list", 'body:"posted-body-text"').stdout


def test_list_json_and_paging(recorded: Any) -> None:
    db = str(recorded.store_path)
    lines = [json.loads(line) for line in flows_cli("--db", db, "list", "--json").stdout.splitlines()]
    assert len(lines) >= 5 and [line["id"] for line in lines] == sorted(
        (line["id"] for line in lines), reverse=True
    )
    down = next(line for line in lines if "tag=down" in line["url"])
    assert down["status"] == 503 and down["method"] == "GET" and down["duration_ms"] > 0
    page = flows_cli("--db", db, "list", "--limit", "2")
    assert len(page.stdout.splitlines()) == 3 and "(more: --before" in page.stderr
    cursor = page.stderr.split("--before ")[1].split(")")[0]
    rest = flows_cli("--db", db, "list", "--json", "--before", cursor).stdout.splitlines()
    assert [json.loads(line)["id"] for line in rest] == [
        line["id"] for line in lines if line["id"] < int(cursor)
    ]


def test_show_prints_headers_bodies_and_timings(recorded: Any) -> None:
    db = str(recorded.store_path)
    (zipped,) = [
        json.loads(line)
        for line in flows_cli("--db", db, "list", "--json", "url:*tag=zipped*").stdout.splitlines()
    ]
    shown = flows_cli("--db", db, "show", str(zipped["id"])).stdout
    assert f"flow {zipped['id']}  GET http://127.0.0.1:" in shown
    assert "status    200 OK" in shown and "timings   request" in shown
    assert "Authorization: [redacted]" in shown and "hunter2" not in shown
    assert '"word": "zebracorn"' in shown  # decoded from gzip and pretty-printed
    raw = subprocess.run(
        [sys.executable, "-m", "lanner", "flows", "--db", db, "show", str(zipped["id"]), "--raw", "response"],
        capture_output=True,
        check=True,
    ).stdout
    assert json.loads(gzip.decompress(raw)) == {"packed": True, "word": "zebracorn"}  # as it crossed the wire
    entry = json.loads(flows_cli("--db", db, "show", str(zipped["id"]), "--json").stdout)
    assert entry["response"]["status"] == 200
    missing = flows_cli("--db", db, "show", "999999", check=False)
    assert missing.returncode == 1 and "no flow 999999" in missing.stderr


def test_stats(recorded: Any) -> None:
    out = flows_cli("--db", str(recorded.store_path), "stats").stdout
    assert "flows" in out and "5xx" in out and "none" in out
    assert "127.0.0.1" in out and "P95 MS" in out


def test_export_validates_as_har_and_imports_back(recorded: Any, tmp_path: Path) -> None:
    db = str(recorded.store_path)
    har = tmp_path / "out.har"
    done = flows_cli("--db", db, "export", "--har", str(har), "url:*tag=*")
    document = json.loads(har.read_text())
    jsonschema.validate(document, HAR_SCHEMA)
    exported = document["log"]["entries"]
    assert len(exported) >= 5 and f"exported {len(exported)} flows" in done.stderr
    copy = tmp_path / "copy.db"
    assert f"imported {len(exported)} flows" in flows_cli("--db", str(copy), "import", str(har)).stderr
    original = [
        json.loads(line) for line in flows_cli("--db", db, "list", "--json", "url:*tag=*").stdout.splitlines()
    ]
    imported = [
        json.loads(line) for line in flows_cli("--db", str(copy), "list", "--json").stdout.splitlines()
    ]
    fields = ("url", "method", "status", "duration_ms", "request_size", "response_size", "error", "conn")
    assert [[row[k] for k in fields] for row in imported] == [[row[k] for k in fields] for row in original]
    # the imported copy is searchable like the original
    assert "tag=zipped" in flows_cli("--db", str(copy), "list", "zebracorn").stdout


def test_follow_prints_new_flows(recorded: Any, origin: Origin) -> None:
    follower = subprocess.Popen(
        [sys.executable, "-m", "lanner", "flows", "--db", str(recorded.store_path), "list", "--follow", "--json",
         "url:*tag=followed*"],
        stdout=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        time.sleep(1.0)  # the follower has printed what exists (nothing) and is polling
        url = f"http://127.0.0.1:{origin.port}/small?tag=followed"
        assert requests.get(url, proxies={"http": recorded.http_proxy}, timeout=10).ok
        assert follower.stdout is not None
        line = json.loads(follower.stdout.readline())
        assert "tag=followed" in line["url"] and line["status"] == 200
    finally:
        follower.terminate()
        follower.wait(10)


def test_bad_filter_and_missing_store(recorded: Any, tmp_path: Path) -> None:
    bad = flows_cli("--db", str(recorded.store_path), "list", "status:>=abc", check=False)
    assert bad.returncode == 2
    assert "bad filter: status: bad value 'abc'" in bad.stderr and "\n         ^" in bad.stderr
    unknown = flows_cli("--db", str(recorded.store_path), "list", "colour:red", check=False)
    assert unknown.returncode == 2 and "unknown field 'colour'" in unknown.stderr
    missing = flows_cli("--db", str(tmp_path / "none.db"), "list", check=False)
    assert missing.returncode == 1 and "no flow store at" in missing.stderr
    junk = tmp_path / "junk.har"
    junk.write_text('{"log": {"entries": [{"request": {}}]}}')
    broken = flows_cli("--db", str(tmp_path / "new.db"), "import", str(junk), check=False)
    assert broken.returncode == 1 and "log.entries[0]" in broken.stderr


def test_store_found_from_the_config(recorded: Any) -> None:
    by_config = flows_cli("-c", str(recorded.path), "list", "--json", "url:*tag=one*").stdout
    assert "tag=one" in by_config
