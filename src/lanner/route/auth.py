"""Checking client credentials against the configured users.

The username a client presents is kept whole on the connection (it may carry
routing parameters, `alice_country-us`, see `route.params`); `user_name` is
the part that names the account. `identify*` check the credentials (when the
listener requires them) and the parameters (always) in one step, so a bad
parameter is refused exactly like a bad password.
"""

from __future__ import annotations

import base64
import binascii
import hmac
from collections.abc import Iterable
from dataclasses import dataclass

from lanner.config.model import User
from lanner.errors import AuthFailed
from lanner.route.params import NO_PARAMS, SEPARATOR, ParamRules, RouteParams

PARAM_SEPARATOR = SEPARATOR


@dataclass(frozen=True, slots=True)
class Identity:
    account: str | None  # the verified account (None where no credentials are required)
    presented: str | None  # the username as the client wrote it
    params: RouteParams


def user_name(username: str) -> str:
    """The account part of a presented username (before any routing parameters)."""
    return username.split(PARAM_SEPARATOR, 1)[0]


class Authenticator:
    def __init__(self, users: Iterable[User], required: bool, params: ParamRules | None = None) -> None:
        self._users = {user.name: user for user in users}
        self.required = required
        self.params = params  # None: no vendors, so usernames carry no routing parameters

    def identify(self, username: str, password: str, required: bool) -> Identity:
        account = self.verify(username, password) if required else None
        return Identity(account, username, self._params(username, account))

    def identify_socks4(self, userid: str, required: bool) -> Identity:
        account = self.verify_socks4(userid) if required else None
        return Identity(account, userid or None, self._params(userid, account))

    def identify_basic(self, header: bytes | None, required: bool) -> Identity:
        if header is None and not required:
            return Identity(None, None, NO_PARAMS)
        try:
            username, password = _decode_basic(header)
        except AuthFailed:
            if required:
                raise
            return Identity(None, None, NO_PARAMS)  # not ours to judge where nothing is required
        return self.identify(username, password, required)

    def _params(self, presented: str, account: str | None) -> RouteParams:
        if not presented or self.params is None:
            return NO_PARAMS
        name = (
            account if account is not None and presented.startswith(account) else self._account_of(presented)
        )
        return self.params.parse(presented, len(name))

    def verify(self, username: str, password: str) -> str:
        """The account name if the credentials are good; raises AuthFailed otherwise."""
        name = self._account_of(username)
        user = self._users.get(name)
        # Compare even for an unknown user so timing does not reveal which names exist.
        expected = user.password if user else "\0unknown"
        if not hmac.compare_digest(expected.encode(), password.encode()) or user is None:
            raise AuthFailed(f"bad credentials for {username!r}")
        return name

    def _account_of(self, username: str) -> str:
        """The longest configured account name the username starts with (before a separator)."""
        if username in self._users:
            return username
        end = username.rfind(PARAM_SEPARATOR)
        while end > 0:
            if username[:end] in self._users:
                return username[:end]
            end = username.rfind(PARAM_SEPARATOR, 0, end)
        return user_name(username)

    def verify_socks4(self, userid: str) -> str:
        user = self._users.get(self._account_of(userid))
        if user is None or not user.socks4:
            raise AuthFailed(f"SOCKS4 userid {userid!r} may not identify alone")
        return user.name


def _decode_basic(header: bytes | None) -> tuple[str, str]:
    """(username, password) from a Proxy-Authorization value."""
    if header is None:
        raise AuthFailed("no Proxy-Authorization")
    scheme, _, token = header.partition(b" ")
    if scheme.lower() != b"basic":
        raise AuthFailed("Proxy-Authorization is not Basic")
    try:
        decoded = base64.b64decode(token.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise AuthFailed("malformed Basic credentials") from exc
    username, sep, password = decoded.partition(":")
    if not sep:
        raise AuthFailed("malformed Basic credentials")
    return username, password
