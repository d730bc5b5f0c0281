"""lanner's own certificate authority: one key and self-signed certificate on disk.

`CertificateAuthority.load_or_create(directory)` finds or makes `ca.pem` and
`ca.key` in `directory` (by convention `<data_dir>/ca/`). Creation happens under
an exclusive lock so that workers starting together end with one CA.

This module must never write the private key where anyone but the owner could
read it, not even for an instant, and never load a key that others can read.
"""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import os
import secrets
import stat
from collections.abc import Iterator

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

CERT_FILE = "ca.pem"
KEY_FILE = "ca.key"
LOCK_FILE = ".lock"
CA_VALIDITY = datetime.timedelta(days=3650)
BACKDATE = datetime.timedelta(days=1)  # tolerate clients whose clocks run behind

CaKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


class CaError(Exception):
    """The CA cannot be created, loaded or used; the message says how to fix it."""


def ca_directory(data_dir: str) -> str:
    """Where the CA of a config with this `data_dir` lives."""
    return os.path.join(data_dir, "ca")


class CertificateAuthority:
    """A CA certificate with its private key, ready to sign leaf certificates."""

    def __init__(self, certificate: x509.Certificate, key: CaKey, path: str, created: bool = False) -> None:
        self.certificate = certificate
        self.key = key
        self.path = path
        self.created = created  # this call generated it (`lanner ca init` reports that)

    @classmethod
    def load_or_create(cls, directory: str) -> CertificateAuthority:
        make_private_dir(directory)
        cert_path = os.path.join(directory, CERT_FILE)
        key_path = os.path.join(directory, KEY_FILE)
        with _exclusive_lock(os.path.join(directory, LOCK_FILE)):
            if os.path.exists(cert_path):
                return cls(*_load(cert_path, key_path), cert_path)
            # A key without a certificate is a creation that crashed halfway: the key
            # never signed anything anyone trusts, so replacing it is safe.
            certificate, key = _generate()
            key_pem = key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
            write_atomically(key_path, key_pem, 0o600, durable=True)
            write_atomically(cert_path, certificate.public_bytes(serialization.Encoding.PEM), 0o644, True)
            return cls(certificate, key, cert_path, created=True)

    @property
    def cert_pem(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.PEM)

    @property
    def cert_der(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.DER)

    @property
    def fingerprint_sha256(self) -> str:
        return self.certificate.fingerprint(hashes.SHA256()).hex(":").upper()

    @property
    def not_after(self) -> datetime.datetime:
        return self.certificate.not_valid_after_utc


def write_atomically(path: str, data: bytes, mode: int, durable: bool = False) -> None:
    """Write `path` whole or not at all; the file has `mode` from its first byte on."""
    temporary = f"{path}.{secrets.token_hex(6)}.tmp"
    fd = os.open(temporary, os.O_CREAT | os.O_EXCL | os.O_WRONLY, mode & 0o600)
    try:
        with os.fdopen(fd, "wb") as file:
            os.fchmod(fd, mode)  # the umask may have narrowed it; widening to `mode` is intended
            file.write(data)
            if durable:
                file.flush()
                os.fsync(fd)
        os.replace(temporary, path)
    except BaseException:
        _remove_quietly(temporary)
        raise


def _remove_quietly(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def make_private_dir(directory: str) -> None:
    """Create `directory` (and parents) with mode 0700; leave an existing one as it is."""
    try:
        os.makedirs(directory, mode=0o700)
    except FileExistsError:
        return
    except OSError as exc:
        raise CaError(f"cannot create {directory}: {exc.strerror}") from exc
    os.chmod(directory, 0o700)  # makedirs' mode is narrowed by the umask; make it exact


@contextlib.contextmanager
def _exclusive_lock(path: str) -> Iterator[None]:
    """flock on a lock file: held by one open file (so one process) at a time."""
    try:
        fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o600)
    except OSError as exc:
        raise CaError(f"cannot open the lock file {path}: {exc.strerror}") from exc
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def _load(cert_path: str, key_path: str) -> tuple[x509.Certificate, CaKey]:
    try:
        key_stat = os.stat(key_path)
    except FileNotFoundError:
        raise CaError(
            f"{cert_path} exists but its key {key_path} does not; "
            f"restore the key, or remove {cert_path} to create a new CA"
        ) from None
    if key_stat.st_mode & 0o077:
        mode = stat.S_IMODE(key_stat.st_mode)
        raise CaError(
            f"{key_path} can be read by group or others (mode {mode:04o}); fix with: chmod 600 {key_path}"
        )
    try:
        with open(cert_path, "rb") as file:
            certificate = x509.load_pem_x509_certificate(file.read())
        with open(key_path, "rb") as file:
            key = serialization.load_pem_private_key(file.read(), password=None)
    except OSError as exc:
        raise CaError(f"cannot read the CA: {exc.filename}: {exc.strerror}") from exc
    except (ValueError, TypeError) as exc:
        raise CaError(f"cannot parse the CA in {os.path.dirname(cert_path)}: {exc}") from exc
    if not isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
        raise CaError(f"{key_path}: unsupported key type {type(key).__name__} (use EC or RSA)")
    _check_pair(certificate, key, cert_path, key_path)
    return certificate, key


def _check_pair(certificate: x509.Certificate, key: CaKey, cert_path: str, key_path: str) -> None:
    spki = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    if certificate.public_key().public_bytes(*spki) != key.public_key().public_bytes(*spki):
        raise CaError(f"{key_path} is not the key of {cert_path}; restore the matching pair")
    try:
        constraints = certificate.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        constraints = None
    if constraints is None or not constraints.ca:
        raise CaError(f"{cert_path} is not a CA certificate (no BasicConstraints CA:TRUE)")


def _generate() -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, "lanner CA"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "lanner"),
        ]
    )
    now = datetime.datetime.now(datetime.UTC)
    usage = x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=True,
        crl_sign=True,
        encipher_only=False,
        decipher_only=False,
    )
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now + CA_VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(usage, critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return certificate, key
