"""A PostgreSQL server that accepts SSLRequest: the session is recorded as encrypted, never parsed.

The machine's PostgreSQL runs with ssl off, so this starts a private server with TLS on
(initdb as the postgres user, a throwaway certificate from trustme) on a free port.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trustme

from tests.conftest import require, require_binary
from tests.integration.servers import free_port
from tests.integration.store_reads import wait_connection_records, wait_flows


def _pg_bin(name: str) -> str | None:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return found[-1] if found else None


@pytest.fixture(scope="module")
def tls_postgres() -> Iterator[int]:
    initdb, postgres = _pg_bin("initdb"), _pg_bin("postgres")
    require(initdb is not None and postgres is not None, "PostgreSQL's server binaries are not installed")
    require(
        os.geteuid() == 0 and shutil.which("runuser") is not None, "needs root to run postgres as its user"
    )
    assert initdb is not None and postgres is not None
    # Not under pytest's temporary directory: the postgres user cannot enter root's 0700 directories.
    root = Path(tempfile.mkdtemp(prefix="lanner-pgtls-"))
    data = root / "data"
    ca = trustme.CA()
    cert = ca.issue_cert("localhost", "127.0.0.1")
    cert.private_key_pem.write_to_path(str(root / "server.key"))
    cert.cert_chain_pems[0].write_to_path(str(root / "server.crt"))
    os.chmod(root / "server.key", 0o600)
    shutil.chown(root, "postgres")
    for name in ("server.key", "server.crt"):
        shutil.chown(root / name, "postgres")
    as_postgres = ["runuser", "-u", "postgres", "--"]
    subprocess.run(
        [*as_postgres, initdb, "-D", str(data), "-A", "trust", "-U", "postgres"],
        check=True,
        capture_output=True,
    )
    port = free_port()
    server = subprocess.Popen(
        [*as_postgres, postgres, "-D", str(data), "-p", str(port), "-k", str(root), "-c", "listen_addresses=127.0.0.1",
         "-c", "ssl=on", "-c", f"ssl_cert_file={root / 'server.crt'}", "-c", f"ssl_key_file={root / 'server.key'}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        psql = require_binary("psql")
        deadline = time.monotonic() + 30
        while subprocess.run(
            [psql, f"host=127.0.0.1 port={port} user=postgres dbname=postgres", "-Atc", "select 1"],
            capture_output=True,
        ).returncode:
            assert time.monotonic() < deadline, "the private PostgreSQL did not start"
            time.sleep(0.2)
        yield port
    finally:
        server.terminate()
        server.wait(30)
        shutil.rmtree(root, ignore_errors=True)


def test_an_accepted_ssl_request_is_recorded_as_an_encrypted_session(
    start_lanner: Any, tls_postgres: int
) -> None:
    psql = require_binary("psql")
    lanner = start_lanner({"listeners": [{"name": "pg", "type": "tcp", "target": f"127.0.0.1:{tls_postgres}",
                                          "analyze": "postgres"}]})  # fmt: skip
    host, port = lanner.addr("pg")
    out = subprocess.run(
        [psql, f"host={host} port={port} user=postgres dbname=postgres sslmode=require", "-Atc",
         "select 'secret_' || ssl from pg_stat_ssl where pid = pg_backend_pid()"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert out.stdout.strip() == "secret_true"  # the session really was TLS, end to end through lanner
    (request,) = wait_flows(lanner.store_path, 1, "cmd:SSLREQUEST")
    assert request.reason.startswith("accepted") and request.category == "session"
    conn = wait_connection_records(lanner.store_path, lambda c: c.listener == "pg")
    assert conn.detail is not None and conn.detail.endswith("analysis: encrypted session")
    time.sleep(0.5)  # nothing after the SSLRequest was parsed: no startup, no statement
    assert len(wait_flows(lanner.store_path, 1, "proto:postgres")) == 1
