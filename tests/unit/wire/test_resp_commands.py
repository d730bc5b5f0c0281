"""The command table: names, categories, key positions, blocking and redaction rules."""

from __future__ import annotations

import pytest

from lanner.wire.resp_commands import CATEGORIES, COMMANDS, lookup, redacted_positions
from lanner.wire.resp_describe import Describer
from lanner.wire.resp_request import Request, split_inline


def describe(line: str, max_args: int = 64) -> tuple[str, str, tuple[bytes, ...], bool]:
    argv = split_inline(line.encode())
    request = Request(argv, [len(arg) for arg in argv], len(argv), False, 0)
    info, first = lookup(argv, len(argv))
    waiting = Describer(256, max_args, frozenset(), ())(info, first, request, 0.0)
    return waiting.name, waiting.category, waiting.keys, waiting.blocking


@pytest.mark.parametrize(
    ("line", "name", "category", "keys"),
    [
        # strings and bitmaps
        ("get k", "GET", "read", "k"),
        ("SET k v EX 10", "SET", "write", "k"),
        ("MGET a b c", "MGET", "read", "a b c"),
        ("MSET a 1 b 2 c 3", "MSET", "write", "a b c"),
        ("MSETNX a 1 b 2", "MSETNX", "write", "a b"),
        ("LCS a b LEN", "LCS", "read", "a b"),
        ("GETEX k PERSIST", "GETEX", "write", "k"),
        ("BITOP AND dest a b", "BITOP", "write", "dest a b"),
        ("BITCOUNT k 0 -1", "BITCOUNT", "read", "k"),
        ("SETBIT k 7 1", "SETBIT", "write", "k"),
        # hashes, lists, sets
        ("HSET h f v f2 v2", "HSET", "write", "h"),
        ("HGETALL h", "HGETALL", "read", "h"),
        ("LPUSH l a b", "LPUSH", "write", "l"),
        ("LMOVE src dst LEFT RIGHT", "LMOVE", "write", "src dst"),
        ("RPOPLPUSH src dst", "RPOPLPUSH", "write", "src dst"),
        ("LMPOP 2 a b LEFT COUNT 3", "LMPOP", "write", "a b"),
        ("SMEMBERS s", "SMEMBERS", "read", "s"),
        ("SINTERSTORE d a b", "SINTERSTORE", "write", "d a b"),
        ("SINTERCARD 2 a b LIMIT 5", "SINTERCARD", "read", "a b"),
        ("SMOVE a b m", "SMOVE", "write", "a b"),
        # sorted sets
        ("ZADD z 1 a", "ZADD", "write", "z"),
        ("ZUNIONSTORE dest 2 a b WEIGHTS 1 2", "ZUNIONSTORE", "write", "dest a b"),
        ("ZINTER 2 a b WITHSCORES", "ZINTER", "read", "a b"),
        ("ZRANGESTORE dst src 0 -1", "ZRANGESTORE", "write", "dst src"),
        ("ZMPOP 1 z MIN", "ZMPOP", "write", "z"),
        # streams
        ("XADD s * f v", "XADD", "write", "s"),
        ("XREAD COUNT 2 STREAMS a b 0 0", "XREAD", "read", "a b"),
        ("XREADGROUP GROUP g c STREAMS s >", "XREADGROUP", "write", "s"),
        ("XGROUP CREATE s g $ MKSTREAM", "XGROUP CREATE", "write", "s"),
        ("XINFO GROUPS s", "XINFO GROUPS", "read", "s"),
        ("XINFO HELP", "XINFO HELP", "read", ""),
        # keyspace
        ("DEL a b c", "DEL", "write", "a b c"),
        ("EXISTS a b", "EXISTS", "read", "a b"),
        ("RENAME a b", "RENAME", "write", "a b"),
        ("COPY a b DB 1", "COPY", "write", "a b"),
        ("EXPIRE k 10", "EXPIRE", "write", "k"),
        ("TYPE k", "TYPE", "read", "k"),
        ("SCAN 0 MATCH *", "SCAN", "read", ""),
        ("KEYS *", "KEYS", "read", ""),
        ("OBJECT FREQ k", "OBJECT FREQ", "read", "k"),
        ("MEMORY USAGE k SAMPLES 5", "MEMORY USAGE", "read", "k"),
        ("MEMORY STATS", "MEMORY STATS", "admin", ""),
        ("SORT k BY w_* LIMIT 0 5 GET # GET STORE STORE dst", "SORT", "write", "k dst"),
        ("SORT_RO k ALPHA", "SORT_RO", "read", "k"),
        ("MIGRATE h 6379 k 0 5000 COPY", "MIGRATE", "write", "k"),
        ('MIGRATE h 6379 "" 0 5000 AUTH KEYS KEYS a b', "MIGRATE", "write", "a b"),
        # hyperloglog, geo
        ("PFADD h a b", "PFADD", "write", "h"),
        ("PFCOUNT a b", "PFCOUNT", "read", "a b"),
        ("PFMERGE d a b", "PFMERGE", "write", "d a b"),
        ("GEOADD g 13.3 38.1 p", "GEOADD", "write", "g"),
        ("GEOSEARCH g FROMMEMBER p BYRADIUS 10 km", "GEOSEARCH", "read", "g"),
        ("GEOSEARCHSTORE d g FROMMEMBER p BYRADIUS 10 km", "GEOSEARCHSTORE", "write", "d g"),
        ("GEORADIUS g 15 37 200 km COUNT 3 STORE d", "GEORADIUS", "write", "g d"),
        ("GEORADIUSBYMEMBER_RO g p 10 km", "GEORADIUSBYMEMBER_RO", "read", "g"),
        # pub/sub: channels are not keys
        ("PUBLISH ch hi", "PUBLISH", "pubsub", ""),
        ("SSUBSCRIBE a b", "SSUBSCRIBE", "pubsub", ""),
        ("PUBSUB NUMSUB a", "PUBSUB NUMSUB", "pubsub", ""),
        # scripting
        ("EVAL script 2 k1 k2 a1", "EVAL", "scripting", "k1 k2"),
        ("EVALSHA_RO sha 1 k a", "EVALSHA_RO", "scripting", "k"),
        ("FCALL f 0 a", "FCALL", "scripting", ""),
        ("EVAL script x k", "EVAL", "scripting", ""),  # not a number of keys
        ("FUNCTION LOAD code", "FUNCTION LOAD", "scripting", ""),
        ("SCRIPT EXISTS sha", "SCRIPT EXISTS", "scripting", ""),
        # transactions, connection, administration, unknown
        ("WATCH a b", "WATCH", "transaction", "a b"),
        ("MULTI", "MULTI", "transaction", ""),
        ("CLIENT REPLY OFF", "CLIENT REPLY", "connection", ""),
        ("client setname app", "CLIENT SETNAME", "connection", ""),
        ("CLIENT KILL ID 5", "CLIENT KILL", "admin", ""),
        ("CLIENT", "CLIENT", "admin", ""),
        ("CONFIG GET maxmemory", "CONFIG GET", "admin", ""),
        ("FLUSHALL ASYNC", "FLUSHALL", "admin", ""),
        ("INFO memory", "INFO", "admin", ""),
        ("ACL WHOAMI", "ACL WHOAMI", "admin", ""),
        ("COMMAND DOCS get", "COMMAND DOCS", "connection", ""),
        ("MYCOMMAND a b", "MYCOMMAND", "other", ""),
    ],
)
def test_names_categories_and_keys(line: str, name: str, category: str, keys: str) -> None:
    assert describe(line)[:3] == (name, category, tuple(key.encode() for key in keys.split()))


