"""What lanner knows about Redis commands: category, key positions, blocking, what to redact.

Key positions follow Redis' own command table (first key, last key, step, counted in the
whole argv, the command name being argv[0]); the few commands whose keys are found by
a count or a keyword have named finders. A command not listed is "other", with no keys.
This module only describes commands: it never parses bytes and holds no state.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Final

KeyFinder = Callable[[Sequence[bytes], int], "range | list[int]"]

NO_KEYS: Final = range(0)
CATEGORIES: Final = frozenset(
    {"read", "write", "admin", "pubsub", "transaction", "scripting", "connection", "other"}
)

# name              category     keys          notes
_TABLE: Final = """
APPEND              write        1,1,1
DECR                write        1,1,1
DECRBY              write        1,1,1
GET                 read         1,1,1
GETDEL              write        1,1,1
GETEX               write        1,1,1
GETRANGE            read         1,1,1
GETSET              write        1,1,1
INCR                write        1,1,1
INCRBY              write        1,1,1
INCRBYFLOAT         write        1,1,1
LCS                 read         1,2,1
MGET                read         1,-1,1
MSET                write        1,-1,2
MSETNX              write        1,-1,2
PSETEX              write        1,1,1
SET                 write        1,1,1
SETEX               write        1,1,1
SETNX               write        1,1,1
SETRANGE            write        1,1,1
STRLEN              read         1,1,1
SUBSTR              read         1,1,1
BITCOUNT            read         1,1,1
BITFIELD            write        1,1,1
BITFIELD_RO         read         1,1,1
BITOP               write        2,-1,1
BITPOS              read         1,1,1
GETBIT              read         1,1,1
SETBIT              write        1,1,1
HDEL                write        1,1,1
HEXISTS             read         1,1,1
HEXPIRE             write        1,1,1
HEXPIREAT           write        1,1,1
HEXPIRETIME         read         1,1,1
HGET                read         1,1,1
HGETALL             read         1,1,1
HGETDEL             write        1,1,1
HGETEX              write        1,1,1
HINCRBY             write        1,1,1
HINCRBYFLOAT        write        1,1,1
HKEYS               read         1,1,1
HLEN                read         1,1,1
HMGET               read         1,1,1
HMSET               write        1,1,1
HPERSIST            write        1,1,1
HPEXPIRE            write        1,1,1
HPEXPIREAT          write        1,1,1
HPEXPIRETIME        read         1,1,1
HPTTL               read         1,1,1
HRANDFIELD          read         1,1,1
HSCAN               read         1,1,1
HSET                write        1,1,1
HSETEX              write        1,1,1
HSETNX              write        1,1,1
HSTRLEN             read         1,1,1
HTTL                read         1,1,1
HVALS               read         1,1,1
BLMOVE              write        1,2,1         blocking
BLMPOP              write        numkeys@2     blocking
BLPOP               write        1,-2,1        blocking
BRPOP               write        1,-2,1        blocking
BRPOPLPUSH          write        1,2,1         blocking
LINDEX              read         1,1,1
LINSERT             write        1,1,1
LLEN                read         1,1,1
LMOVE               write        1,2,1
LMPOP               write        numkeys@1
LPOP                write        1,1,1
LPOS                read         1,1,1
LPUSH               write        1,1,1
LPUSHX              write        1,1,1
LRANGE              read         1,1,1
LREM                write        1,1,1
LSET                write        1,1,1
LTRIM               write        1,1,1
RPOP                write        1,1,1
RPOPLPUSH           write        1,2,1
RPUSH               write        1,1,1
RPUSHX              write        1,1,1
SADD                write        1,1,1
SCARD               read         1,1,1
SDIFF               read         1,-1,1
SDIFFSTORE          write        1,-1,1
SINTER              read         1,-1,1
SINTERCARD          read         numkeys@1
SINTERSTORE         write        1,-1,1
SISMEMBER           read         1,1,1
SMEMBERS            read         1,1,1
SMISMEMBER          read         1,1,1
SMOVE               write        1,2,1
SPOP                write        1,1,1
SRANDMEMBER         read         1,1,1
SREM                write        1,1,1
SSCAN               read         1,1,1
SUNION              read         1,-1,1
SUNIONSTORE         write        1,-1,1
BZMPOP              write        numkeys@2     blocking
BZPOPMAX            write        1,-2,1        blocking
BZPOPMIN            write        1,-2,1        blocking
ZADD                write        1,1,1
ZCARD               read         1,1,1
ZCOUNT              read         1,1,1
ZDIFF               read         numkeys@1
ZDIFFSTORE          write        dest+numkeys@2
ZINCRBY             write        1,1,1
ZINTER              read         numkeys@1
ZINTERCARD          read         numkeys@1
ZINTERSTORE         write        dest+numkeys@2
ZLEXCOUNT           read         1,1,1
ZMPOP               write        numkeys@1
ZMSCORE             read         1,1,1
ZPOPMAX             write        1,1,1
ZPOPMIN             write        1,1,1
ZRANDMEMBER         read         1,1,1
ZRANGE              read         1,1,1
ZRANGEBYLEX         read         1,1,1
ZRANGEBYSCORE       read         1,1,1
ZRANGESTORE         write        1,2,1
ZRANK               read         1,1,1
ZREM                write        1,1,1
ZREMRANGEBYLEX      write        1,1,1
ZREMRANGEBYRANK     write        1,1,1
ZREMRANGEBYSCORE    write        1,1,1
ZREVRANGE           read         1,1,1
ZREVRANGEBYLEX      read         1,1,1
ZREVRANGEBYSCORE    read         1,1,1
ZREVRANK            read         1,1,1
ZSCAN               read         1,1,1
ZSCORE              read         1,1,1
ZUNION              read         numkeys@1
ZUNIONSTORE         write        dest+numkeys@2
XACK                write        1,1,1
XADD                write        1,1,1
XAUTOCLAIM          write        1,1,1
XCLAIM              write        1,1,1
XDEL                write        1,1,1
XGROUP              write        -             container
XGROUP CREATE       write        2,2,1
XGROUP CREATECONSUMER write      2,2,1
XGROUP DELCONSUMER  write        2,2,1
XGROUP DESTROY      write        2,2,1
XGROUP SETID        write        2,2,1
XINFO               read         -             container
XINFO CONSUMERS     read         2,2,1
XINFO GROUPS        read         2,2,1
XINFO STREAM        read         2,2,1
XLEN                read         1,1,1
XPENDING            read         1,1,1
XRANGE              read         1,1,1
XREAD               read         streams       block-option
XREADGROUP          write        streams       block-option
XREVRANGE           read         1,1,1
XSETID              write        1,1,1
XTRIM               write        1,1,1
COPY                write        1,2,1
DBSIZE              read         -
DEL                 write        1,-1,1
DUMP                read         1,1,1
EXISTS              read         1,-1,1
EXPIRE              write        1,1,1
EXPIREAT            write        1,1,1
EXPIRETIME          read         1,1,1
KEYS                read         -
MEMORY              admin        -             container
MEMORY USAGE        read         2,2,1
MIGRATE             write        migrate       redact-migrate
MOVE                write        1,1,1
OBJECT              read         -             container
OBJECT ENCODING     read         2,2,1
OBJECT FREQ         read         2,2,1
OBJECT IDLETIME     read         2,2,1
OBJECT REFCOUNT     read         2,2,1
PERSIST             write        1,1,1
PEXPIRE             write        1,1,1
PEXPIREAT           write        1,1,1
PEXPIRETIME         read         1,1,1
PTTL                read         1,1,1
RANDOMKEY           read         -
RENAME              write        1,2,1
RENAMENX            write        1,2,1
RESTORE             write        1,1,1
SCAN                read         -
SORT                write        sort
SORT_RO             read         1,1,1
SWAPDB              write        -
TOUCH               read         1,-1,1
TTL                 read         1,1,1
TYPE                read         1,1,1
UNLINK              write        1,-1,1
PFADD               write        1,1,1
PFCOUNT             read         1,-1,1
PFMERGE             write        1,-1,1
GEOADD              write        1,1,1
GEODIST             read         1,1,1
GEOHASH             read         1,1,1
GEOPOS              read         1,1,1
GEORADIUS           write        geo-store
GEORADIUSBYMEMBER   write        geo-store
GEORADIUSBYMEMBER_RO read        1,1,1
GEORADIUS_RO        read         1,1,1
GEOSEARCH           read         1,1,1
GEOSEARCHSTORE      write        1,2,1
PSUBSCRIBE          pubsub       -
PUBLISH             pubsub       -
PUBSUB              pubsub       -             container
PUNSUBSCRIBE        pubsub       -
SPUBLISH            pubsub       -
SSUBSCRIBE          pubsub       -
SUBSCRIBE           pubsub       -
SUNSUBSCRIBE        pubsub       -
UNSUBSCRIBE         pubsub       -
EVAL                scripting    numkeys@2
EVALSHA             scripting    numkeys@2
EVALSHA_RO          scripting    numkeys@2
EVAL_RO             scripting    numkeys@2
FCALL               scripting    numkeys@2
FCALL_RO            scripting    numkeys@2
FUNCTION            scripting    -             container
SCRIPT              scripting    -             container
DISCARD             transaction  -
EXEC                transaction  -
MULTI               transaction  -
UNWATCH             transaction  -
WATCH               transaction  1,-1,1
ASKING              connection   -
AUTH                connection   -             redact-all
CLIENT              admin        -             container
CLIENT CACHING      connection   -
CLIENT GETNAME      connection   -
CLIENT GETREDIR     connection   -
CLIENT ID           connection   -
CLIENT INFO         connection   -
CLIENT NO-EVICT     connection   -
CLIENT NO-TOUCH     connection   -
CLIENT REPLY        connection   -
CLIENT SETINFO      connection   -
CLIENT SETNAME      connection   -
CLIENT TRACKING     connection   -
CLIENT TRACKINGINFO connection   -
COMMAND             connection   -             container
ECHO                connection   -
HELLO               connection   -             redact-hello
PING                connection   -
QUIT                connection   -
READONLY            connection   -
READWRITE           connection   -
RESET               connection   -
SELECT              connection   -
WAIT                connection   -             blocking
WAITAOF             connection   -             blocking
ACL                 admin        -             container
ACL SETUSER         admin        -             redact-rules
BGREWRITEAOF        admin        -
BGSAVE              admin        -
CLUSTER             admin        -             container
CONFIG              admin        -             container
CONFIG SET          admin        -             redact-values
DEBUG               admin        -
FAILOVER            admin        -
FLUSHALL            admin        -
FLUSHDB             admin        -
INFO                admin        -
LASTSAVE            admin        -
LATENCY             admin        -             container
LOLWUT              admin        -
MODULE              admin        -             container
MONITOR             admin        -
PFDEBUG             admin        1,1,1
PFSELFTEST          admin        -
PSYNC               admin        -
REPLCONF            admin        -
REPLICAOF           admin        -
ROLE                admin        -
SAVE                admin        -
SHUTDOWN            admin        -
SLAVEOF             admin        -
SLOWLOG             admin        -             container
SYNC                admin        -
TIME                admin        -
"""


class CommandInfo:
    """One command (or container subcommand) as the analyzer needs it."""

    __slots__ = (
        "name",
        "category",
        "keys",
        "span",
        "blocking",
        "block_option",
        "redact",
        "container",
        "subcommands",
    )

    def __init__(self, name: str, category: str, keys: str, notes: Sequence[str]) -> None:
        self.name = name
        self.category = category
        self.keys = _finder(keys)  # None: no keys at all
        self.span = _span(keys)  # (first, last, step) when that says where the keys are
        self.blocking = "blocking" in notes
        self.block_option = "block-option" in notes  # blocking only with a BLOCK argument (XREAD)
        self.redact = next((note[7:] for note in notes if note.startswith("redact-")), "")
        self.container = "container" in notes  # named with its subcommand: CONFIG SET, XINFO STREAM
        self.subcommands: dict[bytes, CommandInfo] = {}

    def subcommand(self, name: bytes) -> CommandInfo:
        """The subcommand `name` (upper-case); one unknown to the table inherits the category only."""
        found = self.subcommands.get(name)
        if found is None:
            found = CommandInfo(f"{self.name} {name.decode('latin-1')}", self.category, "-", ())
        return found


def _range_finder(first: int, last: int, step: int) -> KeyFinder:
    def finder(argv: Sequence[bytes], count: int) -> range:
        stop = last + 1 if last >= 0 else count + last + 1
        return range(first, min(stop, count), step)

    return finder


def _numkeys_finder(at: int, dest: bool) -> KeyFinder:
    # EVAL script numkeys key..., ZUNIONSTORE dest numkeys key...
    def finder(argv: Sequence[bytes], count: int) -> range | list[int]:
        numkeys = parse_count(argv[at]) if at < len(argv) else None
        keys = range(at + 1, min(at + 1 + (numkeys or 0), count))
        return [1, *keys] if dest and count > 1 else keys

    return finder


def _streams_keys(argv: Sequence[bytes], count: int) -> range:
    # XREAD [COUNT n] [BLOCK ms] STREAMS key... id...: the first half of what follows STREAMS.
    for index in range(1, len(argv)):
        if argv[index].upper() == b"STREAMS":
            return range(index + 1, index + 1 + (count - index - 1) // 2)
    return NO_KEYS


def _migrate_keys(argv: Sequence[bytes], count: int) -> list[int]:
    # MIGRATE host port key|"" db timeout [COPY] [REPLACE] [AUTH pw] [AUTH2 user pw] [KEYS key...]
    keys = [3] if len(argv) > 3 and argv[3] else []
    index = 6
    while index < len(argv):
        word = argv[index].upper()
        if word == b"KEYS":
            return keys + list(range(index + 1, count))
        index += 2 if word == b"AUTH" else 3 if word == b"AUTH2" else 1
    return keys


def _sort_keys(argv: Sequence[bytes], count: int) -> list[int]:
    # SORT key [BY pattern] [LIMIT offset count] [GET pattern...] [ASC|DESC] [ALPHA] [STORE dest]
    keys = [1] if count > 1 else []
    skip = {b"BY": 2, b"LIMIT": 3, b"GET": 2}
    index = 2
    while index < len(argv):
        word = argv[index].upper()
        if word == b"STORE" and index + 1 < count:
            keys.append(index + 1)
        index += skip.get(word, 1)
    return keys


def _geo_store_keys(argv: Sequence[bytes], count: int) -> list[int]:
    # GEORADIUS key ... [STORE key] [STOREDIST key]; the other options take numbers or nothing.
    keys = [1] if count > 1 else []
    for index in range(2, min(len(argv), count - 1)):
        if argv[index].upper() in (b"STORE", b"STOREDIST"):
            keys.append(index + 1)
    return keys


_SPECIAL_FINDERS: Final[dict[str, KeyFinder]] = {
    "streams": _streams_keys,
    "migrate": _migrate_keys,
    "sort": _sort_keys,
    "geo-store": _geo_store_keys,
}


def _finder(spec: str) -> KeyFinder | None:
    if spec == "-":
        return None
    if spec in _SPECIAL_FINDERS:
        return _SPECIAL_FINDERS[spec]
    if "@" in spec:
        kind, _, at = spec.partition("@")
        return _numkeys_finder(int(at), dest=kind == "dest+numkeys")
    first, last, step = (int(part) for part in spec.split(","))
    return _range_finder(first, last, step)


def _span(spec: str) -> tuple[int, int, int] | None:
    if "," not in spec:
        return None
    first, last, step = (int(part) for part in spec.split(","))
    return first, last, step


def _load(table: str) -> dict[bytes, CommandInfo]:
    commands: dict[bytes, CommandInfo] = {}
    for row in table.strip().splitlines():
        words = row.split()
        if words[1] in CATEGORIES:
            commands[words[0].encode()] = CommandInfo(words[0], words[1], words[2], words[3:])
        else:  # a container's subcommand: CONFIG SET, XINFO STREAM...
            info = CommandInfo(" ".join(words[:2]), words[2], words[3], words[4:])
            commands[words[0].encode()].subcommands[words[1].encode()] = info
    return commands


COMMANDS: Final = _load(_TABLE)


def parse_count(text: bytes) -> int | None:
    """A non-negative decimal as Redis' string2ll accepts it (no sign, no leading zero), or None."""
    if text.isdigit() and (text[:1] != b"0" or len(text) == 1):
        return int(text)
    return None


