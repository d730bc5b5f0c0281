"""The flow filter language, parsed into a backend-neutral tree.

One syntax for `lanner flows`, the admin API and the web UI (docs/RECORDING.md,
"Filter syntax"). Terms are `field:value`; adjacent terms are and-ed; `and`,
`or`, `not` (or a leading `-`) and parentheses combine them, `not` binding
tightest, then `and`, then `or`. Bare words and "quoted phrases" are full-text
terms over URL, headers and body text.

Values are normalised here (statuses to integer ranges, durations to
milliseconds, sizes to bytes, times to epoch seconds), so a store only maps
fields to columns. Errors carry the position of the offending text.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Final, Literal

from lanner.config.model import parse_duration, parse_size

Op = Literal["=", "glob", "<", "<=", ">", ">=", "range", "text", "any", "contains"]
Value = str | int | float | tuple[float, float]

# field -> kind of value
_STRING_FIELDS: Final = (
    "host",
    "method",
    "path",
    "url",
    "proto",
    "scheme",
    "conn",
    "user",
    "listener",
    "client",
    "error",
    "cmd",
    "key",
    "sqlstate",
    "fingerprint",
    "category",
)
_CONTAINS_FIELDS: Final = ("sql",)  # a substring, case-insensitive; `*` a wildcard unless quoted
_TEXT_FIELDS: Final = ("body", "header")
_NUMBER_FIELDS: Final = ("status", "duration", "size", "id", "rows")
_TIME_FIELDS: Final = ("since", "until")
FIELDS: Final = _STRING_FIELDS + _CONTAINS_FIELDS + _TEXT_FIELDS + _NUMBER_FIELDS + _TIME_FIELDS
_LOWERCASE: Final = ("host", "proto", "scheme", "fingerprint", "category")
_UPPERCASE: Final = ("method", "cmd", "sqlstate")


class FilterError(ValueError):
    """A filter that does not parse; `position` is the offset of the offending text."""

    def __init__(self, message: str, position: int) -> None:
        super().__init__(f"{message} (at position {position})")
        self.message = message
        self.position = position


@dataclass(frozen=True, slots=True)
class Term:
    """One condition. `field` is "text" for bare words (full text over everything).

    op "=": equal; "glob": `*` wildcards; "<" ... ">=": compare; "range": a
    closed interval (lo, hi); "text": full-text phrase; "any": the field is set.
    """

    field: str
    op: Op
    value: Value


@dataclass(frozen=True, slots=True)
class And:
    items: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Or:
    items: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Not:
    item: Node


Node = Term | And | Or | Not


@dataclass(frozen=True, slots=True)
class Query:
    root: Node
    text: str


def parse(text: str, now: float | None = None) -> Query:
    """Parse a filter; raises FilterError. Relative times (`since:15m`) count back from `now`."""
    parser = _Parser(_tokens(text), time.time() if now is None else now, len(text))
    root = parser.expression()
    if parser.peek() is not None:
        token = parser.peek()
        assert token is not None
        raise FilterError(f"unexpected {token.text!r}", token.position)
    return Query(root, text)


def parse_optional(text: str | None, now: float | None = None) -> Query | None:
    """None for an empty filter (everything), else `parse`."""
    if text is None or not text.strip():
        return None
    return parse(text, now)


# --- tokens ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Token:
    kind: Literal["(", ")", "word", "phrase"]
    text: str  # a word as written (field:value with quotes removed from the value) or a phrase
    position: int
    quoted: bool = False  # the value (after "field:") was quoted: no wildcards, no operators


_SPECIAL: Final = '()"'


def _tokens(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    i, n = 0, len(text)
    while i < n:
        char = text[i]
        if char.isspace():
            i += 1
        elif char in "()":
            tokens.append(_Token(char, char, i))  # type: ignore[arg-type]
            i += 1
        elif char == '"':
            end = _closing_quote(text, i)
            tokens.append(_Token("phrase", _unquote(text[i + 1 : end]), i))
            i = end + 1
        else:
            start = i
            while i < n and not text[i].isspace() and text[i] not in _SPECIAL:
                i += 1
            word = text[start:i]
            if i < n and text[i] == '"' and word.endswith(":"):  # field:"quoted value"
                end = _closing_quote(text, i)
                tokens.append(_Token("word", word + _unquote(text[i + 1 : end]), start, quoted=True))
                i = end + 1
            elif word:
                tokens.append(_Token("word", word, start))
            else:  # a lone '"' is handled above; anything else is a parenthesis
                i += 1
    return tokens


def _closing_quote(text: str, start: int) -> int:
    i = start + 1
    while i < len(text):
        if text[i] == "\\":
            i += 2
            continue
        if text[i] == '"':
            return i
        i += 1
    raise FilterError("unterminated quote", start)


def _unquote(body: str) -> str:
    return re.sub(r"\\(.)", r"\1", body)


# --- grammar --------------------------------------------------------------------------


class _Parser:
    """expression := and ("or" and)* ; and := unary (["and"] unary)* ; unary := ("not"|"-") unary | atom."""

    def __init__(self, tokens: list[_Token], now: float, end: int) -> None:
        self.tokens = tokens
        self.i = 0
        self.now = now
        self.end = end

    def peek(self) -> _Token | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def _keyword(self, word: str) -> bool:
        token = self.peek()
        return token is not None and token.kind == "word" and token.text.lower() == word

    def expression(self) -> Node:
        items = [self.conjunction()]
        while self._keyword("or"):
            self.i += 1
            items.append(self.conjunction())
        return items[0] if len(items) == 1 else Or(tuple(items))

    def conjunction(self) -> Node:
        items = [self.unary()]
        while True:
            token = self.peek()
            if token is None or token.kind == ")" or self._keyword("or"):
                break
            if self._keyword("and"):
                self.i += 1
            items.append(self.unary())
        return items[0] if len(items) == 1 else And(tuple(items))

    def unary(self) -> Node:
        token = self.peek()
        if token is None:
            raise FilterError("expected a term", self.end)
        if self._keyword("not"):
            self.i += 1
            return Not(self.unary())
        if token.kind == "word" and token.text.startswith("-") and len(token.text) > 1 and not token.quoted:
            self.i += 1
            rest = token.text[1:]
            return Not(_word(_Token("word", rest, token.position + 1), self.now))
        return self.atom()

    def atom(self) -> Node:
        token = self.peek()
        assert token is not None
        self.i += 1
        if token.kind == "(":
            inner = self.expression()
            closing = self.peek()
            if closing is None or closing.kind != ")":
                raise FilterError("missing ')'", token.position)
            self.i += 1
            return inner
        if token.kind == ")":
            raise FilterError("unexpected ')'", token.position)
        if token.kind == "phrase":
            if not token.text.strip():
                raise FilterError("empty phrase", token.position)
            return Term("text", "text", token.text)
        if token.text.lower() in ("and", "or"):
            raise FilterError(f"{token.text!r} needs a term on each side", token.position)
        return _word(token, self.now)


def _word(token: _Token, now: float) -> Term:
    field, sep, value = token.text.partition(":")
    if not sep or not field.isidentifier():
        return Term("text", "text", token.text)  # a bare word, e.g. "timeout" or "a:b:c"-less text
    field = field.lower()
    if field not in FIELDS:
        raise FilterError(f"unknown field {field!r} (fields: {', '.join(FIELDS)})", token.position)
    position = token.position + len(field) + 1
    if value == "":
        raise FilterError(f"{field}: needs a value", position)
    if field in _CONTAINS_FIELDS:
        return Term(field, "glob" if "*" in value and not token.quoted else "contains", value)
    if token.quoted:
        return _quoted(field, value, position)
    if field in _TEXT_FIELDS:
        return Term(field, "text", value)
    if field in _STRING_FIELDS:
        return _string(field, value)
    if field in _TIME_FIELDS:
        return Term("started", ">=" if field == "since" else "<", _time(value, now, position))
    return _number(field, value, position)


def _quoted(field: str, value: str, position: int) -> Term:
    if field in _TEXT_FIELDS:
        return Term(field, "text", value)
    if field in _STRING_FIELDS:
        return Term(field, "=", _case(field, value))
    raise FilterError(f"{field}: takes a number, not a quoted string", position)


_PROTO_ALIASES: Final = {"postgresql": "postgres", "pg": "postgres"}


def _case(field: str, value: str) -> str:
    if field == "proto":
        return _PROTO_ALIASES.get(value.lower(), value.lower())
    if field in _LOWERCASE:
        return value.lower()
    if field in _UPPERCASE:
        return value.upper()
    return value


def _string(field: str, value: str) -> Term:
    if field == "error" and value == "*":
        return Term("error", "any", "")
    value = _case(field, value)
    return Term(field, "glob" if "*" in value else "=", value)


_COMPARISON: Final = re.compile(r"^(<=|>=|<|>|=)?(.*)$")


def _number(field: str, value: str, position: int) -> Term:
    if field == "status":
        klass = re.fullmatch(r"([1-5])xx", value.lower())
        if klass:
            base = int(klass.group(1)) * 100
            return Term("status", "range", (base, base + 99))
    if "-" in value[1:] and not value.startswith(("<", ">", "=")):
        low_text, _, high_text = value.partition("-")
        low, high = _amount(field, low_text, position), _amount(field, high_text, position)
        if low > high:
            raise FilterError(f"{field}: empty range {value!r}", position)
        return Term(field, "range", (low, high))
    match = _COMPARISON.match(value)
    assert match is not None
    operator = match.group(1) or "="
    if not match.group(2):
        raise FilterError(f"{field}: needs a value after {operator!r}", position + len(operator))
    return Term(field, operator, _amount(field, match.group(2), position))  # type: ignore[arg-type]


def _amount(field: str, text: str, position: int) -> float:
    try:
        if field == "duration":  # milliseconds
            return parse_duration(text if not text.replace(".", "", 1).isdigit() else text + "ms") * 1000.0
        if field == "size":
            return float(parse_size(text))
        number = int(text)
    except ValueError as exc:
        raise FilterError(f"{field}: bad value {text!r}", position) from exc
    if field == "status" and not 100 <= number <= 999:
        raise FilterError(f"status: {number} is not an HTTP status", position)
    return float(number)


def _time(value: str, now: float, position: int) -> float:
    try:
        return now - parse_duration(value)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(value)
    except ValueError as exc:
        raise FilterError(f"bad time {value!r} (a duration like 15m or an ISO date)", position) from exc
    return moment.timestamp()
