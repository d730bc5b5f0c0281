"""The CA on disk: creation, file modes, reloading, refusals, concurrent creation, and `lanner ca`."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from lanner.cli import main
from lanner.tls.ca import CaError, CertificateAuthority, ca_directory


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_creates_ca_files_with_private_modes(tmp_path: Path) -> None:
    directory = tmp_path / "data" / "ca"
    ca = CertificateAuthority.load_or_create(str(directory))

    assert ca.created
    assert ca.path == str(directory / "ca.pem")
    assert mode(directory) == 0o700
    assert mode(directory / "ca.key") == 0o600
    assert mode(directory / "ca.pem") == 0o644
    assert not [name for name in os.listdir(directory) if name.endswith(".tmp")]


def test_certificate_is_a_self_signed_p256_ca(tmp_path: Path) -> None:
    ca = CertificateAuthority.load_or_create(str(tmp_path))
    certificate = x509.load_pem_x509_certificate((tmp_path / "ca.pem").read_bytes())
    key = serialization.load_pem_private_key((tmp_path / "ca.key").read_bytes(), password=None)

    assert isinstance(key, ec.EllipticCurvePrivateKey)
    assert isinstance(key.curve, ec.SECP256R1)
    assert certificate.subject == certificate.issuer
    assert certificate.subject.rfc4514_string() == "O=lanner,CN=lanner CA"
    certificate.verify_directly_issued_by(certificate)
    constraints = certificate.extensions.get_extension_for_class(x509.BasicConstraints)
    assert constraints.critical and constraints.value.ca and constraints.value.path_length == 0
    usage = certificate.extensions.get_extension_for_class(x509.KeyUsage)
    assert usage.critical and usage.value.key_cert_sign and usage.value.crl_sign
    assert usage.value.digital_signature
    certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
    lifetime = certificate.not_valid_after_utc - certificate.not_valid_before_utc
    assert 3650 <= lifetime.days <= 3652
    assert ca.cert_der == certificate.public_bytes(serialization.Encoding.DER)
    assert ca.cert_pem == (tmp_path / "ca.pem").read_bytes()


def test_reload_gives_the_same_ca(tmp_path: Path) -> None:
    first = CertificateAuthority.load_or_create(str(tmp_path))
    again = CertificateAuthority.load_or_create(str(tmp_path))

    assert not again.created
    assert again.fingerprint_sha256 == first.fingerprint_sha256
    assert len(first.fingerprint_sha256.split(":")) == 32


def test_ca_directory_is_under_data_dir() -> None:
    assert ca_directory("/var/lib/lanner") == "/var/lib/lanner/ca"


def test_refuses_a_key_others_can_read(tmp_path: Path) -> None:
    CertificateAuthority.load_or_create(str(tmp_path))
    key_path = tmp_path / "ca.key"
    key_path.chmod(0o640)

    with pytest.raises(CaError, match=r"ca\.key.*0640.*chmod 600"):
        CertificateAuthority.load_or_create(str(tmp_path))


def test_refuses_a_key_that_does_not_match(tmp_path: Path) -> None:
    CertificateAuthority.load_or_create(str(tmp_path / "one"))
    CertificateAuthority.load_or_create(str(tmp_path / "two"))
    (tmp_path / "one" / "ca.key").write_bytes((tmp_path / "two" / "ca.key").read_bytes())

    with pytest.raises(CaError, match="not the key of"):
        CertificateAuthority.load_or_create(str(tmp_path / "one"))


def test_refuses_a_certificate_without_its_key(tmp_path: Path) -> None:
    CertificateAuthority.load_or_create(str(tmp_path))
    (tmp_path / "ca.key").unlink()

    with pytest.raises(CaError, match="does not"):
        CertificateAuthority.load_or_create(str(tmp_path))


def test_a_key_left_by_a_crashed_creation_is_replaced(tmp_path: Path) -> None:
    CertificateAuthority.load_or_create(str(tmp_path))
    (tmp_path / "ca.pem").unlink()

    ca = CertificateAuthority.load_or_create(str(tmp_path))

    assert ca.created
    assert CertificateAuthority.load_or_create(str(tmp_path)).fingerprint_sha256 == ca.fingerprint_sha256


def test_concurrent_threads_create_one_ca(tmp_path: Path) -> None:
    directory = str(tmp_path / "ca")
    start = threading.Barrier(8)
    fingerprints: list[str] = []

    def create() -> None:
        start.wait()
        fingerprints.append(CertificateAuthority.load_or_create(directory).fingerprint_sha256)

    threads = [threading.Thread(target=create) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(fingerprints) == 8
    assert len(set(fingerprints)) == 1
    assert CertificateAuthority.load_or_create(directory).fingerprint_sha256 == fingerprints[0]


def test_concurrent_processes_create_one_ca(tmp_path: Path) -> None:
    directory = str(tmp_path / "ca")
    code = (
        "import sys; from lanner.tls.ca import CertificateAuthority as C; "
        "print(C.load_or_create(sys.argv[1]).fingerprint_sha256)"
    )
    workers = [
        subprocess.Popen([sys.executable, "-c", code, directory], stdout=subprocess.PIPE, text=True)
        for _ in range(6)
    ]
    fingerprints = {worker.communicate(timeout=60)[0].strip() for worker in workers}

    assert all(worker.returncode == 0 for worker in workers)
    assert len(fingerprints) == 1
    assert CertificateAuthority.load_or_create(directory).fingerprint_sha256 in fingerprints


# --- lanner ca ------------------------------------------------------------------------


def test_cli_init_then_init_again(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["ca", "init", "--data-dir", str(tmp_path)]) == 0
    created = capsys.readouterr().out
    assert main(["ca", "--data-dir", str(tmp_path), "init"]) == 0
    again = capsys.readouterr().out

    fingerprint = CertificateAuthority.load_or_create(str(tmp_path / "ca")).fingerprint_sha256
    assert created.splitlines() == [
        f"created the CA: {tmp_path / 'ca' / 'ca.pem'}",
        f"SHA-256 fingerprint: {fingerprint}",
    ]
    assert again.splitlines()[0] == f"the CA already exists: {tmp_path / 'ca' / 'ca.pem'}"
    assert again.splitlines()[1] == created.splitlines()[1]


def test_cli_path_takes_data_dir_from_the_config(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("LANNER_CONFIG", raising=False)
    config = tmp_path / "lanner.yaml"
    config.write_text(f"data_dir: {tmp_path / 'data'}\n")

    assert main(["ca", "path", "-c", str(config)]) == 0

    assert capsys.readouterr().out == f"{tmp_path / 'data' / 'ca' / 'ca.pem'}\n"
    assert (tmp_path / "data" / "ca" / "ca.key").exists()


def test_cli_export_pem(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["ca", "export", "--data-dir", str(tmp_path)]) == 0

    certificate = x509.load_pem_x509_certificate(capsys.readouterr().out.encode())
    assert certificate.subject.rfc4514_string() == "O=lanner,CN=lanner CA"


def test_cli_export_der(tmp_path: Path, capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    assert main(["ca", "export", "--format", "der", "--data-dir", str(tmp_path)]) == 0

    certificate = x509.load_der_x509_certificate(capsysbinary.readouterr().out)
    assert certificate == CertificateAuthority.load_or_create(str(tmp_path / "ca")).certificate


def test_cli_export_to_a_file(tmp_path: Path) -> None:
    output = tmp_path / "lanner-ca.der"

    assert main(["ca", "export", "--format", "der", "-o", str(output), "--data-dir", str(tmp_path)]) == 0

    x509.load_der_x509_certificate(output.read_bytes())


def test_cli_ca_error_is_one_line_and_exit_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    CertificateAuthority.load_or_create(str(tmp_path / "ca"))
    (tmp_path / "ca" / "ca.key").chmod(0o644)

    assert main(["ca", "path", "--data-dir", str(tmp_path)]) == 1

    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.count("\n") == 1 and "chmod 600" in captured.err


def test_cli_follows_the_configs_tls_ca_dir(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("LANNER_CONFIG", raising=False)
    config = tmp_path / "lanner.yaml"
    config.write_text(f"data_dir: {tmp_path / 'data'}\ntls:\n  ca_dir: {tmp_path / 'elsewhere'}\n")

    assert main(["ca", "-c", str(config), "path"]) == 0

    assert capsys.readouterr().out == f"{tmp_path / 'elsewhere' / 'ca.pem'}\n"
