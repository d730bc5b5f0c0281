"""RespAnalyzer: Redis conversations in, events out, bytes as redis-server 7.0.15 sends them.

The server bytes below were captured from a real redis-server 7.0.15 (a socket script
sending each command and recording what came back); the client bytes are what redis-py
and redis-cli send. The analyzer is fed with a fake clock only.

How the speed was measured (not asserted; 6.5 to 7 µs per pair on the development box):

    import time
    from lanner.wire.resp import RespAnalyzer
    analyzer = RespAnalyzer()
    set_k = b"*3\\r\\n$3\\r\\nSET\\r\\n$1\\r\\nk\\r\\n$1\\r\\nv\\r\\n"
    get_k = b"*2\\r\\n$3\\r\\nGET\\r\\n$1\\r\\nk\\r\\n"
    started = time.perf_counter()
    for _ in range(100_000):
        analyzer.client_data(set_k, 1.0)
        analyzer.server_data(b"+OK\\r\\n", 1.0)
        analyzer.client_data(get_k, 1.0)
        analyzer.server_data(b"$1\\r\\nv\\r\\n", 1.0)
    print((time.perf_counter() - started) / 200_000 * 1e6, "µs per command+reply pair")
"""

from __future__ import annotations

import dataclasses
import string

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.unit.wire.chunking import bytewise, mutate, split_at, whole

from lanner.wire.resp import CommandCompleted, MessagePushed, RedisEvent, RedisReply, RespAnalyzer

HELLO_3_REPLY = (
    b"%7\r\n$6\r\nserver\r\n$5\r\nredis\r\n$7\r\nversion\r\n$6\r\n7.0.15\r\n$5\r\nproto\r\n:3\r\n"
    b"$2\r\nid\r\n:329\r\n$4\r\nmode\r\n$10\r\nstandalone\r\n$4\r\nrole\r\n$6\r\nmaster\r\n"
    b"$7\r\nmodules\r\n*0\r\n"
)
HELLO_2_REPLY = (
    b"*14\r\n$6\r\nserver\r\n$5\r\nredis\r\n$7\r\nversion\r\n$6\r\n7.0.15\r\n$5\r\nproto\r\n:2\r\n"
    b"$2\r\nid\r\n:329\r\n$4\r\nmode\r\n$10\r\nstandalone\r\n$4\r\nrole\r\n$6\r\nmaster\r\n"
    b"$7\r\nmodules\r\n*0\r\n"
)


def cmd(*args: bytes | str) -> bytes:
    """A command as redis-py sends it: a RESP array of bulk strings."""
    parts = [arg.encode() if isinstance(arg, str) else arg for arg in args]
    return b"*%d\r\n" % len(parts) + b"".join(b"$%d\r\n%s\r\n" % (len(part), part) for part in parts)


class Talk:
    """One analyzer driven step by step; every step is one tick later than the one before."""

    def __init__(self, **limits: object) -> None:
        self.analyzer = RespAnalyzer(**limits)  # type: ignore[arg-type]
        self.now = 0.0

    def client(self, data: bytes) -> list[RedisEvent]:
        self.now += 1
        return self.analyzer.client_data(data, self.now)

    def server(self, data: bytes) -> list[RedisEvent]:
        self.now += 1
        return self.analyzer.server_data(data, self.now)

    def close(self) -> list[RedisEvent]:
        self.now += 1
        return self.analyzer.close(self.now)

    def pair(self, request: bytes, reply: bytes) -> CommandCompleted:
        """Send one command, answer it, and return the one event that makes."""
        assert self.client(request) == []
        events = self.server(reply)
        assert len(events) == 1 and isinstance(events[0], CommandCompleted), events
        return events[0]


def brief(event: RedisEvent) -> tuple[object, ...]:
    """What most tests look at: who, what came back, and in which state."""
    if isinstance(event, MessagePushed):
        return ("push", event.kind, event.channel, event.pattern, event.summary)
    reply = event.reply.summary if event.reply is not None else event.unanswered
    return (event.name, event.args, reply, event.db, event.protocol, event.queued)


# -- one command, one reply --


def test_bytes_like_chunks_are_read_too() -> None:
    talk = Talk()
    assert talk.analyzer.client_data(memoryview(cmd("GET", "k")), 1.0) == []
    [event] = talk.analyzer.server_data(bytearray(b"$-1\r\n"), 2.0)
    assert brief(event) == ("GET", (b"k",), "(nil)", 0, 2, False)


def test_set_and_get_every_field() -> None:
    talk = Talk()
    assert talk.client(cmd("SET", "k", "v")) == []
    assert talk.server(b"+OK\r\n") == [
        CommandCompleted(
            name="SET",
            args=(b"k", b"v"),
            arg_sizes=(1, 1),
            arg_count=2,
            keys=(b"k",),
            category="write",
            db=0,
            protocol=2,
            inline=False,
            started=1.0,
            ended=2.0,
            reply=RedisReply("simple", "OK", 5),
            size=27,
        )
    ]
    get = talk.pair(cmd("GET", "k"), b"$1\r\nv\r\n")
    assert (get.name, get.keys, get.category, get.reply) == (
        "GET",
        (b"k",),
        "read",
        RedisReply("bulk", '"v"', 7),
    )
    assert (get.started, get.ended, get.size) == (3.0, 4.0, 20)


def test_pipelined_commands_are_paired_in_order() -> None:
    talk = Talk()
    assert (
        talk.client(cmd("SET", "a", "1") + cmd("INCR", "a") + cmd("GET", "nope") + cmd("DEL", "a", "b")) == []
    )
    events = talk.server(b"+OK\r\n:2\r\n$-1\r\n:1\r\n")
    assert [(e.name, e.keys, e.reply) for e in events if isinstance(e, CommandCompleted)] == [
        ("SET", (b"a",), RedisReply("simple", "OK", 5)),
        ("INCR", (b"a",), RedisReply("integer", "(integer) 2", 4)),
        ("GET", (b"nope",), RedisReply("null", "(nil)", 5)),
        ("DEL", (b"a", b"b"), RedisReply("integer", "(integer) 1", 4)),
    ]


def test_a_reply_that_overtakes_later_commands_in_the_tee() -> None:
    talk = Talk()
    assert talk.client(cmd("GET", "a") + cmd("GET", "b")[:5]) == []
    assert [brief(e) for e in talk.server(b"$1\r\n1\r\n")] == [("GET", (b"a",), '"1"', 0, 2, False)]
    assert talk.client(cmd("GET", "b")[5:]) == []
    assert [brief(e) for e in talk.server(b"$-1\r\n")] == [("GET", (b"b",), "(nil)", 0, 2, False)]


def test_errors_keep_their_text() -> None:
    talk = Talk()
    moved = talk.pair(cmd("GET", "user:1"), b"-MOVED 3999 127.0.0.1:6381\r\n")
    assert moved.reply == RedisReply(
        "error", "(error) MOVED 3999 127.0.0.1:6381", 28, error="MOVED 3999 127.0.0.1:6381"
    )
    ask = talk.pair(cmd("GET", "user:2"), b"-ASK 3999 127.0.0.1:6381\r\n")
    assert ask.reply is not None and ask.reply.error == "ASK 3999 127.0.0.1:6381"
    unknown = talk.pair(
        cmd("FOO", "bar"), b"-ERR unknown command 'FOO', with args beginning with: 'bar' \r\n"
    )
    assert (unknown.name, unknown.category, unknown.keys) == ("FOO", "other", ())
    assert unknown.reply is not None and unknown.reply.error == (
        "ERR unknown command 'FOO', with args beginning with: 'bar' "
    )


