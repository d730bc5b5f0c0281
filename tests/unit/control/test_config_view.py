"""What the admin API shows of a config: secrets masked wherever they sit."""

from __future__ import annotations

import pytest

from lanner.config.admin import AdminConfig, is_loopback
from lanner.control.api_runtime import MASK, mask


def test_secret_keys_and_url_passwords_are_masked() -> None:
    config = {
        "users": [{"name": "alice", "password": "wonderland", "socks4": False}],
        "admin": {"token": "t" * 20, "bind": "127.0.0.1:8081"},
        "vendors": {"providers": [{"name": "v", "password": "pw-{session}", "url": "http://u:hunter2@proxy:8000"}]},
        "empty": {"password": ""},
        "note": "see https://example.com/docs",
        "vendors2": {"session_secret": "hmac-key"},
        "pools": [{"request_headers": {"set": {"Authorization": "Bearer backend", "X-Canary": "1"}}}],
        "dsn": "unix:///run/redis.sock?db=0&password=hunter3",
    }
    shown = mask(config)
    assert shown["users"][0] == {"name": "alice", "password": MASK, "socks4": False}
    assert shown["admin"] == {"token": MASK, "bind": "127.0.0.1:8081"}
    assert shown["vendors"]["providers"][0]["password"] == MASK
    assert shown["vendors"]["providers"][0]["url"] == f"http://u:{MASK}@proxy:8000"
    assert shown["empty"] == {"password": ""}  # nothing to hide: shown as unset
    assert shown["note"] == "see https://example.com/docs"
    assert shown["vendors2"] == {"session_secret": MASK}
    assert shown["pools"][0]["request_headers"]["set"] == {"Authorization": MASK, "X-Canary": "1"}
    assert shown["dsn"] == f"unix:///run/redis.sock?db=0&password={MASK}"
    assert "hunter2" not in repr(shown) and "wonderland" not in repr(shown)


@pytest.mark.parametrize(
    ("bind", "loopback"),
    [
        ("127.0.0.1:8081", True),
        ("127.0.0.5:1", True),
        ("[::1]:8081", True),
        ("localhost:8081", True),
        ("0.0.0.0:8081", False),
        (":8081", False),
        ("10.1.2.3:8081", False),
        ("admin.example.com:8081", False),
    ],
)
def test_loopback_binds(bind: str, loopback: bool) -> None:
    assert is_loopback(bind) is loopback


def test_off_loopback_needs_a_token_and_tokens_are_not_short() -> None:
    with pytest.raises(ValueError, match="not a loopback address: set admin.token"):
        AdminConfig(bind="0.0.0.0:8081")
    assert AdminConfig(bind="0.0.0.0:8081", token="x" * 16).token == "x" * 16
    with pytest.raises(ValueError):
        AdminConfig(token="short")
    assert AdminConfig(bind="0.0.0.0:8081", enabled=False).enabled is False
