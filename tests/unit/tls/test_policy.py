"""Which tunnels are intercepted, and hosts that refuse lanner's certificate."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest

from lanner.config.model import InterceptRule, TlsConfig
from lanner.tls.ca import CertificateAuthority
from lanner.tls.leaves import LeafIssuer
from lanner.tls.policy import HandshakeFailures, Interception


@pytest.fixture
def policy(tmp_path: Path) -> Interception:
    issuer = LeafIssuer(CertificateAuthority.load_or_create(str(tmp_path / "ca")), None)
    rules = [
        InterceptRule(action="bypass", hosts=["bank.example.com"]),
        InterceptRule(hosts=["*.example.com"], ports=[443], verify=False),
        InterceptRule(hosts=["*"], users=["alice"]),
    ]
    return Interception(rules, TlsConfig(), issuer)


def test_first_matching_rule_decides(policy: Interception) -> None:
    assert policy.rule_for("forward", None, "bank.example.com", 443) is None  # bypass carves it out
    rule = policy.rule_for("forward", None, "WWW.example.com", 443)
    assert rule is not None and rule.verify is False
    assert policy.rule_for("forward", None, "www.example.com", 8443) is None
    assert policy.rule_for("forward", "alice", "elsewhere.org", 443) is not None
    assert policy.rule_for("forward", "bob", "elsewhere.org", 443) is None


def test_upstream_contexts_verify_unless_told_not_to(policy: Interception) -> None:
    strict = policy.upstream_context(InterceptRule())
    relaxed = policy.upstream_context(InterceptRule(verify=False))
    assert strict.verify_mode == ssl.CERT_REQUIRED and strict.check_hostname
    assert relaxed.verify_mode == ssl.CERT_NONE and not relaxed.check_hostname
    assert policy.upstream_context(InterceptRule()) is strict  # one context per kind, reused


def test_a_host_passes_through_after_enough_failures(caplog: pytest.LogCaptureFixture) -> None:
    failures = HandshakeFailures(threshold=2, kept=3)
    failures.failed("pinned.example", "TLSV1_ALERT_UNKNOWN_CA")
    assert not failures.passed_through("pinned.example")
    failures.failed("pinned.example", "TLSV1_ALERT_UNKNOWN_CA")
    assert failures.passed_through("pinned.example")
    assert "passing the host through un-intercepted" in caplog.text
    for index in range(3):  # the table is bounded: the oldest host is forgotten
        failures.failed(f"other{index}.example", "EOF")
    assert not failures.passed_through("pinned.example")


def test_upstream_sessions_are_remembered_and_offered_again() -> None:
    import trustme

    from lanner.tls.policy import upstream_context

    ca = trustme.CA()
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ca.issue_cert("origin.test").configure_cert(server)
    client = upstream_context(True, None)
    ca.configure_trust(client)

    def connect() -> ssl.SSLObject:
        to_server, to_client = ssl.MemoryBIO(), ssl.MemoryBIO()
        server_in, server_out = ssl.MemoryBIO(), ssl.MemoryBIO()
        tls = client.wrap_bio(to_client, to_server, server_hostname="origin.test")
        peer = server.wrap_bio(server_in, server_out, server_side=True)
        for _ in range(10):
            for side in (tls, peer):
                try:
                    side.do_handshake()
                except ssl.SSLWantReadError:
                    pass
            server_in.write(to_server.read())
            to_client.write(server_out.read())
        peer.write(b"answer")  # the ticket travels ahead of the first answer
        to_client.write(server_out.read())
        assert tls.read(6) == b"answer"
        return tls

    first = connect()
    assert not first.session_reused
    client.remember("origin.test", first)
    assert "origin.test" in client.sessions
    second = connect()
    assert second.session_reused  # offered through wrap_bio, accepted by the server
    client.remember("origin.test", second)  # a resumed connection leaves the kept one alone
    assert client.sessions["origin.test"].id == first.session.id  # type: ignore[union-attr]