def test_container_commands_are_named_with_their_subcommand() -> None:
    talk = Talk()
    info = talk.pair(cmd("object", "encoding", "k"), b"$6\r\nembstr\r\n")
    assert (info.name, info.args, info.keys, info.category, info.arg_count) == (
        "OBJECT ENCODING",
        (b"k",),
        (b"k",),
        "read",
        1,
    )
    load = talk.pair(cmd("SCRIPT", "LOAD", "return 1"), b"$40\r\n" + b"e" * 40 + b"\r\n")
    assert (load.name, load.args, load.category) == ("SCRIPT LOAD", (b"return 1",), "scripting")
    stream = talk.pair(cmd("XINFO", "STREAM", "s"), b"-ERR no such key\r\n")
    assert (stream.name, stream.keys) == ("XINFO STREAM", (b"s",))


# -- inline commands (redis-cli without a terminal, telnet) --


def test_inline_commands_split_like_redis() -> None:
    talk = Talk()
    echo = talk.pair(b'ECHO "a b\\x41\\n"\r\n', b"$5\r\na bA\n\r\n")
    assert (echo.name, echo.args, echo.inline, echo.size) == ("ECHO", (b"a bA\n",), True, 18)
    assert echo.reply is not None and echo.reply.summary == '"a bA\\n"'
    single = talk.pair(b"ECHO 'c\\'d\\n'\r\n", b"$5\r\nc'd\\n\r\n")
    assert single.args == (b"c'd\\n",)
    joined = talk.pair(b'ECHO a"b c"\r\n', b"$4\r\nab c\r\n")
    assert joined.args == (b"ab c",)
    binary = talk.pair(b'ECHO "a\\x00\\xff"\r\n', b"$3\r\na\x00\xff\r\n")
    assert binary.reply is not None and binary.reply.summary == '"a\\x00\\xff"'


def test_empty_inline_lines_are_no_command() -> None:
    talk = Talk()
    assert talk.client(b"  \r\n\nPING\n") == []
    assert [brief(e) for e in talk.server(b"+PONG\r\n")] == [("PING", (), "PONG", 0, 2, False)]


def test_unbalanced_quotes_stop_the_analysis() -> None:
    # redis-server answers "-ERR Protocol error: unbalanced quotes in request" and closes.
    talk = Talk()
    assert talk.client(b"GET k\r\n") == []
    events = talk.client(b'ECHO "a"b\r\n')
    assert [brief(e) for e in events] == [("GET", (b"k",), "analysis stopped", 0, 2, False)]
    assert talk.analyzer.stopped == "client: unbalanced quotes in request"
    assert talk.server(b"$1\r\nv\r\n-ERR Protocol error: unbalanced quotes in request\r\n") == []


def test_what_redis_refuses_stops_the_analysis() -> None:
    for request in (b"*2\r\n+ECHO\r\n", b"*1\r\n$-1\r\n", b"*1\r\n$04\r\nPING\r\n", b"*01\r\n$4\r\nPING\r\n"):
        talk = Talk()
        assert talk.client(request) == []
        assert talk.analyzer.stopped is not None and talk.analyzer.stopped.startswith("client: "), request


def test_arrays_of_no_length_are_ignored_like_redis_does() -> None:
    # redis-server 7 reads "*0" and "*-5" as nothing at all (processMultibulkBuffer: ll <= 0).
    talk = Talk()
    assert talk.client(b"*0\r\n*-5\r\n" + cmd("PING")) == []
    assert [brief(e) for e in talk.server(b"+PONG\r\n")] == [("PING", (), "PONG", 0, 2, False)]
    assert talk.analyzer.stopped is None


# -- HELLO, AUTH and what is redacted --


def test_hello_switches_the_protocol_after_its_reply() -> None:
    talk = Talk()
    assert talk.client(cmd("HELLO", "3") + cmd("GET", "k")) == []
    events = talk.server(HELLO_3_REPLY + b"_\r\n")
    assert [(e.name, e.protocol) for e in events if isinstance(e, CommandCompleted)] == [
        ("HELLO", 2),
        ("GET", 3),
    ]
    hello = events[0]
    assert isinstance(hello, CommandCompleted) and hello.reply is not None
    assert (hello.reply.kind, hello.reply.count) == ("map", 7)
    assert hello.reply.summary.startswith(
        '{7} "server" => "redis", "version" => "7.0.15", "proto" => (integer) 3'
    )
    refused = talk.pair(cmd("HELLO", "4"), b"-NOPROTO unsupported protocol version\r\n")
    assert refused.protocol == 3
    back = talk.pair(cmd("HELLO", "2"), HELLO_2_REPLY)
    assert back.reply is not None and (back.protocol, back.reply.kind, back.reply.count) == (3, "array", 14)
    assert talk.pair(cmd("GET", "k"), b"$-1\r\n").protocol == 2


def test_hello_auth_is_redacted() -> None:
    talk = Talk()
    hello = talk.pair(cmd("HELLO", "3", "AUTH", "default", "s3cret", "SETNAME", "app"), HELLO_3_REPLY)
    assert hello.args == (b"3", b"AUTH", b"<redacted>", b"<redacted>", b"SETNAME", b"app")
    assert hello.arg_sizes == (1, 4, 7, 6, 7, 3)
    assert hello.redacted
    assert talk.pair(cmd("GET", "k"), b"_\r\n").protocol == 3


def test_auth_arguments_are_always_redacted() -> None:
    talk = Talk()
    auth = talk.pair(cmd("AUTH", "alice", "s3cret"), b"+OK\r\n")
    assert (auth.args, auth.arg_sizes, auth.redacted, auth.category) == (
        (b"<redacted>", b"<redacted>"),
        (5, 6),
        True,
        "connection",
    )
    inline = talk.pair(b"AUTH s3cret\r\n", b"-WRONGPASS invalid username-password pair\r\n")
    assert inline.args == (b"<redacted>",)


def test_config_set_values_migrate_and_acl_credentials_are_redacted() -> None:
    talk = Talk()
    config = talk.pair(cmd("CONFIG", "SET", "masterauth", "pw", "maxmemory", "1gb"), b"+OK\r\n")
    assert (config.name, config.args, config.redacted) == (
        "CONFIG SET",
        (b"masterauth", b"<redacted>", b"maxmemory", b"<redacted>"),
        True,
    )
    config_get = talk.pair(cmd("CONFIG", "GET", "maxmemory"), b"*2\r\n$9\r\nmaxmemory\r\n$1\r\n0\r\n")
    assert (config_get.args, config_get.redacted) == ((b"maxmemory",), False)
    migrate = talk.pair(
        cmd("MIGRATE", "10.0.0.2", "6379", "", "0", "5000", "AUTH2", "bob", "pw", "KEYS", "a", "b"),
        b"+OK\r\n",
    )
    assert migrate.args == (b"10.0.0.2", b"6379", b"", b"0", b"5000", b"AUTH2") + (b"<redacted>",) * 2 + (
        b"KEYS",
        b"a",
        b"b",
    )
    assert migrate.keys == (b"a", b"b")
    acl = talk.pair(cmd("ACL", "SETUSER", "bob", "on", ">pw", "~*"), b"+OK\r\n")
    assert (acl.name, acl.args) == ("ACL SETUSER", (b"bob", b"<redacted>", b"<redacted>", b"<redacted>"))


