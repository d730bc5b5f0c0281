"""Leaf certificates and server contexts: real in-memory TLS handshakes, caches, and concurrency."""

from __future__ import annotations

import asyncio
import datetime
import os
import ssl
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from lanner.tls.ca import CertificateAuthority
from lanner.tls.leaves import LeafIssuer, host_for_certificate

NOW = datetime.datetime.now(datetime.UTC)


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> CertificateAuthority:
    return CertificateAuthority.load_or_create(str(tmp_path_factory.mktemp("ca")))


@pytest.fixture
def issuers(ca: CertificateAuthority) -> Iterator[list[LeafIssuer]]:
    made: list[LeafIssuer] = []
    yield made
    for issuer in made:
        issuer.close()


def make(issuers: list[LeafIssuer], ca: CertificateAuthority, cache: Path | None, **kw: int) -> LeafIssuer:
    issuer = LeafIssuer(ca, str(cache) if cache else None, **kw)
    issuers.append(issuer)
    return issuer


def handshake(
    server_context: ssl.SSLContext, ca: CertificateAuthority, server_hostname: str
) -> ssl.SSLObject:
    """A full TLS handshake between two SSLObjects, bytes pumped by hand; returns the client side."""
    client_context = ssl.create_default_context(cadata=ca.cert_pem.decode())
    client_context.verify_flags |= ssl.VERIFY_X509_STRICT
    client_context.set_alpn_protocols(["h2", "http/1.1"])
    to_server, to_client = ssl.MemoryBIO(), ssl.MemoryBIO()
    client_in, server_out = ssl.MemoryBIO(), ssl.MemoryBIO()
    client = client_context.wrap_bio(client_in, to_server, server_hostname=server_hostname)
    server = server_context.wrap_bio(to_client, server_out, server_side=True)
    done = {"client": False, "server": False}
    for _ in range(10):
        for side, tls in (("client", client), ("server", server)):
            if not done[side]:
                try:
                    tls.do_handshake()
                    done[side] = True
                except ssl.SSLWantReadError:
                    pass
        to_client.write(to_server.read())
        client_in.write(server_out.read())
        if all(done.values()):
            break
    assert all(done.values())
    client.write(b"ping")
    to_client.write(to_server.read())
    assert server.read() == b"ping"
    return client


def leaf_of(chain_pem: bytes) -> x509.Certificate:
    return x509.load_pem_x509_certificates(chain_pem)[0]


@pytest.mark.parametrize(
    ("host", "server_hostname"),
    [
        ("example.com", "example.com"),
        ("*.example.com", "api.example.com"),
        ("127.0.0.1", "127.0.0.1"),
        ("[::1]", "::1"),
        ("Mixed.Example.ORG.", "mixed.example.org"),
    ],
)
def test_handshake_verifies_against_the_ca(
    ca: CertificateAuthority, issuers: list[LeafIssuer], host: str, server_hostname: str
) -> None:
    issuer = make(issuers, ca, None)
    client = handshake(issuer.context_for(host), ca, server_hostname)

    assert client.selected_alpn_protocol() == "http/1.1"
    assert client.version() in ("TLSv1.2", "TLSv1.3")


def test_handshake_fails_for_another_name(ca: CertificateAuthority, issuers: list[LeafIssuer]) -> None:
    issuer = make(issuers, ca, None)

    with pytest.raises(ssl.SSLCertVerificationError):
        handshake(issuer.context_for("one.example"), ca, "two.example")


def test_leaf_fields(ca: CertificateAuthority, issuers: list[LeafIssuer]) -> None:
    issuer = make(issuers, ca, None)
    long_host = "a" * 60 + ".example.com"
    chain_pem, key_pem = issuer.issue(long_host)
    leaf = leaf_of(chain_pem)

    assert x509.load_pem_x509_certificates(chain_pem)[1] == ca.certificate
    key = serialization.load_pem_private_key(key_pem, password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey) and isinstance(key.curve, ec.SECP256R1)
    assert leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == long_host[:64]
    names = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == [long_host]
    assert leaf.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
    usage = leaf.extensions.get_extension_for_class(x509.KeyUsage)
    assert usage.critical and usage.value.digital_signature and not usage.value.key_encipherment
    extended = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(extended) == [ExtendedKeyUsageOID.SERVER_AUTH]
    authority = leaf.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    ca_key_id = ca.certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    assert authority.key_identifier == ca_key_id.digest
    assert leaf.serial_number > 0
    leaf.verify_directly_issued_by(ca.certificate)


