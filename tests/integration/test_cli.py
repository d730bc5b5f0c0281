"""The command line as a user types it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from lanner import __version__


def lanner(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lanner", *args], capture_output=True, text=True, timeout=60, env=env
    )


def test_version() -> None:
    result = lanner("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"lanner {__version__}"


def test_help_everywhere() -> None:
    for args in ([], ["run"], ["config"], ["config", "check"], ["config", "schema"]):
        result = lanner(*args, "--help")
        assert result.returncode == 0, args
        assert "usage: lanner" in result.stdout


def test_config_check_ok_and_errors(tmp_path: Path) -> None:
    good = tmp_path / "good.yaml"
    good.write_text("listeners:\n  - name: a\n    bind: 127.0.0.1:9\n")
    result = lanner("config", "check", str(good))
    assert result.returncode == 0 and "ok" in result.stdout
    bad = tmp_path / "bad.yaml"
    bad.write_text("listeners:\n  - name: a\n    bind: 127.0.0.1:9\n    type: tcp\n  - name: a\n")
    result = lanner("config", "check", str(bad))
    assert result.returncode == 1
    assert f"{bad}:2: listeners.0" in result.stderr and "needs a target" in result.stderr
    missing = lanner("config", "check", str(tmp_path / "nope.yaml"))
    assert missing.returncode == 1 and "No such file" in missing.stderr


def test_config_schema_is_json_schema() -> None:
    result = lanner("config", "schema")
    assert result.returncode == 0
    schema = json.loads(result.stdout)
    assert schema["type"] == "object"
    assert {"listeners", "users", "rules", "limits", "log", "workers"} <= set(schema["properties"])


def test_run_refuses_a_bad_config(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("workers: 0\n")
    result = lanner("run", "-c", str(bad))
    assert result.returncode == 1 and ":1: workers" in result.stderr


def test_examples_pass_config_check() -> None:
    examples = sorted(Path(__file__).parents[2].joinpath("examples").glob("*.yaml"))
    assert examples
    for example in examples:
        result = lanner("config", "check", str(example), env={"ALICE_PASSWORD": "x", "PATH": "/usr/bin:/bin"})
        assert result.returncode == 0, (example, result.stderr)
