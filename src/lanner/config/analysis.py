"""How connections are analyzed as Redis, PostgreSQL or HTTP, as validated data.

A listener's `analyze` says what its connections are: one protocol, `none`,
or `auto` — the destination port's protocol (`ports`), else what the first
client bytes look like (`sniff`). Forward-proxied tunnels (CONNECT, SOCKS)
follow `tunnels`. The per-protocol sections bound what an analyzer keeps and
say what it redacts; `net/analyze_db.py` builds the analyzers from them.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from lanner.config.types import Frozen, Size

Analyze = Literal["auto", "http", "redis", "postgres", "none"]
Protocol = Literal["http", "redis", "postgres", "none"]


# Redis and PostgreSQL by their ports; ports of line protocols that look like inline Redis
# commands to the sniffer (FTP, SMTP, POP3, IMAP, IRC, memcached) are never analyzed.
DEFAULT_PORTS: dict[int, Protocol] = {
    6379: "redis", 5432: "postgres", 21: "none", 25: "none", 110: "none", 143: "none", 587: "none",
    6667: "none", 11211: "none",
}  # fmt: skip


class RedisAnalysis(Frozen):
    max_arg: int = Field(256, ge=8, description="bytes of each argument and key kept")
    max_args: int = Field(64, ge=1, description="arguments kept per command")
    max_summary: int = Field(512, ge=32, description="characters of a reply's summary")
    redact_commands: list[str] = Field(
        default_factory=list,
        description="commands whose values (not keys) and replies are redacted; AUTH, HELLO AUTH, "
        "CONFIG SET, MIGRATE AUTH and ACL SETUSER always are",
    )
    redact_keys: list[str] = Field(
        default_factory=list, description="key globs (`session:*`) whose values and replies are redacted"
    )

    @field_validator("redact_commands")
    @classmethod
    def _upper(cls, names: list[str]) -> list[str]:
        return [name.upper() for name in names]


class PostgresAnalysis(Frozen):
    max_sql: Size = Field(64 * 1024, ge=16, description="characters of a statement's SQL kept")
    max_param: int = Field(256, ge=8, description="characters of each Bind parameter kept")
    max_params: int = Field(64, ge=1, description="Bind parameters kept per statement")
    redact_params: bool = Field(False, description="replace every Bind parameter by <redacted>")


class AnalysisConfig(Frozen):
    ports: dict[int, Protocol] = Field(
        default_factory=lambda: dict(DEFAULT_PORTS),
        description="destination port -> protocol, for `analyze: auto` and for tunnels (replaces the"
        " defaults: 6379 redis, 5432 postgres, 21/25/110/143/587/6667/11211 none)",
    )
    sniff: bool = Field(
        True, description="`analyze: auto`: recognise the protocol from the first client bytes"
    )
    tunnels: Literal["ports", "auto", "none"] = Field(
        "ports",
        description="forward-proxied tunnels: analyzed by destination port, by port then sniffing, or never",
    )
    max_message: Size = Field(
        1024 * 1024, ge=1024, description="largest protocol message an analyzer buffers (larger: skipped)"
    )
    redis: RedisAnalysis = Field(default_factory=lambda: RedisAnalysis())
    postgres: PostgresAnalysis = Field(default_factory=lambda: PostgresAnalysis())