def test_ip_hosts_get_an_ip_san(ca: CertificateAuthority, issuers: list[LeafIssuer]) -> None:
    issuer = make(issuers, ca, None)
    names = leaf_of(issuer.issue("::1")[0]).extensions.get_extension_for_class(x509.SubjectAlternativeName)

    assert [str(address) for address in names.value.get_values_for_type(x509.IPAddress)] == ["::1"]
    assert names.value.get_values_for_type(x509.DNSName) == []


def test_validity_at_most_398_days(ca: CertificateAuthority, issuers: list[LeafIssuer]) -> None:
    leaf = leaf_of(make(issuers, ca, None).issue("example.com")[0])

    assert leaf.not_valid_after_utc - leaf.not_valid_before_utc <= datetime.timedelta(days=398)
    assert leaf.not_valid_before_utc < NOW < leaf.not_valid_after_utc


def test_validity_never_outlasts_the_ca(issuers: list[LeafIssuer]) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "short-lived CA")])
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(NOW - datetime.timedelta(days=1))
        .not_valid_after(NOW + datetime.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(key, hashes.SHA256())
    )
    short_lived = CertificateAuthority(certificate, key, "/nonexistent/ca.pem")
    leaf = leaf_of(make(issuers, short_lived, None).issue("example.com")[0])

    assert leaf.not_valid_after_utc == certificate.not_valid_after_utc


def test_host_for_certificate() -> None:
    assert host_for_certificate("Example.COM.") == "example.com"
    assert host_for_certificate("[::1]") == "::1"
    assert host_for_certificate("[0:0::1]") == "::1"
    assert host_for_certificate("10.0.0.1") == "10.0.0.1"
    assert host_for_certificate("*.Example.com") == "*.example.com"


def test_memory_lru_is_bounded(ca: CertificateAuthority, issuers: list[LeafIssuer]) -> None:
    issuer = make(issuers, ca, None, memory_entries=2)
    first = issuer.context_for("a.example")
    issuer.context_for("b.example")
    assert issuer.context_for("a.example") is first  # a is now the most recent
    third = issuer.context_for("c.example")  # evicts b

    assert issuer.stats.memory_hits == 1
    assert issuer.context_for("c.example") is third
    assert issuer.context_for("a.example") is first
    issuer.context_for("b.example")
    assert issuer.stats.issued == 4
    assert issuer.stats.memory_hits == 3


def test_disk_cache_is_reused_by_a_new_issuer(
    ca: CertificateAuthority, issuers: list[LeafIssuer], tmp_path: Path
) -> None:
    cache = tmp_path / "leaves"
    make(issuers, ca, cache).context_for("example.com")
    (entry,) = cache.iterdir()
    assert stat.S_IMODE(entry.stat().st_mode) == 0o600
    assert stat.S_IMODE(cache.stat().st_mode) == 0o700

    again = make(issuers, ca, cache)
    handshake(again.context_for("example.com"), ca, "example.com")

    assert (again.stats.disk_hits, again.stats.issued) == (1, 0)


def test_cache_file_names_are_safe(
    ca: CertificateAuthority, issuers: list[LeafIssuer], tmp_path: Path
) -> None:
    cache = tmp_path / "leaves"
    issuer = make(issuers, ca, cache)
    for host in ("../../etc/passwd", "*.example.com", "a" * 300, "bücher.example"):
        issuer.context_for(host)

    names = os.listdir(cache)
    assert len(names) == 4
    assert all("/" not in name and len(name) < 255 and not name.startswith("..") for name in names)


