"""PostgreSQL wire protocol (3.0 and 3.2) analysis, sans-I/O: both directions of a connection in, events out.

A transparent relay tees each direction of a client connection into a `PgAnalyzer`
(client bytes and server bytes in separate calls, each direction in order, a client
message always fed before the server's answer to it) with the time they arrived. It
returns what those bytes completed: one `StatementCompleted` per statement the server
ran (simple Query, extended Parse/Bind/Execute, COPY, FunctionCall), plus session
events (startup, authentication, encryption, cancel, notifications, parameter changes,
notices, terminate).

It only observes: it never produces, alters or answers bytes, never reads a clock or a
socket, and never parses SQL (the text is carried, cut to `max_sql` characters, for
a later stage to split and normalize). It never raises on any input: when a peer
breaks the protocol, `stopped` says which and why and nothing more is reported. An
encrypted session (the server accepted SSLRequest or GSSENCRequest, or the client
began with TLS) is not a fault: `encrypted` is set, `stopped` stays None, and the
rest of the connection is ignored. Memory stays bounded by the constructor's limits
whatever the peers send; secrets (passwords, SASL and GSS exchanges) are never kept.

The modules: `postgres_framing` cuts messages out of each direction, `postgres_startup`
reads the untagged start and authentication, `postgres_requests` and
`postgres_responses` pair queries with results over `postgres_state`, and
`postgres_groups` ends failed and prepare-only Sync groups; `postgres_messages`
decodes bodies and `postgres_events` holds what is reported.

Cost (how measured: after a login, 200,000 round trips of the bytes pgbench -S sends
and PostgreSQL 15 answers, one chunk per direction per round trip, timed with
time.perf_counter around the client_data and server_data calls; CPython 3.11, one
core): a simple Query round trip (Q -> T, D, C, Z) about 7.5 us; -M prepared
(B, D, E, S -> 2, T, D, C, Z) about 13 us; -M extended (P, B, D, E, S -> 1, 2, T, D,
C, Z) about 16 us. Most of it is building the frozen event and decoding Bind.
"""

from __future__ import annotations

from lanner.wire.errors import ProtocolError
from lanner.wire.postgres_events import (
    AuthenticationCompleted,
    CancelRequested,
    CopySummary,
    EncryptionRequested,
    ErrorReceived,
    NoticeReceived,
    NotificationReceived,
    ParameterChanged,
    PgError,
    PgEvent,
    SessionEnded,
    SessionStarted,
    StatementCompleted,
)
from lanner.wire.postgres_framing import Kinds, MessageReader
from lanner.wire.postgres_messages import ParamLimits
from lanner.wire.postgres_requests import Requests
from lanner.wire.postgres_responses import Responses
from lanner.wire.postgres_startup import ANSWER, ENCRYPTED, TAGGED, Startup
from lanner.wire.postgres_state import Conversation

__all__ = [
    "AuthenticationCompleted",
    "CancelRequested",
    "CopySummary",
    "EncryptionRequested",
    "ErrorReceived",
    "NoticeReceived",
    "NotificationReceived",
    "ParameterChanged",
    "PgAnalyzer",
    "PgError",
    "PgEvent",
    "SessionEnded",
    "SessionStarted",
    "StatementCompleted",
]

DEFAULT_MAX_SQL = 64 * 1024
DEFAULT_MAX_PARAM = 256
DEFAULT_MAX_PARAMS = 64
DEFAULT_MAX_MESSAGE = 1024 * 1024
DEFAULT_MAX_PENDING = 100_000
DEFAULT_MAX_STATEMENTS = 10_000
DEFAULT_MAX_NOTICES = 32
MIN_MAX_MESSAGE = 16