def test_configured_redaction_hides_values_and_the_reply() -> None:
    talk = Talk(redact_keys=("secret:*",), redact_commands=frozenset({"ECHO"}))
    hidden = talk.pair(cmd("SET", "secret:1", "token", "EX", "60"), b"+OK\r\n")
    assert (hidden.args, hidden.keys, hidden.redacted) == (
        (b"secret:1", b"<redacted>", b"<redacted>", b"<redacted>"),
        (b"secret:1",),
        True,
    )
    assert hidden.reply == RedisReply("simple", "<redacted>", 5)
    get = talk.pair(cmd("GET", "secret:1"), b"$5\r\ntoken\r\n")
    assert get.reply == RedisReply("bulk", "<redacted>", 11) and get.args == (b"secret:1",)
    echo = talk.pair(cmd("ECHO", "hi"), b"$2\r\nhi\r\n")
    assert (echo.args, echo.reply) == ((b"<redacted>",), RedisReply("bulk", "<redacted>", 8))
    plain = talk.pair(cmd("GET", "public"), b"$2\r\nok\r\n")
    assert (plain.redacted, plain.reply) == (False, RedisReply("bulk", '"ok"', 8))


# -- SELECT and RESET --


def test_select_changes_the_db_after_its_ok() -> None:
    talk = Talk()
    assert talk.client(cmd("SELECT", "9") + cmd("GET", "k") + cmd("SELECT", "99") + cmd("GET", "k")) == []
    events = talk.server(b"+OK\r\n$-1\r\n-ERR DB index is out of range\r\n$-1\r\n")
    assert [(e.name, e.db) for e in events if isinstance(e, CommandCompleted)] == [
        ("SELECT", 0),
        ("GET", 9),
        ("SELECT", 9),
        ("GET", 9),
    ]


def test_reset_returns_to_db_0_resp2_and_ends_multi_subscriptions_and_monitor() -> None:
    talk = Talk()
    talk.pair(cmd("HELLO", "3"), HELLO_3_REPLY)
    talk.pair(cmd("SELECT", "9"), b"+OK\r\n")
    talk.pair(cmd("SUBSCRIBE", "ch"), b">3\r\n$9\r\nsubscribe\r\n$2\r\nch\r\n:1\r\n")
    talk.pair(cmd("MULTI"), b"+OK\r\n")
    reset = talk.pair(cmd("RESET"), b"+RESET\r\n")
    assert (reset.db, reset.protocol, reset.reply) == (9, 3, RedisReply("simple", "RESET", 8))
    after = talk.pair(cmd("GET", "k"), b"$-1\r\n")
    assert (after.db, after.protocol, after.queued) == (0, 2, False)
    talk.pair(cmd("MONITOR"), b"+OK\r\n")
    talk.pair(cmd("RESET"), b"+RESET\r\n")
    assert brief(talk.pair(cmd("PING"), b"+PONG\r\n")) == ("PING", (), "PONG", 0, 2, False)


# -- MULTI / EXEC / DISCARD --


def test_a_transaction_queues_then_exec_answers() -> None:
    talk = Talk()
    assert talk.client(cmd("MULTI") + cmd("SET", "k", "v") + cmd("GET", "k") + cmd("EXEC")) == []
    events = talk.server(b"+OK\r\n+QUEUED\r\n+QUEUED\r\n*2\r\n+OK\r\n$1\r\nv\r\n")
    assert [(e.name, e.queued, e.category) for e in events if isinstance(e, CommandCompleted)] == [
        ("MULTI", False, "transaction"),
        ("SET", True, "write"),
        ("GET", True, "read"),
        ("EXEC", False, "transaction"),
    ]
    exec_reply = events[-1]
    assert isinstance(exec_reply, CommandCompleted)
    assert exec_reply.reply == RedisReply("array", '[2] OK, "v"', 16, count=2)
    assert talk.pair(cmd("GET", "k"), b"$1\r\nv\r\n").queued is False


def test_a_command_refused_at_queue_time_gets_its_error_and_exec_aborts() -> None:
    talk = Talk()
    talk.client(cmd("MULTI") + cmd("NOPE") + cmd("GET", "k") + cmd("EXEC"))
    events = talk.server(
        b"+OK\r\n-ERR unknown command 'NOPE', with args beginning with: \r\n+QUEUED\r\n"
        b"-EXECABORT Transaction discarded because of previous errors.\r\n"
    )
    assert [
        (e.name, e.queued, e.reply and e.reply.kind) for e in events if isinstance(e, CommandCompleted)
    ] == [
        ("MULTI", False, "simple"),
        ("NOPE", False, "error"),
        ("GET", True, "simple"),
        ("EXEC", False, "error"),
    ]


def test_discard_nested_multi_and_watch_inside_multi() -> None:
    talk = Talk()
    talk.client(
        cmd("MULTI") + cmd("MULTI") + cmd("WATCH", "x") + cmd("DISCARD") + cmd("EXEC") + cmd("GET", "k")
    )
    events = talk.server(
        b"+OK\r\n-ERR MULTI calls can not be nested\r\n-ERR WATCH inside MULTI is not allowed\r\n+OK\r\n"
        b"-ERR EXEC without MULTI\r\n+QUEUED\r\n"
    )
    assert [(e.name, e.queued) for e in events if isinstance(e, CommandCompleted)] == [
        ("MULTI", False),
        ("MULTI", False),
        ("WATCH", False),
        ("DISCARD", False),
        ("EXEC", False),
        ("GET", False),  # +QUEUED outside a transaction is just a status reply
    ]


def test_exec_of_a_watched_key_that_changed_is_null_and_runs_nothing() -> None:
    talk = Talk()
    talk.client(cmd("WATCH", "k") + cmd("MULTI") + cmd("INCR", "k") + cmd("SELECT", "4") + cmd("EXEC"))
    events = talk.server(b"+OK\r\n+OK\r\n+QUEUED\r\n+QUEUED\r\n*-1\r\n")
    assert [(e.name, e.keys) for e in events if isinstance(e, CommandCompleted)][0] == ("WATCH", (b"k",))
    last = events[-1]
    assert isinstance(last, CommandCompleted) and last.reply == RedisReply("null", "(nil)", 5)
    assert talk.pair(cmd("GET", "k"), b"$-1\r\n").db == 0


def test_select_inside_a_transaction_takes_effect_at_exec() -> None:
    talk = Talk()
    talk.client(cmd("MULTI") + cmd("SELECT", "3") + cmd("EXEC") + cmd("GET", "k"))
    events = talk.server(b"+OK\r\n+QUEUED\r\n*1\r\n+OK\r\n$-1\r\n")
    assert [(e.name, e.db) for e in events if isinstance(e, CommandCompleted)] == [
        ("MULTI", 0),
        ("SELECT", 0),
        ("EXEC", 0),
        ("GET", 3),
    ]


# -- CLIENT REPLY --

