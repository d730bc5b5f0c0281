"""Checking client credentials against the configured users.

The username a client presents is kept whole on the connection (it may carry
routing parameters, `alice_country-us`); `user_name` is the part that names
the account.
"""

from __future__ import annotations

import base64
import binascii
import hmac
from collections.abc import Iterable

from lanner.config.model import User
from lanner.errors import AuthFailed

PARAM_SEPARATOR = "_"


def user_name(username: str) -> str:
    """The account part of a presented username (before any routing parameters)."""
    return username.split(PARAM_SEPARATOR, 1)[0]


class Authenticator:
    def __init__(self, users: Iterable[User], required: bool) -> None:
        self._users = {user.name: user for user in users}
        self.required = required

    def verify(self, username: str, password: str) -> str:
        """The account name if the credentials are good; raises AuthFailed otherwise."""
        name = username if username in self._users else user_name(username)
        user = self._users.get(name)
        # Compare even for an unknown user so timing does not reveal which names exist.
        expected = user.password if user else "\0unknown"
        if not hmac.compare_digest(expected.encode(), password.encode()) or user is None:
            raise AuthFailed(f"bad credentials for {username!r}")
        return name

    def verify_socks4(self, userid: str) -> str:
        user = self._users.get(userid) or self._users.get(user_name(userid))
        if user is None or not user.socks4:
            raise AuthFailed(f"SOCKS4 userid {userid!r} may not identify alone")
        return user.name

    def verify_basic(self, header: bytes | None) -> tuple[str, str]:
        """(account, presented username) from a Proxy-Authorization value."""
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
        return self.verify(username, password), username
