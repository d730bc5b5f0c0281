"""Leaf certificates for intercepted hosts, and the server SSLContexts that present them.

`LeafIssuer.context(host)` answers from a bounded in-memory LRU of ready
contexts; a miss (disk cache, else a new leaf, then a new context: about a
millisecond of CPU) runs in a two-thread pool, and concurrent misses for one
host share a single future. Leaves are kept on disk so restarts and sibling
workers reuse them.

Must never: run a miss on the event loop, touch the LRU or the in-flight table
from a pool thread, or write a leaf key that others could read.
"""

from __future__ import annotations

import asyncio
import datetime
import functools
import hashlib
import ipaddress
import logging
import os
import re
import ssl
import tempfile
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from lanner.tls.ca import BACKDATE, CaError, CertificateAuthority, make_private_dir, write_atomically

log = logging.getLogger("lanner")

# Browsers and Apple reject server certificates valid for more than 398 days
# (CA/Browser Forum Baseline Requirements 6.3.2); 397 plus the backdated day is 398.
LEAF_VALIDITY = datetime.timedelta(days=397)
RENEW_BEFORE = datetime.timedelta(days=7)
CN_MAX = 64  # RFC 5280 ub-common-name
_UNSAFE = re.compile(r"[^a-z0-9.-]")
_MEMFD = hasattr(os, "memfd_create") and os.path.isdir("/proc/self/fd")


def host_for_certificate(name: str) -> str:
    """The form a host is issued and cached under: lower case, no trailing dot or IPv6 brackets."""
    host = name.lower().rstrip(".")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    try:
        return str(ipaddress.ip_address(host))  # one spelling per address: "::0:1" is "::1"
    except ValueError:
        return host


@dataclass(slots=True)
class IssuerStats:
    issued: int = 0
    disk_hits: int = 0
    memory_hits: int = 0


@dataclass(frozen=True, slots=True)
class _Leaf:
    certificate: x509.Certificate
    chain_pem: bytes  # the leaf, then the CA
    key_pem: bytes


@dataclass(frozen=True, slots=True)
class _Ready:
    context: ssl.SSLContext
    renew_at: datetime.datetime
    from_disk: bool