# Captured: what redis-server 7.0.15 answers to each command of this list, in order.
REPLY_MODES = [
    (cmd("CLIENT", "REPLY", "OFF"), b""),
    (cmd("SET", "k", "1"), b""),
    (cmd("GET", "k"), b""),
    (cmd("CLIENT", "REPLY", "ON"), b"+OK\r\n"),
    (cmd("GET", "k"), b"$1\r\n1\r\n"),
    (cmd("CLIENT", "REPLY", "SKIP"), b""),
    (cmd("GET", "k"), b""),
    (cmd("GET", "k"), b"$1\r\n1\r\n"),
    (cmd("CLIENT", "REPLY", "SKIP"), b""),
    (cmd("CLIENT", "REPLY", "ON"), b"+OK\r\n"),  # ON is answered even right after SKIP
    (cmd("CLIENT", "REPLY", "SKIP"), b""),
    (b"\r\n", b""),  # an empty command uses up the SKIP
    (cmd("GET", "k"), b"$1\r\n1\r\n"),
    (cmd("CLIENT", "REPLY", "SKIP"), b""),
    (cmd("RESET"), b""),  # skipped too
    (cmd("GET", "k"), b"$1\r\n1\r\n"),
    (cmd("CLIENT", "REPLY", "OFF"), b""),
    (cmd("RESET"), b"+RESET\r\n"),  # RESET turns replies back on before answering
    (cmd("CLIENT", "REPLY", "BAD"), b"-ERR syntax error\r\n"),
    (cmd("CLIENT", "REPLY", "OFF"), b""),
    (cmd("CLIENT", "REPLY", "SKIP"), b""),
    (cmd("GET", "k"), b""),
    (cmd("CLIENT", "REPLY", "ON"), b"+OK\r\n"),
    (cmd("PING"), b"+PONG\r\n"),
]
REPLY_MODE_EVENTS = [
    ("CLIENT REPLY", "reply off"),
    ("SET", "reply off"),
    ("GET", "reply off"),
    ("CLIENT REPLY", "OK"),
    ("GET", '"1"'),
    ("CLIENT REPLY", "reply skip"),
    ("GET", "reply skip"),
    ("GET", '"1"'),
    ("CLIENT REPLY", "reply skip"),
    ("CLIENT REPLY", "OK"),
    ("CLIENT REPLY", "reply skip"),
    ("GET", '"1"'),
    ("CLIENT REPLY", "reply skip"),
    ("RESET", "reply skip"),
    ("GET", '"1"'),
    ("CLIENT REPLY", "reply off"),
    ("RESET", "RESET"),
    ("CLIENT REPLY", "(error) ERR syntax error"),
    ("CLIENT REPLY", "reply off"),
    ("CLIENT REPLY", "reply off"),
    ("GET", "reply off"),
    ("CLIENT REPLY", "OK"),
    ("PING", "PONG"),
]


def test_client_reply_off_on_and_skip_one_by_one() -> None:
    talk = Talk()
    events: list[RedisEvent] = []
    for request, reply in REPLY_MODES:
        events += talk.client(request)
        if reply:
            events += talk.server(reply)
    assert [(e.name, brief(e)[2]) for e in events if isinstance(e, CommandCompleted)] == REPLY_MODE_EVENTS
    assert talk.analyzer.stopped is None


def test_client_reply_pipelined_stays_in_step() -> None:
    talk = Talk()
    early = talk.client(b"".join(request for request, _ in REPLY_MODES))
    late = talk.server(b"".join(reply for _, reply in REPLY_MODES))
    unanswered = [(e.name, e.unanswered) for e in early if isinstance(e, CommandCompleted)]
    answered = [(e.name, brief(e)[2]) for e in late if isinstance(e, CommandCompleted)]
    assert unanswered == [(name, said) for name, said in REPLY_MODE_EVENTS if said.startswith("reply ")]
    assert answered == [(name, said) for name, said in REPLY_MODE_EVENTS if not said.startswith("reply ")]
    skipped = [e for e in early if isinstance(e, CommandCompleted)]
    assert all(e.reply is None and e.ended is None for e in skipped)


def test_a_skipped_select_still_changes_the_db() -> None:
    talk = Talk()
    events = talk.client(cmd("CLIENT", "REPLY", "SKIP") + cmd("SELECT", "5") + cmd("GET", "k"))
    assert [(e.name, e.unanswered) for e in events if isinstance(e, CommandCompleted)] == [
        ("CLIENT REPLY", "reply skip"),
        ("SELECT", "reply skip"),
    ]
    assert [(e.name, e.db) for e in talk.server(b"$-1\r\n") if isinstance(e, CommandCompleted)] == [
        ("GET", 5)
    ]


def test_a_skipped_select_behind_waiting_commands_takes_effect_in_order() -> None:
    talk = Talk()
    events = talk.client(
        cmd("GET", "a") + cmd("CLIENT", "REPLY", "SKIP") + cmd("SELECT", "5") + cmd("GET", "b")
    )
    assert [e.unanswered for e in events if isinstance(e, CommandCompleted)] == ["reply skip", "reply skip"]
    assert [e.db for e in events if isinstance(e, CommandCompleted)] == [0, 5]  # as sent
    assert [
        (e.name, e.keys, e.db) for e in talk.server(b"$-1\r\n$-1\r\n") if isinstance(e, CommandCompleted)
    ] == [
        ("GET", (b"a",), 0),
        ("GET", (b"b",), 5),
    ]


# -- pub/sub --


def test_subscribe_in_resp2_confirms_each_channel_then_messages_arrive() -> None:
    talk = Talk()
    assert talk.client(cmd("SUBSCRIBE", "lan:a", "lan:b", "lan:c")) == []
    confirmations = (
        b"*3\r\n$9\r\nsubscribe\r\n$5\r\nlan:a\r\n:1\r\n*3\r\n$9\r\nsubscribe\r\n$5\r\nlan:b\r\n:2\r\n"
        b"*3\r\n$9\r\nsubscribe\r\n$5\r\nlan:c\r\n:3\r\n"
    )
    assert talk.server(confirmations[:60]) == []
    [subscribe] = talk.server(confirmations[60:])
    assert isinstance(subscribe, CommandCompleted)
    assert subscribe.reply == RedisReply(
        "array", 'subscribe "lan:a", "lan:b", "lan:c" (total 3)', len(confirmations), count=3
    )
    assert (subscribe.category, subscribe.keys) == ("pubsub", ())
    message = b"*3\r\n$7\r\nmessage\r\n$5\r\nlan:a\r\n$5\r\nhello\r\n"
    pmessage = b"*4\r\n$8\r\npmessage\r\n$6\r\nlan:p*\r\n$6\r\nlan:pq\r\n$9\r\nhi\r\nthere\r\n"
    assert talk.server(message + pmessage) == [
        MessagePushed("message", b"lan:a", None, '"hello"', len(message), 4.0),
        MessagePushed("pmessage", b"lan:pq", b"lan:p*", '"hi\\r\\nthere"', len(pmessage), 4.0),
    ]


def test_ping_and_other_commands_while_subscribed_in_resp2() -> None:
    talk = Talk()
    talk.pair(cmd("SUBSCRIBE", "lan:a"), b"*3\r\n$9\r\nsubscribe\r\n$5\r\nlan:a\r\n:1\r\n")
    talk.client(cmd("PING") + cmd("GET", "k") + cmd("PING", "x"))
    events = talk.server(
        b"*3\r\n$7\r\nmessage\r\n$5\r\nlan:a\r\n$2\r\nhi\r\n"
        b"*2\r\n$4\r\npong\r\n$0\r\n\r\n"
        b"-ERR Can't execute 'get': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are "
        b"allowed in this context\r\n"
        b"*2\r\n$4\r\npong\r\n$1\r\nx\r\n"
    )
    assert [brief(e)[:3] for e in events] == [
        ("push", "message", b"lan:a"),
        ("PING", (), '[2] "pong", ""'),
        (
            "GET",
            (b"k",),
            "(error) ERR Can't execute 'get': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are "
            "allowed in this context",
        ),
        ("PING", (b"x",), '[2] "pong", "x"'),
    ]


