"""The tls listener's entry: TLS terminated (certificate by SNI), plaintext on to a target.

The listening socket's TLS (`tls/sni_certs.py`) has finished the handshake
before this entry sees the connection. The target is the route matching the
SNI, else the listener's `target`; with `target_tls` the bytes are
re-encrypted towards it (verified unless `target_verify: false`). Analysis
and recording work as on a tcp listener, with the scheme https.
"""

from __future__ import annotations

from lanner.config.model import split_hostport
from lanner.entry.tcp import TcpEntry
from lanner.errors import Outcome
from lanner.net.relay import UpstreamEnd
from lanner.net.tls import start_client_tls
from lanner.tls.policy import shared_upstream_context


class TlsEntry(TcpEntry):
    scheme = "https"
    spliceable = False  # the client's bytes are TLS that lanner terminated

    def started(self) -> None:
        certificates = self.listener.certificates
        assert certificates is not None
        self.conn.sni = certificates.server_name(self.transport.get_extra_info("ssl_object"))
        super().started()
        self.conn.protocol = "tls"

    def target(self) -> tuple[str, int] | None:
        conn, config = self.conn, self.listener.config
        choice = self.listener.routes.choose(conn.sni, "tls")
        if choice is not None:
            conn.note("route", choice.describe(conn.sni))
            return split_hostport(choice.route.target)
        if config.target is not None:
            conn.note("route", f"default ({conn.sni or 'no name'}) -> {config.target}")
            return split_hostport(config.target)
        conn.note("route", f"none for {conn.sni or 'no name'}")
        conn.set_outcome(Outcome.NO_ROUTE, f"no route for {conn.sni or 'a client that sent no name'}")
        self.transport.close()
        return None

    async def secure(self, upstream: UpstreamEnd, host: str) -> None:
        config = self.listener.config
        if not config.target_tls:
            return
        context = shared_upstream_context(config.target_verify, config.target_ca_file, ())
        where = self.conn.dest or host
        timeout = self.listener.limits.connect_timeout
        upstream.transport = await start_client_tls(
            upstream.transport, upstream, context, host, timeout, where
        )
        self.conn.upstream = upstream.transport
