"""The gateway's failure taxonomy and what each failure looks like to a client.

Every way a proxied connection can fail is one class here, carrying the outcome
written to the connection log, the SOCKS5/SOCKS4 reply code and the HTTP status
the entry answers with. Entries never decide these mappings themselves; they
catch `GatewayError` and use its fields. OS errors are translated into this
taxonomy at exactly one boundary (`lanner.net.dial.map_dial_errors`).
"""

from __future__ import annotations

from enum import StrEnum


class Outcome(StrEnum):
    """How a connection ended, as written to the connection log."""

    OK = "ok"
    REFUSED = "refused"
    UNREACHABLE = "unreachable"
    NET_UNREACHABLE = "net_unreachable"
    UNRESOLVED = "unresolved"
    TIMEOUT = "timeout"
    RESET = "reset"
    AUTH_FAILED = "auth_failed"
    DENIED = "denied"
    BAD_REQUEST = "bad_request"
    UNSUPPORTED = "unsupported"
    HANDSHAKE_TIMEOUT = "handshake_timeout"
    IDLE_TIMEOUT = "idle_timeout"
    UPSTREAM_ERROR = "upstream_error"
    TLS_FAILED = "tls_failed"  # the client's TLS handshake with lanner failed (refused its certificate)
    UPSTREAM_TLS = "upstream_tls"  # the upstream's certificate did not verify, or its handshake failed
    NO_ROUTE = "no_route"
    UNAVAILABLE = "unavailable"  # no backend could take the request (none healthy, or breakers open)
    SHUTDOWN = "shutdown"
    CLOSED_BY_ADMIN = "closed_by_admin"  # DELETE /api/v1/connections/{uid}
    ERROR = "error"


# SOCKS5 reply codes, RFC 1928 section 6.
S5_SUCCEEDED = 0x00
S5_GENERAL_FAILURE = 0x01
S5_NOT_ALLOWED = 0x02
S5_NET_UNREACHABLE = 0x03
S5_HOST_UNREACHABLE = 0x04
S5_CONN_REFUSED = 0x05
S5_TTL_EXPIRED = 0x06
S5_CMD_NOT_SUPPORTED = 0x07
S5_ATYP_NOT_SUPPORTED = 0x08

# SOCKS4 reply codes: 90 granted, 91 rejected or failed, 92/93 identd failures.
S4_GRANTED = 90
S4_REJECTED = 91


class GatewayError(Exception):
    """A failure with a defined answer to the client."""

    outcome: Outcome = Outcome.ERROR
    socks5_reply: int = S5_GENERAL_FAILURE
    http_status: int = 502
    public: str | None = None  # what the client is told where the detail must stay private
    proxy_status: str | None = None  # RFC 9209 error type, sent in a Proxy-Status header

    def __init__(self, detail: str = "") -> None:
        super().__init__(detail or self.outcome.value)
        self.detail = detail or self.outcome.value


class Denied(GatewayError):
    outcome = Outcome.DENIED
    socks5_reply = S5_NOT_ALLOWED
    http_status = 403


class AuthFailed(GatewayError):
    outcome = Outcome.AUTH_FAILED
    socks5_reply = S5_NOT_ALLOWED
    http_status = 407


class Unresolved(GatewayError):
    outcome = Outcome.UNRESOLVED
    socks5_reply = S5_HOST_UNREACHABLE
    http_status = 502


class HostUnreachable(GatewayError):
    outcome = Outcome.UNREACHABLE
    socks5_reply = S5_HOST_UNREACHABLE
    http_status = 502


class NetUnreachable(GatewayError):
    outcome = Outcome.NET_UNREACHABLE
    socks5_reply = S5_NET_UNREACHABLE
    http_status = 502


class ConnectRefused(GatewayError):
    outcome = Outcome.REFUSED
    socks5_reply = S5_CONN_REFUSED
    http_status = 502


class ConnectTimeout(GatewayError):
    outcome = Outcome.TIMEOUT
    socks5_reply = S5_TTL_EXPIRED
    http_status = 504


class UpstreamFailed(GatewayError):
    """The upstream connection broke or answered something unusable."""

    outcome = Outcome.UPSTREAM_ERROR
    socks5_reply = S5_GENERAL_FAILURE
    http_status = 502


class UpstreamTlsFailed(GatewayError):
    """The upstream's TLS handshake failed: its certificate did not verify, or it spoke bad TLS."""

    outcome = Outcome.UPSTREAM_TLS
    socks5_reply = S5_GENERAL_FAILURE
    http_status = 502


class NoRoute(GatewayError):
    """No route of a router listener matches the name the client asked for (RFC 9110 15.5.20)."""

    outcome = Outcome.NO_ROUTE
    socks5_reply = S5_NOT_ALLOWED
    http_status = 421


class NotRouted(GatewayError):
    """No route of a reverse listener matches the request."""

    outcome = Outcome.NO_ROUTE
    socks5_reply = S5_NOT_ALLOWED
    http_status = 404


class NoBackend(GatewayError):
    """Every backend of the pool is down, ejected or drained."""

    outcome = Outcome.UNAVAILABLE
    http_status = 503


class Overloaded(GatewayError):
    """A backend's circuit breaker is open: too many connections, waiting or in-flight requests."""

    outcome = Outcome.UNAVAILABLE
    http_status = 503


class ResponseTimeout(GatewayError):
    """The backend did not start its response in time."""

    outcome = Outcome.TIMEOUT
    socks5_reply = S5_TTL_EXPIRED
    http_status = 504


class Unsupported(GatewayError):
    outcome = Outcome.UNSUPPORTED
    socks5_reply = S5_CMD_NOT_SUPPORTED
    http_status = 501


# Upstream proxy vendors: the client sees these generic answers only, never the vendor's words
# (its status text, body, headers, host or address stay in the detail, for the log and the record).


class VendorUnavailable(GatewayError):
    """No provider could take the tunnel: none serves the asked geo, breakers open, limits full."""

    outcome = Outcome.UNAVAILABLE
    http_status = 503
    public = "no upstream proxy is available"
    proxy_status = "destination_unavailable"


class VendorFailed(GatewayError):
    """Every provider tried failed its handshake (refused, reset, answered nonsense)."""

    outcome = Outcome.UPSTREAM_ERROR
    http_status = 502
    public = "the upstream proxy failed"
    proxy_status = "connection_terminated"


class VendorTimeout(GatewayError):
    """The providers tried did not finish their handshakes in time."""

    outcome = Outcome.TIMEOUT
    http_status = 502
    public = "the upstream proxy did not answer in time"
    proxy_status = "connection_timeout"


class VendorBadDestination(GatewayError):
    """The destination cannot be written into a vendor's handshake (not a host name or address)."""

    outcome = Outcome.UNRESOLVED
    socks5_reply = S5_HOST_UNREACHABLE
    http_status = 502
    public = "the destination cannot be reached through the upstream proxy"
    proxy_status = "destination_not_found"


class VendorTargetFailed(GatewayError):
    """The provider reached its exit but the destination refused or could not be reached."""

    outcome = Outcome.UNREACHABLE
    socks5_reply = S5_HOST_UNREACHABLE
    http_status = 502
    public = "the destination could not be reached"
    proxy_status = "connection_refused"