def test_unsubscribe_without_channels_gets_one_confirmation_per_channel() -> None:
    # Subscribed to three channels and a pattern: the count never reaches 0 (pubsub.c
    # counts channels and patterns together), yet UNSUBSCRIBE ends after three.
    talk = Talk()
    talk.client(
        cmd("SUBSCRIBE", "lan:a", "lan:b", "lan:c") + cmd("PSUBSCRIBE", "lan:p*") + cmd("UNSUBSCRIBE")
    )
    talk.client(cmd("PUNSUBSCRIBE") + cmd("UNSUBSCRIBE") + cmd("PING"))
    events = talk.server(
        b"*3\r\n$9\r\nsubscribe\r\n$5\r\nlan:a\r\n:1\r\n*3\r\n$9\r\nsubscribe\r\n$5\r\nlan:b\r\n:2\r\n"
        b"*3\r\n$9\r\nsubscribe\r\n$5\r\nlan:c\r\n:3\r\n"
        b"*3\r\n$10\r\npsubscribe\r\n$6\r\nlan:p*\r\n:4\r\n"
        b"*3\r\n$11\r\nunsubscribe\r\n$5\r\nlan:c\r\n:3\r\n*3\r\n$11\r\nunsubscribe\r\n$5\r\nlan:a\r\n:2\r\n"
        b"*3\r\n$11\r\nunsubscribe\r\n$5\r\nlan:b\r\n:1\r\n"
        b"*3\r\n$12\r\npunsubscribe\r\n$6\r\nlan:p*\r\n:0\r\n"
        b"*3\r\n$11\r\nunsubscribe\r\n$-1\r\n:0\r\n"
        b"+PONG\r\n"
    )
    assert [(e.name, brief(e)[2]) for e in events if isinstance(e, CommandCompleted)] == [
        ("SUBSCRIBE", 'subscribe "lan:a", "lan:b", "lan:c" (total 3)'),
        ("PSUBSCRIBE", 'psubscribe "lan:p*" (total 4)'),
        ("UNSUBSCRIBE", 'unsubscribe "lan:c", "lan:a", "lan:b" (total 1)'),
        ("PUNSUBSCRIBE", 'punsubscribe "lan:p*" (total 0)'),
        ("UNSUBSCRIBE", "unsubscribe (nil) (total 0)"),
        ("PING", "PONG"),
    ]
    assert len(events) == 6


def test_subscribe_in_resp3_is_confirmed_by_pushes() -> None:
    talk = Talk()
    talk.pair(cmd("HELLO", "3"), HELLO_3_REPLY)
    talk.client(cmd("SUBSCRIBE", "lan:a", "lan:b") + cmd("GET", "lan:k") + cmd("PSUBSCRIBE", "lan:p*"))
    talk.client(cmd("SSUBSCRIBE", "lan:s") + cmd("UNSUBSCRIBE") + cmd("UNSUBSCRIBE") + cmd("SUNSUBSCRIBE"))
    events = talk.server(
        b">3\r\n$9\r\nsubscribe\r\n$5\r\nlan:a\r\n:1\r\n>3\r\n$9\r\nsubscribe\r\n$5\r\nlan:b\r\n:2\r\n"
        b">3\r\n$7\r\nmessage\r\n$5\r\nlan:a\r\n$5\r\nhello\r\n"
        b"_\r\n"
        b">3\r\n$10\r\npsubscribe\r\n$6\r\nlan:p*\r\n:3\r\n"
        b">4\r\n$8\r\npmessage\r\n$6\r\nlan:p*\r\n$6\r\nlan:pq\r\n$9\r\nhi\r\nthere\r\n"
        b">3\r\n$10\r\nssubscribe\r\n$5\r\nlan:s\r\n:1\r\n"
        b">3\r\n$8\r\nsmessage\r\n$5\r\nlan:s\r\n$5\r\nshard\r\n"
        b">3\r\n$11\r\nunsubscribe\r\n$5\r\nlan:a\r\n:2\r\n>3\r\n$11\r\nunsubscribe\r\n$5\r\nlan:b\r\n:1\r\n"
        b">3\r\n$11\r\nunsubscribe\r\n_\r\n:1\r\n"
        b">3\r\n$12\r\nsunsubscribe\r\n$5\r\nlan:s\r\n:0\r\n"
    )
    assert [brief(e)[:3] for e in events] == [
        ("SUBSCRIBE", (b"lan:a", b"lan:b"), 'subscribe "lan:a", "lan:b" (total 2)'),
        ("push", "message", b"lan:a"),
        ("GET", (b"lan:k",), "(nil)"),
        ("PSUBSCRIBE", (b"lan:p*",), 'psubscribe "lan:p*" (total 3)'),
        ("push", "pmessage", b"lan:pq"),
        ("SSUBSCRIBE", (b"lan:s",), 'ssubscribe "lan:s" (total 1)'),
        ("push", "smessage", b"lan:s"),
        ("UNSUBSCRIBE", (), 'unsubscribe "lan:a", "lan:b" (total 1)'),
        ("UNSUBSCRIBE", (), "unsubscribe (nil) (total 1)"),
        ("SUNSUBSCRIBE", (), 'sunsubscribe "lan:s" (total 0)'),
    ]
    first = events[0]
    assert isinstance(first, CommandCompleted) and first.reply is not None
    assert (first.reply.kind, first.reply.count) == ("push", 2)


def test_tracking_invalidations_are_pushes() -> None:
    talk = Talk()
    talk.pair(cmd("HELLO", "3"), HELLO_3_REPLY)
    talk.pair(cmd("CLIENT", "TRACKING", "ON"), b"+OK\r\n")
    talk.client(cmd("SET", "lan:t", "1") + cmd("GET", "lan:t"))
    invalidate = b">2\r\n$10\r\ninvalidate\r\n*1\r\n$5\r\nlan:t\r\n"
    events = talk.server(b"+OK\r\n" + invalidate + b"$1\r\n1\r\n")
    assert [brief(e) for e in events] == [
        ("SET", (b"lan:t", b"1"), "OK", 0, 3, False),
        ("push", "invalidate", None, None, '["lan:t"]'),
        ("GET", (b"lan:t",), '"1"', 0, 3, False),
    ]
    assert isinstance(events[1], MessagePushed) and events[1].size == len(invalidate)


# -- MONITOR, QUIT, blocking commands --