def lookup(argv: Sequence[bytes], count: int) -> tuple[CommandInfo, int]:
    """The command `argv` names and the argv index of its first argument (2 after a subcommand)."""
    base = argv[0].upper()
    info = COMMANDS.get(base)
    if info is None:
        return CommandInfo(base.decode("latin-1"), "other", "-", ()), 1
    if info.container and count > 1:
        return info.subcommand(argv[1].upper()), 2
    return info, 1


def redacted_positions(
    info: CommandInfo, argv: Sequence[bytes], count: int, first_arg: int
) -> range | list[int]:
    """The argv indexes whose values are secrets whatever the configuration says."""
    rule = info.redact
    if not rule:
        return NO_KEYS
    if rule == "all":  # AUTH [username] password
        return range(first_arg, count)
    if rule == "values":  # CONFIG SET parameter value [parameter value ...]
        return range(first_arg + 1, count, 2)
    if rule == "rules":  # ACL SETUSER username [rule ...]
        return range(first_arg + 1, count)
    # HELLO [protover [AUTH username password] [SETNAME name]];
    # MIGRATE host port key db timeout [COPY] [REPLACE] [AUTH password] [AUTH2 username password] ...
    secret = {b"AUTH": 2} if rule == "hello" else {b"AUTH": 1, b"AUTH2": 2}
    positions: list[int] = []
    index = first_arg if rule == "hello" else 6
    while index < len(argv):
        taken = secret.get(argv[index].upper(), 0)
        positions.extend(range(index + 1, min(index + 1 + taken, count)))
        index += 1 + taken
    return positions