class LeafIssuer:
    """Issues leaves signed by `ca` and caches the server contexts presenting them."""

    def __init__(self, ca: CertificateAuthority, cache_dir: str | None, memory_entries: int = 1024) -> None:
        if memory_entries < 1:
            raise ValueError(f"memory_entries must be at least 1, got {memory_entries}")
        if cache_dir is not None:
            make_private_dir(cache_dir)
        self._ca = ca
        self._ca_pem = ca.cert_pem
        self._authority_key_id = _authority_key_id(ca)
        self._cache_dir = cache_dir
        self.memory_entries = memory_entries
        self.stats = IssuerStats()
        self._memory: OrderedDict[str, _Ready] = OrderedDict()
        self._pending: dict[str, asyncio.Future[_Ready]] = {}
        self._executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="lanner-certs")

    def issue(self, host: str) -> tuple[bytes, bytes]:
        """A new leaf for `host`: (certificate chain PEM, private key PEM). Touches no cache."""
        leaf = self._issue(host_for_certificate(host))
        return leaf.chain_pem, leaf.key_pem

    def context_for(self, host: str) -> ssl.SSLContext:
        """The server context for `host`, built in this thread on a miss (for synchronous callers)."""
        host = host_for_certificate(host)
        ready = self._cached(host)
        if ready is None:
            ready = self._build(host)
            self._remember(host, ready)
        return ready.context

    async def context(self, host: str) -> ssl.SSLContext:
        """The server context for `host`; a miss runs in the pool, shared by concurrent callers."""
        host = host_for_certificate(host)
        ready = self._cached(host)
        if ready is not None:
            return ready.context
        pending = self._pending.get(host)
        if pending is None:
            pending = asyncio.get_running_loop().run_in_executor(self._executor, self._build, host)
            self._pending[host] = pending
            pending.add_done_callback(functools.partial(self._built, host))
        # shield: one caller giving up must not cancel the miss the others wait for
        ready = await asyncio.shield(pending)
        return ready.context

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)

    # --- on the caller's (event loop) thread -----------------------------------------

    def _cached(self, host: str) -> _Ready | None:
        ready = self._memory.get(host)
        if ready is None:
            return None
        if _now() >= ready.renew_at:
            del self._memory[host]
            return None
        self._memory.move_to_end(host)
        self.stats.memory_hits += 1
        return ready

    def _remember(self, host: str, ready: _Ready) -> None:
        if ready.from_disk:
            self.stats.disk_hits += 1
        else:
            self.stats.issued += 1
        self._memory[host] = ready
        self._memory.move_to_end(host)
        while len(self._memory) > self.memory_entries:
            self._memory.popitem(last=False)

    def _built(self, host: str, future: asyncio.Future[_Ready]) -> None:
        del self._pending[host]
        if not future.cancelled() and future.exception() is None:
            self._remember(host, future.result())

    # --- in a pool thread: disk, signing and contexts, no shared state ---------------

    def _build(self, host: str) -> _Ready:
        if self._cache_dir is None:
            return self._ready(self._issue(host), None)
        path = self._cache_path(self._cache_dir, host)
        cached = self._from_disk(path)
        if cached is not None:
            return cached
        leaf = self._issue(host)
        try:
            write_atomically(path, leaf.key_pem + leaf.chain_pem, 0o600)
        except OSError as exc:
            log.warning("leaf cache: cannot write %s (%s); serving %s from memory", path, exc.strerror, host)
            return self._ready(leaf, None)
        return self._ready(leaf, path)

    def _ready(self, leaf: _Leaf, path: str | None) -> _Ready:
        context = _load_file(path) if path else _load_pem(leaf.key_pem + leaf.chain_pem)
        return _Ready(context, self._renew_at(leaf.certificate), from_disk=False)

    def _from_disk(self, path: str) -> _Ready | None:
        """The cached leaf at `path` if it is ours and not about to expire, else None."""
        try:
            with open(path, "rb") as file:
                certificate = x509.load_pem_x509_certificates(file.read())[0]
            certificate.verify_directly_issued_by(self._ca.certificate)
        except FileNotFoundError:
            return None
        except (ValueError, TypeError, InvalidSignature, IndexError):
            return None  # damaged, or signed by a CA since replaced: issue a new one
        renew_at = self._renew_at(certificate)
        if _now() >= renew_at:
            return None
        try:
            context = _load_file(path)
        except ssl.SSLError:
            return None  # the key does not match the certificate: issue a new pair
        return _Ready(context, renew_at, from_disk=True)

    def _renew_at(self, certificate: x509.Certificate) -> datetime.datetime:
        """A week before the leaf expires, unless the CA ends first and a new leaf could not outlast it."""
        not_after = certificate.not_valid_after_utc
        return not_after if not_after >= self._ca.not_after else not_after - RENEW_BEFORE

    @staticmethod
    def _cache_path(cache_dir: str, host: str) -> str:
        digest = hashlib.sha256(host.encode("utf-8", "surrogatepass")).hexdigest()
        readable = _UNSAFE.sub("_", host).strip(".")[:48] or "_"  # for people listing the directory
        return os.path.join(cache_dir, f"{readable}-{digest}.pem")

    def _issue(self, host: str) -> _Leaf:
        now = _now()
        not_after = min(now + LEAF_VALIDITY, self._ca.not_after)
        if not_after <= now:
            directory = os.path.dirname(self._ca.path)
            raise CaError(
                f"the CA in {directory} expired on {not_after:%Y-%m-%d}; remove it to make a new one"
            )
        alt_name = _general_name(host)
        key = ec.generate_private_key(ec.SECP256R1())
        certificate = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host[:CN_MAX])]))
            .issuer_name(self._ca.certificate.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - BACKDATE)
            .not_valid_after(not_after)
            .add_extension(x509.SubjectAlternativeName([alt_name]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_SIGNING_ONLY, critical=True)  # ECDSA keys sign; they never encipher
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(self._authority_key_id, critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(self._ca.key, hashes.SHA256())
        )
        key_pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        chain_pem = certificate.public_bytes(serialization.Encoding.PEM) + self._ca_pem
        return _Leaf(certificate, chain_pem, key_pem)


_SIGNING_ONLY = x509.KeyUsage(
    digital_signature=True,
    content_commitment=False,
    key_encipherment=False,
    data_encipherment=False,
    key_agreement=False,
    key_cert_sign=False,
    crl_sign=False,
    encipher_only=False,
    decipher_only=False,
)


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _general_name(host: str) -> x509.GeneralName:
    if not host:
        raise CaError("cannot issue a certificate for an empty host name")
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return x509.DNSName(_a_label(host))
    return x509.IPAddress(address)


def _a_label(host: str) -> str:
    """Certificates carry internationalised names in their ASCII (punycode) form, RFC 5280 7.2."""
    if host.isascii():
        return host
    try:
        return host.encode("idna").decode("ascii")
    except UnicodeError as exc:
        raise CaError(f"cannot issue a certificate for {host!r}: not a valid host name") from exc


def _authority_key_id(ca: CertificateAuthority) -> x509.AuthorityKeyIdentifier:
    try:
        subject_key_id = ca.certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    except x509.ExtensionNotFound:  # a CA brought from elsewhere may lack one
        return x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key())
    return x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(subject_key_id)


def _server_context() -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_alpn_protocols(["http/1.1"])
    context.num_tickets = 1  # enough for a client to resume; OpenSSL's default of 2 costs more per handshake
    return context


def _load_file(path: str) -> ssl.SSLContext:
    context = _server_context()
    context.load_cert_chain(path)  # the key is in the same file
    return context


def _load_pem(pem: bytes) -> ssl.SSLContext:
    """load_cert_chain reads only files: hand it an anonymous in-memory one where Linux has them."""
    if _MEMFD:
        with os.fdopen(os.memfd_create("lanner-leaf"), "wb") as file:
            file.write(pem)
            file.flush()
            return _load_file(f"/proc/self/fd/{file.fileno()}")
    with tempfile.NamedTemporaryFile(suffix=".pem") as file:  # mode 0600, removed on close
        file.write(pem)
        file.flush()
        return _load_file(file.name)