def test_monitor_lines_are_pushes_until_reset() -> None:
    talk = Talk()
    assert talk.client(cmd("MONITOR")) == []
    lines = (
        b'+1795812720.605744 [9 127.0.0.1:53486] "SELECT" "9"\r\n'
        b'+1795812720.605806 [9 127.0.0.1:53486] "set" "lan:mon" "a b\\"c\\n"\r\n'
    )
    events = talk.server(b"+OK\r\n" + lines)
    assert [brief(e) for e in events] == [
        ("MONITOR", (), "OK", 0, 2, False),
        ("push", "monitor", None, None, '1795812720.605744 [9 127.0.0.1:53486] "SELECT" "9"'),
        ("push", "monitor", None, None, '1795812720.605806 [9 127.0.0.1:53486] "set" "lan:mon" "a b\\"c\\n"'),
    ]
    talk.client(cmd("GET", "lan:k") + cmd("PING") + cmd("RESET"))
    events = talk.server(
        b"-ERR Replica can't interact with the keyspace\r\n+PONG\r\n"
        b'+1795812701.373126 [0 127.0.0.1:53776] "PING"\r\n+RESET\r\n'
    )
    assert [brief(e)[:3] for e in events] == [
        ("GET", (b"lan:k",), "(error) ERR Replica can't interact with the keyspace"),
        ("PING", (), "PONG"),
        ("push", "monitor", None),
        ("RESET", (), "RESET"),
    ]
    assert brief(talk.pair(cmd("PING"), b"+PONG\r\n")) == ("PING", (), "PONG", 0, 2, False)


def test_quit_then_close() -> None:
    talk = Talk()
    talk.client(cmd("PING") + cmd("QUIT") + cmd("PING"))
    assert [brief(e)[:3] for e in talk.server(b"+PONG\r\n+OK\r\n")] == [
        ("PING", (), "PONG"),
        ("QUIT", (), "OK"),
    ]
    [late] = talk.close()
    assert isinstance(late, CommandCompleted)
    assert (late.name, late.reply, late.ended, late.unanswered) == ("PING", None, None, "connection closed")
    assert talk.client(cmd("PING")) == [] and talk.close() == []


def test_blocking_commands_and_their_timeouts() -> None:
    talk = Talk()
    blpop = talk.pair(cmd("BLPOP", "lan:a", "lan:b", "0.1"), b"*-1\r\n")
    assert (blpop.blocking, blpop.keys, blpop.reply) == (
        True,
        (b"lan:a", b"lan:b"),
        RedisReply("null", "(nil)", 5),
    )
    xread = talk.pair(cmd("XREAD", "COUNT", "1", "BLOCK", "10", "STREAMS", "s1", "s2", "0", "0"), b"*-1\r\n")
    assert (xread.blocking, xread.keys) == (True, (b"s1", b"s2"))
    assert talk.pair(cmd("XREAD", "STREAMS", "BLOCK", "0"), b"*-1\r\n").blocking is False  # BLOCK is the key
    talk.pair(cmd("HELLO", "3"), HELLO_3_REPLY)
    bzpop = talk.pair(cmd("BZPOPMIN", "z", "1"), b"_\r\n")
    assert (bzpop.blocking, bzpop.reply) == (True, RedisReply("null", "(nil)", 3))
    wait = talk.pair(cmd("WAIT", "0", "10"), b":0\r\n")
    assert (wait.blocking, wait.category) == (True, "connection")
    assert talk.pair(cmd("LPOP", "l"), b"_\r\n").blocking is False


def test_resp3_reply_types_from_redis() -> None:
    talk = Talk()
    talk.pair(cmd("HELLO", "3"), HELLO_3_REPLY)
    replies = [
        (b",1.5\r\n", "double", "(double) 1.5"),
        (
            b"*2\r\n*2\r\n$1\r\na\r\n,1.5\r\n*2\r\n$1\r\nb\r\n,2\r\n",
            "array",
            '[2] ["a", (double) 1.5], ["b", (double) 2]',
        ),
        (b"%1\r\n$1\r\nf\r\n$1\r\nv\r\n", "map", '{1} "f" => "v"'),
        (b"~1\r\n$1\r\nx\r\n", "set", '~[1] "x"'),
        (b"(123456789012345678901234567890\r\n", "bignum", "(big number) 123456789012345678901234567890"),
        (b"#t\r\n", "boolean", "(true)"),
        (b"#f\r\n", "boolean", "(false)"),
        (b"=9\r\ntxt:hello\r\n", "verbatim", '"hello"'),
        (b"_\r\n", "null", "(nil)"),
    ]
    for reply, kind, summary in replies:
        event = talk.pair(cmd("EVAL", "return 1", "0"), reply)
        assert event.reply == RedisReply(
            kind, summary, len(reply), count=event.reply.count if event.reply else None
        )


# -- bounds --


def test_arguments_and_summaries_are_cut_to_the_limits() -> None:
    talk = Talk(max_arg=4, max_args=2, max_summary=32)
    event = talk.pair(
        cmd("RPUSH", "list:1", "alpha", "beta", "gamma"), b"*3\r\n" + b"$10\r\n0123456789\r\n" * 3
    )
    assert (event.args, event.arg_sizes, event.arg_count, event.keys) == (
        (b"list", b"alph"),
        (6, 5),
        4,
        (b"list",),
    )
    assert event.reply is not None and event.reply.summary == '[3] "0123456789", "0123456789",…'
    assert len(event.reply.summary) == 32


def test_an_inline_command_longer_than_max_inline_stops_the_analysis() -> None:
    talk = Talk(max_inline=64)
    assert talk.client(b"SET k " + b"v" * 58 + b"\r\n") == []  # 64 bytes before the CRLF
    assert talk.analyzer.stopped is None
    assert talk.client(b"SET k " + b"v" * 40) == []
    [first] = talk.client(b"v" * 40)
    assert isinstance(first, CommandCompleted)
    assert (first.name, first.args, first.inline, first.size) == ("SET", (b"k", b"v" * 58), True, 66)
    assert (first.reply, first.unanswered) == (None, "analysis stopped")
    assert talk.analyzer.stopped == "client: a line longer than 64 bytes"


def test_replies_nested_deeper_than_max_depth_stop_the_analysis() -> None:
    talk = Talk(max_depth=3)
    assert talk.pair(cmd("EVAL", "s", "0"), b"*1\r\n*1\r\n*1\r\n:1\r\n").reply is not None
    talk.client(cmd("EVAL", "s", "0"))
    [event] = talk.server(b"*1\r\n*1\r\n*1\r\n*1\r\n:1\r\n")
    assert isinstance(event, CommandCompleted) and event.unanswered == "analysis stopped"
    assert talk.analyzer.stopped == "server: aggregates nested deeper than 3"


# -- ending --


def test_close_reports_what_was_never_answered() -> None:
    talk = Talk()
    talk.client(cmd("GET", "a") + cmd("BLPOP", "q", "0"))
    events = talk.close()
    assert [
        (e.name, e.unanswered, e.ended, e.blocking) for e in events if isinstance(e, CommandCompleted)
    ] == [
        ("GET", "connection closed", None, False),
        ("BLPOP", "connection closed", None, True),
    ]
    assert talk.analyzer.stopped is None


def test_a_server_error_before_any_command_is_a_push() -> None:
    talk = Talk()
    assert talk.server(b"-ERR max number of clients reached\r\n") == [
        MessagePushed("error", None, None, "(error) ERR max number of clients reached", 36, 1.0)
    ]


def test_the_waiting_queue_is_bounded() -> None:
    talk = Talk(max_pending=3)
    assert talk.client(cmd("GET", "a") * 3) == []
    events = talk.client(cmd("GET", "a"))
    assert [e.unanswered for e in events if isinstance(e, CommandCompleted)] == ["analysis stopped"] * 3
    assert talk.analyzer.stopped == "client: more than 3 commands waiting for replies"
    assert talk.server(b"$-1\r\n") == []


