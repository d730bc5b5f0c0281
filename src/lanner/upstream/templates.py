"""Rendering lanner's routing parameters into a vendor's own credential strings.

A template is literal text with `{field}` placeholders and `[optional groups]`:
a group is written only when every field inside it has a value, so
`customer-X[-cc-{country}][-sessid-{session}]` becomes `customer-X-cc-DE` for a
client that asked for Germany and no session. A field outside any group must
have a value (from the client or the provider's `defaults`) or the provider
cannot serve the connection.

Vendor session ids are derived, never stored: an HMAC of the client's account
and session (with the session's period and rotation count) encoded in the
vendor's charset and length. Every worker and every node with the same
`session_secret` derives the same id, so the vendor keeps the same exit.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass

from lanner.config.vendors import GEO_PARAMS, FieldFormat, ProviderConfig, SessionFormat, TtlFormat
from lanner.route.params import RouteParams

_PART = re.compile(r"\[([^\]]*)\]|([^\[]+)")
_FIELD = re.compile(r"\{([a-z_]+)\}")
_CHARSETS = {
    "alnum": "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ",
    "lower_alnum": "0123456789abcdefghijklmnopqrstuvwxyz",
    "digits": "0123456789",
    "hex": "0123456789abcdef",
}
_TTL_FACTORS = {"s": 1, "m": 60, "h": 3600}


@dataclass(frozen=True, slots=True)
class _Group:
    text: str  # with {field} placeholders
    fields: tuple[str, ...]
    optional: bool


class CredentialTemplate:
    def __init__(self, template: str) -> None:
        self.groups = []
        for part in _PART.finditer(template):
            optional = part.group(1) is not None
            text = part.group(1) if optional else part.group(2)
            self.groups.append(_Group(text, tuple(_FIELD.findall(text)), optional))
        self.fields = frozenset(field for group in self.groups for field in group.fields)
        self.required = frozenset(
            field for group in self.groups if not group.optional for field in group.fields
        )

    def render(self, values: Mapping[str, str]) -> str:
        """The credential string; raises KeyError naming a required field without a value."""
        out = []
        for group in self.groups:
            if group.optional and not all(field in values for field in group.fields):
                continue
            out.append(_FIELD.sub(lambda match: values[match.group(1)], group.text))
        return "".join(out)


def vendor_session_id(secret: bytes, parts: tuple[str, ...], fmt: SessionFormat) -> str:
    """A session id in the vendor's charset and length, derived from `parts` by HMAC."""
    digest = hmac.new(secret, "\0".join(parts).encode(), hashlib.sha512).digest()
    number = int.from_bytes(digest, "big")
    alphabet = _CHARSETS[fmt.charset]
    chars = []
    for _ in range(fmt.length):
        number, index = divmod(number, len(alphabet))
        chars.append(alphabet[index])
    return "".join(chars)


def ttl_text(seconds: float, fmt: TtlFormat) -> str:
    """A lifetime in the vendor's unit, within its bounds (rounded up: never shorter than asked)."""
    bounded = min(max(seconds, fmt.min), fmt.max)
    number = max(1, math.ceil(bounded / _TTL_FACTORS[fmt.unit] - 1e-9))
    return f"{number}{fmt.unit}" if fmt.suffix else str(number)


def geo_text(value: str, fmt: FieldFormat) -> str:
    text = value.replace("+", fmt.space)
    if fmt.case == "lower":
        text = text.lower()
    elif fmt.case == "upper":
        text = text.upper()
    return fmt.prefix + text


class Credentials:
    """One provider's templates, with its defaults, formats and geo capability."""

    def __init__(self, provider: ProviderConfig) -> None:
        self.provider = provider
        self.username = CredentialTemplate(provider.username) if provider.username is not None else None
        self.password = CredentialTemplate(provider.password) if provider.password is not None else None
        templates = [template for template in (self.username, self.password) if template is not None]
        self.fields = frozenset(field for template in templates for field in template.fields)
        self.required = frozenset(field for template in templates for field in template.required)
        self.countries = frozenset(provider.countries)

    def serves(self, params: RouteParams) -> bool:
        """Whether this provider can carry the geo the client asked for."""
        geo = params.geo
        if any(key not in self.fields for key in geo):
            return False
        country = geo.get("country") or self.provider.defaults.get("country")
        if self.countries and (country is None or country.lower() not in self.countries):
            return False
        defaults = self.provider.defaults
        return all(key in geo or key in defaults for key in self.required if key in GEO_PARAMS)

    def values(
        self, account: str | None, params: RouteParams, session: str | None, ttl: float
    ) -> dict[str, str]:
        provider = self.provider
        values: dict[str, str] = {}
        geo = {**provider.defaults, **params.geo}
        for key, value in geo.items():
            values[key] = geo_text(value, provider.fields.get(key) or FieldFormat())
        if account is not None:
            values["user"] = account
        if session is not None:
            values["session"] = session
            values["ttl"] = ttl_text(ttl, provider.ttl)
        return values

    def render(self, values: Mapping[str, str]) -> tuple[str | None, str | None]:
        """(username, password) for the vendor; None where the vendor takes none."""
        username = self.username.render(values) if self.username is not None else None
        password = self.password.render(values) if self.password is not None else None
        if username is not None and password is None:
            password = ""
        return username, password
