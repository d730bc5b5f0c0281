"""The certificates a tls listener terminates with, chosen by the SNI each client sends.

Each configured certificate is loaded once into its own server `SSLContext`.
The listener's context carries an `sni_callback` that, during the handshake,
switches the connection to the context for the name asked: the exact name
first, then the most specific wildcard, then the default certificate (the
one marked `default`, else the first). A certificate's names are its
subjectAltName DNS entries unless the config lists them.
"""

from __future__ import annotations

import ssl
import weakref
from pathlib import Path

from cryptography import x509

from lanner.config.model import CertificateConfig


class CertificateError(Exception):
    """A configured certificate cannot be used (missing file, bad PEM, key mismatch)."""


def _names_of(path: str) -> list[str]:
    certificate = x509.load_pem_x509_certificate(Path(path).read_bytes())
    try:
        san = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    return [name.lower() for name in san.get_values_for_type(x509.DNSName)]


def _context(config: CertificateConfig) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(config.cert, config.key)
    except (OSError, ssl.SSLError) as exc:
        raise CertificateError(f"cannot load certificate {config.cert} with key {config.key}: {exc}") from exc
    return context


class SniCertificates:
    def __init__(self, configs: list[CertificateConfig]) -> None:
        self.exact: dict[str, ssl.SSLContext] = {}
        self.wildcards: list[tuple[str, ssl.SSLContext]] = []  # (".suffix", context), longest first
        default: ssl.SSLContext | None = None
        for config in configs:
            context = _context(config)
            try:
                names = [name.lower() for name in config.names] or _names_of(config.cert)
            except (OSError, ValueError) as exc:
                raise CertificateError(f"cannot read names from {config.cert}: {exc}") from exc
            for name in names:
                if name.startswith("*."):
                    self.wildcards.append((name[1:], context))
                else:
                    self.exact.setdefault(name, context)
            if config.default or default is None and not any(c.default for c in configs):
                default = default if default is not None and not config.default else context
        self.wildcards.sort(key=lambda item: len(item[0]), reverse=True)
        assert default is not None
        self.default = default
        self.listening = _context(next((c for c in configs if c.default), configs[0]))
        self.listening.sni_callback = self._choose
        # The name each handshake asked for: Python's ssl keeps no server-side record of it.
        self.asked: weakref.WeakKeyDictionary[ssl.SSLObject | ssl.SSLSocket, str] = (
            weakref.WeakKeyDictionary()
        )

    def context_for(self, name: str | None) -> ssl.SSLContext:
        if name:
            name = name.lower().rstrip(".")
            context = self.exact.get(name)
            if context is not None:
                return context
            for suffix, context in self.wildcards:
                if name.endswith(suffix) and len(name) > len(suffix):
                    return context
        return self.default

    def server_name(self, connection: ssl.SSLObject | ssl.SSLSocket | None) -> str | None:
        """The SNI the client sent on this (handshaken) connection."""
        return self.asked.get(connection) if connection is not None else None

    def _choose(self, connection: ssl.SSLObject | ssl.SSLSocket, name: str | None, _: ssl.SSLContext) -> None:
        if name:
            self.asked[connection] = name.lower()
        connection.context = self.context_for(name)
