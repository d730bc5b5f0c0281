"""Routing parameters in the username: the grammar, its refusals, and identify* around it."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lanner.config.model import User
from lanner.errors import AuthFailed
from lanner.route.auth import Authenticator, Identity
from lanner.route.params import NO_PARAMS, SEPARATOR, ParamRules, RouteParams

ACCOUNT = "alice"
MAX_TTL = 86400.0


def rules(max_ttl: float = MAX_TTL) -> ParamRules:
    return ParamRules(
        pools=["residential", "dc.eu-1"], providers=["oxylabs", "bright-data.2"], max_ttl=max_ttl
    )


def parse(presented: str, max_ttl: float = MAX_TTL) -> RouteParams:
    return rules(max_ttl).parse(presented, len(ACCOUNT))


def refusal(presented: str, max_ttl: float = MAX_TTL) -> str:
    with pytest.raises(AuthFailed) as caught:
        parse(presented, max_ttl)
    return caught.value.detail


def basic(username: str, password: str) -> bytes:
    return b"Basic " + base64.b64encode(f"{username}:{password}".encode())


def authenticator(*users: User) -> Authenticator:
    listed = users or (User(name=ACCOUNT, password="secret"), User(name="bob", password="", socks4=True))
    return Authenticator(listed, required=True, params=rules())


# The grammar: every key, normalised.


def test_the_account_alone_has_no_params() -> None:
    assert parse(ACCOUNT) is NO_PARAMS


def test_every_key_is_accepted_and_normalised() -> None:
    presented = (
        "alice_country-US_state-New+Jersey_city-San+Jose2_asn-AS7922"
        "_session-Cart-42_ttl-30s_pool-dc.eu-1_provider-bright-data.2"
    )
    assert parse(presented) == RouteParams(
        country="us",
        state="new+jersey",
        city="san+jose2",
        asn="7922",
        session="Cart-42",  # the session, pool and provider keep their case
        ttl=30.0,
        pool="dc.eu-1",
        provider="bright-data.2",
    )


@pytest.mark.parametrize(
    ("value", "asn"), [("7922", "7922"), ("AS7922", "7922"), ("as15169", "15169"), ("As1", "1")]
)
def test_asn_with_or_without_the_as_prefix_is_digits(value: str, asn: str) -> None:
    assert parse(f"alice_asn-{value}").asn == asn


@pytest.mark.parametrize(
    ("value", "seconds"),
    [("30s", 30.0), ("10m", 600.0), ("2h", 7200.0), ("15", 900.0), ("1s", 1.0), ("24h", 86400.0)],
)
def test_ttl_units_and_a_bare_number_is_minutes(value: str, seconds: float) -> None:
    assert parse(f"alice_ttl-{value}").ttl == seconds


def test_geo_holds_only_the_geo_params_given() -> None:
    params = parse("alice_session-x_city-paris_country-fr")
    assert params.geo == {"country": "fr", "city": "paris"}
    assert NO_PARAMS.geo == {}


def test_keys_may_come_in_any_order() -> None:
    assert parse("alice_session-s1_country-de") == parse("alice_country-de_session-s1")


# Refusals: AuthFailed, with a reason naming the problem.


def test_an_unknown_key_is_refused_by_name() -> None:
    assert "unknown routing parameter 'colour'" in refusal("alice_colour-red")


def test_a_key_without_its_value_is_refused() -> None:
    assert "malformed country value ''" in refusal("alice_country")
    assert "malformed session value ''" in refusal("alice_session-")


@pytest.mark.parametrize("presented", ["alice__country-us", "alice_country-us__city-paris", "alice_"])
def test_an_empty_segment_is_refused(presented: str) -> None:
    assert "routing parameter ''" in refusal(presented)


def test_a_repeated_key_is_refused() -> None:
    assert "parameter 'country' given twice" in refusal("alice_country-us_country-de")
    assert "given twice" in refusal("alice_ttl-10m_session-a_ttl-10m")


@pytest.mark.parametrize(
    ("presented", "reason"),
    [
        ("alice_country-usa", "malformed country value 'usa'"),
        ("alice_country-u1", "malformed country value 'u1'"),
        ("alice_state-new york", "malformed state value 'new york'"),
        ("alice_city-" + "x" * 65, "malformed city value"),
        ("alice_asn-ASN12", "malformed asn value 'ASN12'"),
        ("alice_asn-12a", "malformed asn value '12a'"),
        ("alice_session-a.b", "malformed session value 'a.b'"),
        ("alice_session-" + "s" * 65, "malformed session value"),
        ("alice_ttl-5d", "malformed ttl value '5d'"),
        ("alice_ttl-1.5h", "malformed ttl value '1.5h'"),
        ("alice_ttl-m", "malformed ttl value 'm'"),
    ],
)
def test_a_malformed_value_is_refused(presented: str, reason: str) -> None:
    assert reason in refusal(presented)


def test_a_session_containing_the_separator_is_split_and_refused() -> None:
    # `session-a_b`: `b` is a segment of its own, and not a key.
    assert "unknown routing parameter 'b'" in refusal("alice_session-a_b")


@pytest.mark.parametrize("value", ["0", "0s", "0m", "0h"])
def test_a_zero_ttl_is_refused(value: str) -> None:
    assert f"ttl {value!r} is outside 1s..86400s" in refusal(f"alice_ttl-{value}")


def test_a_ttl_above_max_ttl_is_refused_and_max_ttl_itself_is_accepted() -> None:
    assert "ttl '61m' is outside 1s..3600s" in refusal("alice_ttl-61m", max_ttl=3600)
    assert "outside" in refusal("alice_ttl-3601s", max_ttl=3600)
    assert parse("alice_ttl-1h", max_ttl=3600).ttl == 3600.0


def test_an_unknown_pool_or_provider_is_refused() -> None:
    assert "no vendor pool 'datacenter'" in refusal("alice_pool-datacenter")
    assert "no provider 'soax'" in refusal("alice_provider-soax")
    assert parse("alice_pool-residential_provider-oxylabs").pool == "residential"


def test_names_of_pools_and_providers_are_case_sensitive() -> None:
    assert "no vendor pool 'Residential'" in refusal("alice_pool-Residential")


@pytest.mark.parametrize("rest", ["x", "-country-us", "country-us", "@"])
def test_text_right_after_the_account_needs_the_separator(rest: str) -> None:
    assert f"parameters must follow {SEPARATOR!r}" in refusal(ACCOUNT + rest)


def test_a_refusal_is_an_authentication_failure_for_the_client() -> None:
    with pytest.raises(AuthFailed) as caught:
        parse("alice_country-usa")
    assert caught.value.http_status == 407
    assert caught.value.socks5_reply == 0x02
    assert "'alice_country-usa'" in caught.value.detail  # the username the client presented


# Anything after the account: parameters, or AuthFailed -- never another exception.

_PARAM_TEXT = st.text(alphabet=st.sampled_from("_-+.aAsShm09 zé٣\x00"), max_size=40)
_SEGMENTS = st.lists(
    st.tuples(
        st.sampled_from(["country", "state", "city", "asn", "session", "ttl", "pool", "provider", "x", ""]),
        st.sampled_from(["", "-"]),
        st.text(alphabet=st.sampled_from("aBz09+-.smhAS_"), max_size=12),
    ),
    max_size=6,
).map(lambda segments: "".join(f"_{key}{dash}{value}" for key, dash, value in segments))


@settings(max_examples=400, deadline=None)
@given(rest=st.one_of(_PARAM_TEXT, _SEGMENTS, st.text(max_size=30)))
def test_any_text_after_the_account_parses_or_is_refused(rest: str) -> None:
    try:
        params = parse(ACCOUNT + rest)
    except AuthFailed:
        return
    assert isinstance(params, RouteParams)
    assert params.ttl is None or 1 <= params.ttl <= MAX_TTL
    assert params.country is None or (len(params.country) == 2 and params.country.islower())


@settings(max_examples=200, deadline=None)
@given(username=st.text(max_size=30), password=st.text(max_size=8), required=st.booleans())
def test_identify_raises_nothing_but_auth_failed(username: str, password: str, required: bool) -> None:
    try:
        identity = authenticator().identify(username, password, required)
    except AuthFailed:
        return
    assert identity.presented == username


# Authenticator.identify*: credentials (when required) and parameters (always), in one step.


def test_identify_with_a_good_password_returns_the_account_and_params() -> None:
    identity = authenticator().identify("alice_country-de_session-s1", "secret", required=True)
    assert identity == Identity(
        "alice", "alice_country-de_session-s1", RouteParams(country="de", session="s1")
    )


def test_identify_refuses_a_bad_password_with_or_without_params() -> None:
    auth = authenticator()
    for username in ("alice", "alice_country-de"):
        with pytest.raises(AuthFailed, match="bad credentials"):
            auth.identify(username, "wrong", required=True)


def test_identify_refuses_an_unknown_account() -> None:
    with pytest.raises(AuthFailed, match="bad credentials for 'mallory_country-de'"):
        authenticator().identify("mallory_country-de", "", required=True)


def test_identify_refuses_a_good_password_with_a_bad_param() -> None:
    with pytest.raises(AuthFailed, match="malformed country value 'usa'"):
        authenticator().identify("alice_country-usa", "secret", required=True)


def test_a_not_required_listener_checks_params_but_not_the_password() -> None:
    auth = authenticator()
    identity = auth.identify("alice_country-de", "wrong", required=False)
    assert identity == Identity(None, "alice_country-de", RouteParams(country="de"))
    with pytest.raises(AuthFailed, match="unknown routing parameter 'colour'"):
        auth.identify("alice_colour-red", "secret", required=False)


def test_identify_basic_decodes_and_checks_both() -> None:
    auth = authenticator()
    identity = auth.identify_basic(basic("alice_city-new+york", "secret"), required=True)
    assert identity == Identity("alice", "alice_city-new+york", RouteParams(city="new+york"))
    with pytest.raises(AuthFailed, match="bad credentials"):
        auth.identify_basic(basic("alice_city-paris", "nope"), required=True)
    with pytest.raises(AuthFailed, match="malformed ttl value '5d'"):
        auth.identify_basic(basic("alice_ttl-5d", "secret"), required=True)
    with pytest.raises(AuthFailed, match="malformed ttl value '5d'"):
        auth.identify_basic(basic("alice_ttl-5d", "any"), required=False)


def test_identify_basic_without_credentials() -> None:
    auth = authenticator()
    assert auth.identify_basic(None, required=False) == Identity(None, None, NO_PARAMS)
    with pytest.raises(AuthFailed, match="no Proxy-Authorization"):
        auth.identify_basic(None, required=True)


@pytest.mark.parametrize(
    "header", [b"Bearer abc", b"Basic !!!not-base64", b"Basic " + base64.b64encode(b"no-colon"), b"Basic"]
)
def test_identify_basic_refuses_malformed_headers(header: bytes) -> None:
    with pytest.raises(AuthFailed):
        authenticator().identify_basic(header, required=True)


def test_identify_socks4_by_userid() -> None:
    auth = authenticator()
    assert auth.identify_socks4("bob_country-fr", required=True) == Identity(
        "bob", "bob_country-fr", RouteParams(country="fr")
    )
    with pytest.raises(AuthFailed, match="may not identify alone"):
        auth.identify_socks4("alice", required=True)  # not a socks4 user
    with pytest.raises(AuthFailed, match="malformed country value"):
        auth.identify_socks4("bob_country-fra", required=True)
    with pytest.raises(AuthFailed, match="malformed country value"):
        auth.identify_socks4("anyone_country-fra", required=False)


def test_identify_socks4_without_a_userid_on_a_not_required_listener() -> None:
    assert authenticator().identify_socks4("", required=False) == Identity(None, None, NO_PARAMS)


def test_an_account_containing_the_separator_identifies_alone() -> None:
    auth = authenticator(User(name="bob_smith", password="pw"))
    assert auth.identify("bob_smith", "pw", required=True) == Identity("bob_smith", "bob_smith", NO_PARAMS)
    with pytest.raises(AuthFailed, match="bad credentials"):
        auth.identify("bob_smith", "wrong", required=True)


def test_a_user_named_like_an_account_with_params_wins_exactly() -> None:
    # Both `bob` and `bob_country-us` are accounts: the exact name is the account, not `bob` plus a param.
    auth = authenticator(User(name="bob", password="b"), User(name="bob_country-us", password="c"))
    assert auth.identify("bob_country-us", "c", required=True).account == "bob_country-us"
    assert auth.identify("bob_country-us", "c", required=True).params == NO_PARAMS
    with pytest.raises(AuthFailed, match="bad credentials"):
        auth.identify("bob_country-us", "b", required=True)


def test_an_account_containing_the_separator_carries_params() -> None:
    auth = authenticator(User(name="bob_smith", password="pw"))
    identity = auth.identify("bob_smith_country-us", "pw", required=True)
    assert identity == Identity("bob_smith", "bob_smith_country-us", RouteParams(country="us"))


def test_an_account_containing_the_separator_on_a_not_required_listener() -> None:
    auth = authenticator(User(name="bob_smith", password="pw"))
    assert auth.identify("bob_smith", "pw", required=False).params == NO_PARAMS


def test_without_vendors_usernames_are_taken_whole() -> None:
    plain = Authenticator([User(name="john_doe", password="pw")], required=False, params=None)
    assert plain.identify("build_agent", "x", required=False).params == NO_PARAMS
    assert plain.identify("john_doe", "pw", required=True).account == "john_doe"
    assert plain.identify_basic(b"Bearer token", required=False) == Identity(None, None, NO_PARAMS)
