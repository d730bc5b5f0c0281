"""What `PgAnalyzer` reports about a PostgreSQL connection: frozen facts, nothing to act on.

Events carry what the wire said, bounded (SQL, parameters and notices are cut by the
analyzer's limits) and without secrets: no password, SASL or GSS payload ever reaches
an event. SQL text is carried, never parsed.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class PgError:
    """The fields of an ErrorResponse or NoticeResponse (protocol section 55.8)."""

    severity: str  # 'V' (never localized) when sent, else 'S'
    sqlstate: str  # 'C'
    message: str  # 'M'
    detail: str | None = None  # 'D'
    hint: str | None = None  # 'H'
    position: str | None = None  # 'P'
    extra: tuple[tuple[str, str], ...] = ()  # every other field as (code letter, value), in wire order


@dataclass(frozen=True, slots=True)
class CopySummary:
    direction: str  # "in" | "out" | "both"
    format: str  # "text" | "binary"
    messages: int  # CopyData messages, both directions
    bytes: int  # CopyData payload bytes, both directions
    rows: int | None  # from CommandComplete "COPY n"


@dataclass(frozen=True, slots=True)
class StatementCompleted:
    """One statement's result; emitted at the ReadyForQuery that follows it (or at close)."""

    sql: str  # for a simple Query the whole query string; cut to max_sql characters
    part: int  # index of this result within a multi-statement simple Query
    kind: str  # "simple" | "extended" | "prepare" | "function"
    statement: str  # prepared statement name ("" unnamed)
    portal: str  # portal name
    params: tuple[str | None, ...]  # Bind parameters (text, "\\x" + hex for binary, None for NULL)
    param_types: tuple[int, ...]  # type OIDs from Parse, or from ParameterDescription when it came
    columns: tuple[tuple[str, int], ...]  # RowDescription (name, type OID)
    command_tag: str | None  # CommandComplete tag, e.g. "SELECT 3", "INSERT 0 1"
    rows: int | None  # the tag's count where it has one, else the DataRow count if any
    data_rows: int  # DataRow messages seen
    error: PgError | None
    notices: tuple[PgError, ...]  # NoticeResponses received while it ran (bounded)
    tx_status: str | None  # "idle" | "transaction" | "failed" after it; None if the connection ended first
    # When its Query, Execute or FunctionCall arrived (a Query's later parts: when the part
    # before ended; a prepare: its Parse), and when its result completed (a prepare: its
    # ReadyForQuery; None if the connection ended first).
    started: float
    ended: float | None
    skipped: bool = False  # extended: an earlier error in its Sync group made the server skip it
    suspended: bool = False  # Execute hit its row limit (PortalSuspended)
    empty: bool = False  # EmptyQueryResponse
    copy: CopySummary | None = None
    truncated: bool = False  # sql was cut


@dataclass(frozen=True, slots=True)
class SessionStarted:
    """A StartupMessage."""

    protocol: str  # "3.0" | "3.2" | other "major.minor"
    user: str
    database: str  # the user name when the client names no database (the server's default)
    application_name: str | None
    options: tuple[tuple[str, str], ...]  # every other parameter, `_pq_.` ones included, as sent
    time: float


@dataclass(frozen=True, slots=True)
class AuthenticationCompleted:
    """The end of startup: the first ReadyForQuery, an ErrorResponse, or the connection closing."""

    method: str  # "trust" | "cleartext" | "md5" | "scram-sha-256" | "scram-sha-256-plus" | "gss" | ...
    ok: bool
    error: PgError | None
    backend_pid: int | None
    backend_key: bytes | None  # 4 bytes in 3.0; 4..256 in 3.2
    server_params: tuple[tuple[str, str], ...]  # ParameterStatus during startup
    negotiated: str | None  # NegotiateProtocolVersion's answer, if the server sent one
    started: float
    ended: float


@dataclass(frozen=True, slots=True)
class EncryptionRequested:
    """SSLRequest, GSSENCRequest, or a TLS ClientHello sent first (direct TLS).

    After an 'S' or 'G' answer, or direct TLS, the rest of the connection is
    encrypted: the analyzer sets `encrypted` and reports nothing more. That is not
    a fault, so `stopped` stays None.
    """

    kind: str  # "ssl" | "gss" | "direct-tls"
    answer: str | None  # the server's one-byte answer; None for direct TLS or no answer before close
    time: float


@dataclass(frozen=True, slots=True)
class CancelRequested:
    """A CancelRequest (sent on a connection of its own)."""

    backend_pid: int
    backend_key: bytes  # 4..256 bytes
    time: float


@dataclass(frozen=True, slots=True)
class NotificationReceived:
    """A NotificationResponse (LISTEN/NOTIFY)."""

    backend_pid: int
    channel: str
    payload: str  # cut to max_param characters
    time: float


@dataclass(frozen=True, slots=True)
class ParameterChanged:
    """A ParameterStatus after startup."""

    name: str
    value: str
    time: float


@dataclass(frozen=True, slots=True)
class NoticeReceived:
    """A NoticeResponse while no statement is running."""

    notice: PgError
    time: float


@dataclass(frozen=True, slots=True)
class ErrorReceived:
    """An ErrorResponse that belongs to no statement (a FATAL on an idle connection, say)."""

    error: PgError
    time: float


@dataclass(frozen=True, slots=True)
class SessionEnded:
    """A Terminate."""

    time: float


PgEvent = (
    StatementCompleted
    | SessionStarted
    | AuthenticationCompleted
    | EncryptionRequested
    | CancelRequested
    | NotificationReceived
    | ParameterChanged
    | NoticeReceived
    | ErrorReceived
    | SessionEnded
)