def test_keys_are_bounded_and_never_past_the_arguments() -> None:
    assert describe("MSET " + " ".join(f"k{i} v{i}" for i in range(100)), max_args=5)[2] == (
        b"k0",
        b"k1",
        b"k2",
        b"k3",
        b"k4",
    )
    assert describe("BLPOP")[2] == ()
    assert describe("EVAL s 5 a")[2] == (b"a",)
    assert describe("ZUNIONSTORE d 9 a b")[2] == (b"d", b"a", b"b")


@pytest.mark.parametrize(
    ("line", "blocking"),
    [
        ("BLPOP a b 0", True),
        ("BRPOPLPUSH a b 0", True),
        ("BLMOVE a b LEFT LEFT 0", True),
        ("BLMPOP 0 1 a LEFT", True),
        ("BZMPOP 0 1 z MIN", True),
        ("BZPOPMAX z 0", True),
        ("WAITAOF 1 0 0", True),
        ("XREAD BLOCK 0 STREAMS s $", True),
        ("XREADGROUP GROUP g c BLOCK 5 STREAMS s >", True),
        ("XREAD STREAMS BLOCK $", False),
        ("XREADGROUP GROUP BLOCK c STREAMS s >", False),
        ("LPOP l", False),
    ],
)
def test_blocking(line: str, blocking: bool) -> None:
    assert describe(line)[3] is blocking


def test_the_table_is_consistent() -> None:
    for name, info in COMMANDS.items():
        assert info.category in CATEGORIES, name
        assert name.decode() == info.name
        for sub_name, sub in info.subcommands.items():
            assert info.container and sub.name == f"{info.name} {sub_name.decode()}"
            assert sub.category in CATEGORIES


@pytest.mark.parametrize(
    ("line", "secret"),
    [
        ("AUTH pw", [1]),
        ("AUTH user pw", [1, 2]),
        ("HELLO 3 AUTH user pw SETNAME app", [3, 4]),
        ("HELLO 3 SETNAME AUTH", []),
        ("CONFIG SET a 1 b 2", [3, 5]),
        ("MIGRATE h 6379 AUTH 0 5000 AUTH pw AUTH2 u p KEYS a", [7, 9, 10]),
        ("ACL SETUSER bob on >pw", [3, 4]),
        ("GET k", []),
    ],
)
def test_what_is_always_secret(line: str, secret: list[int]) -> None:
    argv = [word.encode() for word in line.split()]
    info, first = lookup(argv, len(argv))
    assert list(redacted_positions(info, argv, len(argv), first)) == secret
