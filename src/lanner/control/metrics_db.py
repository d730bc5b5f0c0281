"""Redis and PostgreSQL metrics, observed in the writer process as flows are built.

The proxy's loop pays nothing: latencies and errors are read from the
analyzer events the writer converts anyway (so what `record.sample` leaves
out or a full queue drops is not counted). Labels stay bounded: a Redis
command is named only if lanner's command table knows it (else "other"), a
SQL verb only if it is a PostgreSQL command word, and each writer process
names the first `FINGERPRINTS` distinct statement fingerprints it sees;
later ones are "other".
"""

from __future__ import annotations

from typing import Final

from prometheus_client import Counter, Histogram

from lanner.control.metrics import POSTGRES_ERRORS, POSTGRES_SECONDS, REDIS_ERRORS, REDIS_SECONDS
from lanner.record.model import FlowRecord
from lanner.wire import postgres as pg
from lanner.wire import resp
from lanner.wire.resp_commands import COMMANDS

FINGERPRINTS: Final = 50  # distinct fingerprint labels per writer process
OTHER: Final = "other"

# First words of PostgreSQL's command tags and statements, and the writer's own names of
# session events ("AUTH", "ERROR"): anything else a client typed is "other".
VERBS: Final = frozenset(
    """SELECT INSERT UPDATE DELETE MERGE COPY FETCH MOVE BEGIN START COMMIT ROLLBACK END ABORT
    SAVEPOINT RELEASE PREPARE EXECUTE DEALLOCATE DECLARE CLOSE CREATE ALTER DROP TRUNCATE GRANT
    REVOKE SET RESET SHOW LISTEN UNLISTEN NOTIFY LOCK VACUUM ANALYZE CLUSTER REINDEX REFRESH
    DISCARD CHECKPOINT EXPLAIN COMMENT SECURITY LOAD DO CALL IMPORT REASSIGN VALUES TABLE WITH
    AUTH ERROR""".split()
)


def redis_command(name: str) -> str:
    """`name` if the command table knows it ("CONFIG SET" with its subcommand), else its base, else other."""
    base, _, sub = name.partition(" ")
    info = COMMANDS.get(base.encode("latin-1", "replace"))
    if info is None:
        return OTHER
    if sub and sub.encode("latin-1", "replace") in info.subcommands:
        return name
    return base


def sql_verb(verb: str) -> str:
    return verb if verb in VERBS else OTHER


def sqlstate_class(sqlstate: str | None) -> str:
    """The SQLSTATE's class (its first two characters, Appendix A of PostgreSQL's manual)."""
    if sqlstate is None or len(sqlstate) != 5 or not sqlstate[:2].isalnum() or not sqlstate.isascii():
        return OTHER
    return sqlstate[:2].upper()


class FirstSeen:
    """Names the first `limit` distinct values; every later one is "other"."""

    def __init__(self, limit: int = FINGERPRINTS) -> None:
        self.limit = limit
        self.named: set[str] = set()

    def label(self, value: str) -> str:
        if value in self.named:
            return value
        if len(self.named) >= self.limit:
            return OTHER
        self.named.add(value)
        return value


class DbMetrics:
    """One writer process's observer (its fingerprint cap and label children)."""

    def __init__(self, fingerprints: int = FINGERPRINTS) -> None:
        self.fingerprints = FirstSeen(fingerprints)
        self._redis: dict[str, tuple[Histogram, Counter]] = {}

    def observe(self, event: object, record: FlowRecord) -> None:
        """One converted Redis or PostgreSQL event; pushes and session notices count nothing."""
        kind = type(event)
        if kind is resp.CommandCompleted:
            self._redis_command(event)  # type: ignore[arg-type]
        elif kind is pg.StatementCompleted:
            self._statement(event, record)  # type: ignore[arg-type]
        elif record.sqlstate is not None and record.error is not None:  # a session's error (AUTH, FATAL)
            POSTGRES_ERRORS.labels(sql_verb(record.method), sqlstate_class(record.sqlstate)).inc()

    def _redis_command(self, event: resp.CommandCompleted) -> None:
        children = self._redis.get(event.name)
        if children is None:
            name = redis_command(event.name)
            children = (REDIS_SECONDS.labels(name), REDIS_ERRORS.labels(name))
            if len(self._redis) < 4096:  # the raw names a client sends are not bounded
                self._redis[event.name] = children
        if event.ended is not None and event.reply is not None:
            children[0].observe(max(event.ended - event.started, 0.0))
        if event.reply is not None and event.reply.error is not None:
            children[1].inc()

    def _statement(self, event: pg.StatementCompleted, record: FlowRecord) -> None:
        verb = sql_verb(record.method)
        if event.ended is not None and not event.skipped:
            fingerprint = self.fingerprints.label(record.fingerprint) if record.fingerprint else OTHER
            POSTGRES_SECONDS.labels(verb, fingerprint).observe(max(event.ended - event.started, 0.0))
        if event.error is not None:
            POSTGRES_ERRORS.labels(verb, sqlstate_class(event.error.sqlstate)).inc()