class PgAnalyzer:
    """Both directions of one PostgreSQL connection.

    `max_sql` characters of SQL, `max_param` characters of each of the first
    `max_params` Bind parameters (all replaced by "<redacted>" with `redact_params`),
    `max_message` bytes of any message kept whole (longer ones keep that much; rows and
    COPY data are never kept), `max_pending` messages awaiting an answer (with results
    awaiting ReadyForQuery), `max_statements` named statements and as many portals,
    `max_notices` notices per statement. A message over `max_message` keeps its first
    bytes: a Bind its first parameters, an ErrorResponse its first fields.

    Each call returns the events its bytes completed. Statements are reported at the
    ReadyForQuery after them (it gives their `tx_status`), session events at once. A
    call that breaks the protocol still returns what completed before the fault, sets
    `stopped` ("client: ..." or "server: ..."), and every later call returns nothing.
    """

    def __init__(
        self,
        max_sql: int = DEFAULT_MAX_SQL,
        max_param: int = DEFAULT_MAX_PARAM,
        max_params: int = DEFAULT_MAX_PARAMS,
        max_message: int = DEFAULT_MAX_MESSAGE,
        max_pending: int = DEFAULT_MAX_PENDING,
        redact_params: bool = False,
        max_statements: int = DEFAULT_MAX_STATEMENTS,
        max_notices: int = DEFAULT_MAX_NOTICES,
    ) -> None:
        limits = (max_sql, max_param, max_params, max_pending, max_statements, max_notices)
        if min(limits) < 0:
            raise ValueError("PgAnalyzer limits must not be negative")
        if max_message < MIN_MAX_MESSAGE:
            raise ValueError(f"max_message must be at least {MIN_MAX_MESSAGE}: fixed fields must fit")
        self.stopped: str | None = None
        self.encrypted = False
        self._closed = False
        self._events: list[PgEvent] = []
        params = ParamLimits(max_param, max_params, redact_params)
        talk = Conversation(self._events, params, max_sql, max_pending, max_statements, max_notices)
        self._requests = Requests(talk)
        self._responses = Responses(talk)
        client_kinds = self._client_kinds(max_message, min(max_message, 4 * max_sql + 1))
        self._startup = Startup(self._events, client_kinds, max_pending)
        self._startup.on_done = self._authenticated
        self._server_kinds = self._startup_kinds(max_message)
        self._max_message = max_message
        self._client = MessageReader(client_kinds, "client")
        self._server = MessageReader(self._server_kinds, "server")

    def client_data(self, data: bytes, now: float) -> list[PgEvent]:
        if self.stopped is None and not self.encrypted and not self._closed:
            try:
                self._client_bytes(bytes(data) if type(data) is not bytes else data, now)
            except ProtocolError as exc:
                self.stopped = f"client: {exc}"
        return self._taken()

    def server_data(self, data: bytes, now: float) -> list[PgEvent]:
        if self.stopped is None and not self.encrypted and not self._closed and data:
            data = bytes(data) if type(data) is not bytes else data
            if self._startup.phase == ANSWER:
                data = self._answer(data, now)
            try:
                if data and not self.encrypted and self.stopped is None:
                    self._server.feed(data, now)
            except ProtocolError as exc:
                self.stopped = f"server: {exc}"
        return self._taken()

    def close(self, now: float) -> list[PgEvent]:
        """The connection ended: statements still open are reported with `ended` None."""
        if self.stopped is None and not self.encrypted and not self._closed:
            self._startup.close(now)
            self._responses.close()
        self._closed = True
        return self._taken()

    def _client_bytes(self, data: bytes, now: float) -> None:
        startup = self._startup
        if startup.phase == TAGGED:
            self._client.feed(data, now)
            return
        pos = startup.client_packets(data, now)
        if startup.phase == ENCRYPTED:
            self.encrypted = True
        elif startup.phase == TAGGED and pos < len(data):
            self._client.feed(data[pos:], now)

    def _answer(self, data: bytes, now: float) -> bytes:
        """The server's one-byte answer to an encryption request, then the client bytes held for it."""
        try:
            held = self._startup.server_answer(data[0], now)
        except ProtocolError as exc:
            self.stopped = f"server: {exc}"
            return b""
        if self._startup.phase == ENCRYPTED:
            self.encrypted = True
        elif held:
            try:
                self._client_bytes(held, now)
            except ProtocolError as exc:
                self.stopped = f"client: {exc}"
        return data[1:]

    def _taken(self) -> list[PgEvent]:
        events = self._events
        if not events:
            return []
        taken = events.copy()
        events.clear()
        return taken

    def _terminated(self, body: bytes, size: int, now: float) -> None:
        self._events.append(SessionEnded(now))

    def _client_kinds(self, keep: int, keep_query: int) -> Kinds:
        # A Query needs no more than its first max_sql characters (4 bytes each at most).
        requests = self._requests
        return {
            ord("Q"): (requests.on_query, keep_query),
            ord("P"): (requests.on_parse, keep),
            ord("B"): (requests.on_bind, keep),
            ord("D"): (requests.on_describe, keep),
            ord("E"): (requests.on_execute, keep),
            ord("C"): (requests.on_close, keep),
            ord("S"): (requests.on_sync, 0),
            ord("H"): (requests.on_flush, 0),
            ord("F"): (requests.on_function_call, keep),
            ord("d"): (requests.on_copy_data, 0),
            ord("c"): (requests.on_copy_end, 0),
            ord("f"): (requests.on_copy_end, 0),
            ord("X"): (self._terminated, 0),
            # 'p' (password, SASL, GSS responses) is Startup's
        }

    def _startup_kinds(self, keep: int) -> Kinds:
        kinds = self._response_kinds(keep)
        startup = self._startup
        kinds[ord("R")] = (startup.on_auth, keep)
        kinds[ord("K")] = (startup.on_key, keep)
        kinds[ord("v")] = (startup.on_negotiate, keep)
        kinds[ord("S")] = (startup.on_status, keep)
        kinds[ord("E")] = (startup.on_error, keep)
        kinds[ord("N")] = (startup.on_notice, keep)
        kinds[ord("Z")] = (startup.on_ready, keep)
        return kinds

    def _response_kinds(self, keep: int) -> Kinds:
        responses = self._responses
        return {
            ord("D"): (responses.on_data_row, 0),
            ord("C"): (responses.on_command_complete, keep),
            ord("Z"): (responses.on_ready, keep),
            ord("T"): (responses.on_row_description, keep),
            ord("1"): (responses.on_parse_complete, 0),
            ord("2"): (responses.on_bind_complete, 0),
            ord("3"): (responses.on_close_complete, 0),
            ord("t"): (responses.on_parameter_description, keep),
            ord("n"): (responses.on_no_data, 0),
            ord("I"): (responses.on_empty_query, 0),
            ord("s"): (responses.on_portal_suspended, 0),
            ord("E"): (responses.on_error, keep),
            ord("N"): (responses.on_notice, keep),
            ord("S"): (responses.on_parameter_status, keep),
            ord("A"): (responses.on_notification, keep),
            ord("G"): (responses.on_copy_in, keep),
            ord("H"): (responses.on_copy_out, keep),
            ord("W"): (responses.on_copy_both, keep),
            ord("d"): (responses.on_copy_data, 0),
            ord("c"): (responses.on_copy_done, 0),
            ord("V"): (responses.on_function_result, 0),
        }

    def _authenticated(self) -> None:
        """Startup is over: from now on the server's messages answer queries."""
        self._server_kinds.update(self._response_kinds(self._max_message))
