"""The admin listener's settings: where the control plane listens and who may use it."""

from __future__ import annotations

import ipaddress

from pydantic import Field, model_validator

from lanner.config.types import Frozen, HostPort, split_hostport

ADMIN_BIND = "127.0.0.1:8081"


class AdminConfig(Frozen):
    """The admin API, /metrics, the live stream and the web UI, on a listener of their own."""

    enabled: bool = True
    bind: HostPort = Field(ADMIN_BIND, description="a non-loopback address needs a token")
    token: str | None = Field(
        None,
        min_length=16,
        description="bearer token every call but /health and /ready needs (e.g. ${env.LANNER_ADMIN_TOKEN}); "
        "none: the API binds to loopback only",
    )
    audit_log: str | None = Field(
        None, description="JSON lines of state-changing calls; default: <data_dir>/audit.log"
    )
    ui: bool = Field(True, description="serve the web UI at /ui/")
    page_max: int = Field(1000, ge=1, le=100_000, description="flows one API page returns at most")
    stream_buffer: int = Field(
        1000, ge=1, description="messages held for a slow live-stream client before it is disconnected"
    )
    stream_interval: float = Field(0.25, gt=0, le=10, description="seconds between looks for new flows")

    @model_validator(mode="after")
    def _loopback_without_token(self) -> AdminConfig:
        if self.enabled and self.token is None and not is_loopback(self.bind):
            raise ValueError(f"admin.bind {self.bind} is not a loopback address: set admin.token")
        return self


def is_loopback(bind: str) -> bool:
    host, _port = split_hostport(bind)
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name, or "" (every address)
        return False