def test_events_before_a_violation_in_the_same_chunk_are_kept() -> None:
    talk = Talk()
    talk.client(cmd("GET", "a") + cmd("GET", "b"))
    events = talk.server(b"$1\r\n1\r\n?oops\r\n")
    assert [brief(e)[:3] for e in events] == [("GET", (b"a",), '"1"'), ("GET", (b"b",), "analysis stopped")]
    assert talk.analyzer.stopped is not None and talk.analyzer.stopped.startswith("server: ")
    assert talk.client(cmd("GET", "c")) == [] and talk.server(b"$-1\r\n") == [] and talk.close() == []


# -- hypothesis: generated conversations, every chunking --

FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
LIMITS = st.sampled_from(
    [
        {},
        {"max_summary": 40, "max_arg": 8, "max_args": 3},
        {"max_summary": 64, "max_depth": 8, "max_inline": 200},
    ]
)
_TEXT = st.text(string.ascii_letters + string.digits + " .:-_/", max_size=20).map(str.encode)
_WORDS = st.text(string.ascii_lowercase + string.digits + ":", min_size=1, max_size=8).map(str.encode)
_STRINGS = st.one_of(st.binary(max_size=24), st.binary(min_size=100, max_size=300))


class Unit:
    """Some commands, the server's bytes for them, and the events each side should cause."""

    def __init__(
        self, client: bytes, server: bytes, on_client: list[object], on_server: list[object]
    ) -> None:
        self.client, self.server = client, server
        self.on_client, self.on_server = on_client, on_server


def _bulk(value: bytes) -> bytes:
    return b"$%d\r\n%s\r\n" % (len(value), value)


@st.composite
def resp_values(draw: st.DrawFn, depth: int = 0, attributes: bool = True) -> tuple[bytes, str]:
    """One RESP2/RESP3 value as a server writes it, and the kind the analyzer should report."""
    kinds = ["simple", "error", "integer", "bulk", "null", "double", "boolean", "bignum", "verbatim", "blob"]
    kind = draw(st.sampled_from(kinds + (["array", "map", "set", "stream", "streamed"] if depth < 3 else [])))
    attribute = b""
    if attributes and draw(st.integers(0, 9)) == 0:
        key, _ = draw(resp_values(depth=3, attributes=False))
        attribute = b"|1\r\n" + key + draw(resp_values(depth=3, attributes=False))[0]
    if kind == "simple":
        return attribute + b"+" + draw(_TEXT) + b"\r\n", kind
    if kind == "error":
        return attribute + b"-ERR " + draw(_TEXT) + b"\r\n", kind
    if kind == "integer":
        return attribute + b":%d\r\n" % draw(st.integers(-(2**63), 2**63 - 1)), kind
    if kind == "bulk":
        return attribute + _bulk(draw(_STRINGS)), kind
    if kind == "null":
        return attribute + draw(st.sampled_from([b"$-1\r\n", b"*-1\r\n", b"_\r\n"])), kind
    if kind == "double":
        number = draw(st.floats(allow_nan=False, allow_infinity=True))
        return attribute + b",%s\r\n" % repr(number).encode(), kind
    if kind == "boolean":
        return attribute + draw(st.sampled_from([b"#t\r\n", b"#f\r\n"])), kind
    if kind == "bignum":
        return attribute + b"(%d\r\n" % draw(st.integers(-(10**40), 10**40)), kind
    if kind == "verbatim":
        text = b"txt:" + draw(_STRINGS)
        return attribute + b"=%d\r\n%s\r\n" % (len(text), text), kind
    if kind == "blob":
        return attribute + b"!%d\r\n%s\r\n" % (len(text := draw(_STRINGS)), text), "error"
    if kind == "streamed":
        chunks = draw(st.lists(st.binary(min_size=1, max_size=12), max_size=3))
        return attribute + b"$?\r\n" + b"".join(
            b";%d\r\n%s\r\n" % (len(c), c) for c in chunks
        ) + b";0\r\n", "bulk"
    elements = draw(st.lists(resp_values(depth=depth + 1), max_size=4))
    wire = b"".join(element for element, _ in elements)
    if kind == "map":
        pairs = len(elements) // 2
        wire = b"".join(element for element, _ in elements[: pairs * 2])
        return attribute + b"%%%d\r\n" % pairs + wire, "map"
    if kind == "stream":
        opener = draw(st.sampled_from([b"*?", b"~?"]))
        return attribute + opener + b"\r\n" + wire + b".\r\n", "array" if opener == b"*?" else "set"
    opener = b"*" if kind == "array" else b"~"
    return attribute + opener + b"%d\r\n" % len(elements) + wire, kind


@st.composite
def plain_units(draw: st.DrawFn) -> Unit:
    """A command that changes nothing, answered with anything, maybe after a push."""
    name = draw(
        st.sampled_from(["GET", "SET", "hset", "LRANGE", "EVAL", "XADD", "OBJECT", "CONFIG", "AUTH", "FOO"])
    )
    head = [name.encode(), *({"OBJECT": [b"ENCODING"], "CONFIG": [b"SET"]}.get(name, []))]
    if draw(st.booleans()):  # inline, as telnet or redis-cli without a terminal sends it
        words = draw(st.lists(st.one_of(_WORDS, _WORDS.map(lambda w: b'"%s x"' % w)), max_size=4))
        request = b" ".join([*head, *words]) + draw(st.sampled_from([b"\r\n", b"\n"]))
    else:
        request = cmd(*head, *draw(st.lists(_STRINGS, max_size=4)))
    reply, kind = draw(resp_values())
    push = b""
    if draw(st.integers(0, 5)) == 0:
        push = b">2\r\n$10\r\ninvalidate\r\n*1\r\n" + _bulk(draw(_WORDS))
    expected_name = (
        "OBJECT ENCODING" if name == "OBJECT" else "CONFIG SET" if name == "CONFIG" else name.upper()
    )
    pushed = [("push", "invalidate")] if push else []
    return Unit(request, push + reply, [], [*pushed, (expected_name, kind, False)])