def test_leaf_from_a_foreign_ca_is_reissued(
    ca: CertificateAuthority, issuers: list[LeafIssuer], tmp_path: Path
) -> None:
    other = CertificateAuthority.load_or_create(str(tmp_path / "other-ca"))
    make(issuers, other, tmp_path / "other").context_for("example.com")
    (foreign,) = (tmp_path / "other").iterdir()
    cache = tmp_path / "ours"
    cache.mkdir(mode=0o700)
    (cache / foreign.name).write_bytes(foreign.read_bytes())

    issuer = make(issuers, ca, cache)
    handshake(issuer.context_for("example.com"), ca, "example.com")

    assert (issuer.stats.disk_hits, issuer.stats.issued) == (0, 1)
    leaf_of((cache / foreign.name).read_bytes()).verify_directly_issued_by(ca.certificate)


def test_leaf_about_to_expire_is_reissued(
    ca: CertificateAuthority, issuers: list[LeafIssuer], tmp_path: Path
) -> None:
    cache = tmp_path / "leaves"
    make(issuers, ca, cache).context_for("example.com")
    (entry,) = cache.iterdir()
    key = ec.generate_private_key(ec.SECP256R1())
    expiring = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "example.com")]))
        .issuer_name(ca.certificate.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - datetime.timedelta(days=1))
        .not_valid_after(NOW + datetime.timedelta(days=3))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("example.com")]), critical=False)
        .sign(ca.key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    entry.write_bytes(key_pem + expiring.public_bytes(serialization.Encoding.PEM) + ca.cert_pem)

    issuer = make(issuers, ca, cache)
    issuer.context_for("example.com")

    assert (issuer.stats.disk_hits, issuer.stats.issued) == (0, 1)
    assert leaf_of(entry.read_bytes()).not_valid_after_utc > NOW + datetime.timedelta(days=300)


def test_damaged_cache_file_is_reissued(
    ca: CertificateAuthority, issuers: list[LeafIssuer], tmp_path: Path
) -> None:
    cache = tmp_path / "leaves"
    make(issuers, ca, cache).context_for("example.com")
    (entry,) = cache.iterdir()
    entry.write_bytes(b"-----BEGIN CERTIFICATE-----\ngarbage\n-----END CERTIFICATE-----\n")

    issuer = make(issuers, ca, cache)
    handshake(issuer.context_for("example.com"), ca, "example.com")

    assert issuer.stats.issued == 1


def test_async_memory_hit_does_not_suspend(ca: CertificateAuthority, issuers: list[LeafIssuer]) -> None:
    issuer = make(issuers, ca, None)
    context = issuer.context_for("example.com")
    coroutine = issuer.context("example.com")

    with pytest.raises(StopIteration) as stopped:
        coroutine.send(None)

    assert stopped.value.value is context


def test_async_many_hosts_at_once(
    ca: CertificateAuthority, issuers: list[LeafIssuer], tmp_path: Path
) -> None:
    issuer = make(issuers, ca, tmp_path / "leaves")

    async def burst() -> list[ssl.SSLContext]:
        return await asyncio.gather(*(issuer.context(f"host{i}.example") for i in range(200)))

    contexts = asyncio.run(burst())

    assert len({id(context) for context in contexts}) == 200
    assert issuer.stats.issued == 200
    handshake(contexts[123], ca, "host123.example")


def test_async_burst_to_one_host_issues_once(ca: CertificateAuthority, issuers: list[LeafIssuer]) -> None:
    issuer = make(issuers, ca, None)

    async def burst() -> list[ssl.SSLContext]:
        return await asyncio.gather(*(issuer.context("new.example") for _ in range(50)))

    contexts = asyncio.run(burst())

    assert len({id(context) for context in contexts}) == 1
    assert issuer.stats.issued == 1


def test_async_cancelled_waiter_does_not_cancel_the_others(
    ca: CertificateAuthority, issuers: list[LeafIssuer]
) -> None:
    issuer = make(issuers, ca, None)

    async def scenario() -> ssl.SSLContext:
        impatient = asyncio.create_task(issuer.context("example.com"))
        patient = asyncio.create_task(issuer.context("example.com"))
        await asyncio.sleep(0)
        impatient.cancel()
        return await patient

    context = asyncio.run(scenario())

    assert issuer.stats.issued == 1
    assert issuer.context_for("example.com") is context
