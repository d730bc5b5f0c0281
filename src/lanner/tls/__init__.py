"""TLS for interception: lanner's certificate authority and the leaf certificates it signs."""

from lanner.tls.ca import CaError, CertificateAuthority, ca_directory
from lanner.tls.leaves import IssuerStats, LeafIssuer, host_for_certificate

__all__ = [
    "CaError",
    "CertificateAuthority",
    "IssuerStats",
    "LeafIssuer",
    "ca_directory",
    "host_for_certificate",
]