@st.composite
def state_units(draw: st.DrawFn, protocol: int) -> Unit:
    """Commands that change how the next ones are answered, as redis-server 7.0.15 answers them."""
    kind = draw(
        st.sampled_from(["hello3", "hello2", "select", "multi", "skip", "off", "subscribe", "monitor"])
    )
    if kind == "hello3":
        return Unit(cmd("HELLO", "3"), HELLO_3_REPLY, [], [("HELLO", "map", False)])
    if kind == "hello2":
        return Unit(cmd("HELLO", "2"), HELLO_2_REPLY, [], [("HELLO", "array", False)])
    if kind == "select":
        return Unit(
            cmd("SELECT", str(draw(st.integers(0, 15)))), b"+OK\r\n", [], [("SELECT", "simple", False)]
        )
    if kind == "multi":
        queued = draw(st.lists(resp_values(), max_size=3))
        client = cmd("MULTI") + cmd("INCR", "n") * len(queued) + cmd("EXEC")
        server = b"+OK\r\n" + b"+QUEUED\r\n" * len(queued) + b"*%d\r\n" % len(queued)
        server += b"".join(value for value, _ in queued)
        events = [
            ("MULTI", "simple", False),
            *[("INCR", "simple", True)] * len(queued),
            ("EXEC", "array", False),
        ]
        return Unit(client, server, [], events)
    if kind == "skip":
        client = cmd("CLIENT", "REPLY", "SKIP") + cmd("DEL", "k") + cmd("PING")
        events = [("CLIENT REPLY", "reply skip", False), ("DEL", "reply skip", False)]
        return Unit(client, b"+PONG\r\n", events, [("PING", "simple", False)])
    if kind == "off":
        client = cmd("CLIENT", "REPLY", "OFF") + cmd("SET", "k", "v") + cmd("CLIENT", "REPLY", "ON")
        events = [("CLIENT REPLY", "reply off", False), ("SET", "reply off", False)]
        return Unit(client, b"+OK\r\n", events, [("CLIENT REPLY", "simple", False)])
    if kind == "subscribe":  # in and out of subscribed mode, RESP2 or RESP3 alike
        opener = b"*" if protocol == 2 else b">"
        client = cmd("SUBSCRIBE", "a", "b") + cmd("UNSUBSCRIBE")
        server = (
            opener
            + b"3\r\n$9\r\nsubscribe\r\n$1\r\na\r\n:1\r\n"
            + opener
            + b"3\r\n$9\r\nsubscribe\r\n$1\r\nb\r\n:2\r\n"
        )
        server += opener + b"3\r\n$7\r\nmessage\r\n$1\r\na\r\n" + _bulk(draw(_STRINGS))
        server += opener + b"3\r\n$11\r\nunsubscribe\r\n$1\r\nb\r\n:1\r\n"
        server += opener + b"3\r\n$11\r\nunsubscribe\r\n$1\r\na\r\n:0\r\n"
        confirmed = "array" if opener == b"*" else "push"
        events = [("SUBSCRIBE", confirmed, False), ("push", "message"), ("UNSUBSCRIBE", confirmed, False)]
        return Unit(client, server, [], events)
    line = b'+1700000000.000001 [0 127.0.0.1:5000] "GET" "%s"\r\n' % draw(_WORDS)
    server = b"+OK\r\n" + line + b"+RESET\r\n"
    events = [("MONITOR", "simple", False), ("push", "monitor"), ("RESET", "simple", False)]
    return Unit(cmd("MONITOR") + cmd("RESET"), server, [], events)


@st.composite
def conversations(draw: st.DrawFn) -> list[Unit]:
    units: list[Unit] = []
    protocol = 2
    for _ in range(draw(st.integers(1, 6))):
        unit = draw(st.one_of(plain_units(), state_units(protocol)))
        if unit.client in (cmd("HELLO", "2"), cmd("HELLO", "3")):
            protocol = int(unit.client[-3:-2])
        elif unit.client.endswith(cmd("RESET")):
            protocol = 2
        units.append(unit)
    return units


def shape(event: RedisEvent) -> tuple[object, ...]:
    if isinstance(event, MessagePushed):
        return ("push", event.kind)
    said = event.reply.kind if event.reply is not None else event.unanswered
    return (event.name, said, event.queued)


def untimed(events: list[RedisEvent]) -> list[RedisEvent]:
    return [
        dataclasses.replace(e, time=0.0)
        if isinstance(e, MessagePushed)
        else dataclasses.replace(e, started=0.0, ended=None if e.ended is None else 0.0)
        for e in events
    ]


def feed(
    limits: dict[str, int], client: list[bytes], server: list[bytes], close: bool = True
) -> tuple[list[RedisEvent], str | None]:
    """Every client chunk, then every server chunk, then close."""
    analyzer = RespAnalyzer(**limits)  # type: ignore[arg-type]
    events: list[RedisEvent] = []
    for now, chunk in enumerate(client):
        events += analyzer.client_data(chunk, float(now))
    for now, chunk in enumerate(server):
        events += analyzer.server_data(chunk, float(now))
    if close:
        events += analyzer.close(99.0)
    return untimed(events), analyzer.stopped


def cuts_for(data: st.DataObject, wire: bytes) -> list[int]:
    return data.draw(st.lists(st.integers(0, len(wire)), max_size=12), label="cuts")


@FUZZ
@given(units=conversations(), limits=LIMITS, data=st.data())
def test_conversations_never_depend_on_chunking(
    units: list[Unit], limits: dict[str, int], data: st.DataObject
) -> None:
    client = b"".join(unit.client for unit in units)
    server = b"".join(unit.server for unit in units)
    expected, stopped = feed(limits, whole(client), whole(server))
    assert stopped is None
    assert [shape(e) for e in expected] == [e for u in units for e in u.on_client] + [
        e for u in units for e in u.on_server
    ]
    assert feed(limits, bytewise(client), bytewise(server)) == (expected, None)
    client_cuts, server_cuts = cuts_for(data, client), cuts_for(data, server)
    assert feed(limits, split_at(client, client_cuts), split_at(server, server_cuts)) == (expected, None)


@FUZZ
@given(units=conversations(), data=st.data())
def test_conversations_fed_command_by_command(units: list[Unit], data: st.DataObject) -> None:
    analyzer = RespAnalyzer()
    events: list[RedisEvent] = []
    for now, unit in enumerate(units):
        for chunk in split_at(unit.client, cuts_for(data, unit.client)):
            events += analyzer.client_data(chunk, float(now))
        for chunk in split_at(unit.server, cuts_for(data, unit.server)):
            events += analyzer.server_data(chunk, float(now) + 0.5)
    assert analyzer.close(99.0) == [] and analyzer.stopped is None
    assert [shape(e) for e in events] == [e for u in units for e in (*u.on_client, *u.on_server)]
    answered = [e for e in events if isinstance(e, CommandCompleted) and e.reply is not None]
    assert all(e.ended is not None and e.ended > e.started for e in answered)


# -- hypothesis: hostile input --


def _mutated(draw: st.DrawFn, units: list[Unit]) -> tuple[bytes, bytes]:
    client = b"".join(unit.client for unit in units)
    server = b"".join(unit.server for unit in units)
    side = draw(st.sampled_from(["client", "server", "both"]))
    if side != "server":
        client = mutate(draw, client)
    if side != "client":
        server = mutate(draw, server)
    return client, server


hostile = st.one_of(
    st.tuples(st.binary(max_size=300), st.binary(max_size=300)),
    st.composite(lambda draw: _mutated(draw, draw(conversations())))(),
)


@FUZZ
@given(streams=hostile, limits=LIMITS, data=st.data())
def test_hostile_input_only_stops_the_analysis(
    streams: tuple[bytes, bytes], limits: dict[str, int], data: st.DataObject
) -> None:
    client, server = streams
    expected = feed(limits, whole(client), whole(server))
    assert feed(limits, bytewise(client), bytewise(server)) == expected
    assert (
        feed(limits, split_at(client, cuts_for(data, client)), split_at(server, cuts_for(data, server)))
        == expected
    )
    # Interleaved anyhow: only events come out, and none once stopped.
    analyzer = RespAnalyzer(**limits)  # type: ignore[arg-type]
    pieces = [(True, c) for c in split_at(client, cuts_for(data, client))]
    pieces += [(False, c) for c in split_at(server, cuts_for(data, server))]
    order = data.draw(st.permutations(pieces), label="order")
    for from_client, chunk in order:
        stopped = analyzer.stopped
        events = analyzer.client_data(chunk, 1.0) if from_client else analyzer.server_data(chunk, 1.0)
        assert all(isinstance(e, (CommandCompleted, MessagePushed)) for e in events)
        if stopped is not None:
            assert events == []
    if analyzer.stopped is not None:
        assert analyzer.close(2.0) == []
