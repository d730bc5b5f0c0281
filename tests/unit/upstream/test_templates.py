"""Credential templates: groups, session ids, lifetimes, geo formats; their config checks; real vendors."""

from __future__ import annotations

import re
import string
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from lanner.config import load_config
from lanner.config.model import Config
from lanner.config.vendors import FieldFormat, ProviderConfig, SessionFormat, TtlFormat, VendorsConfig
from lanner.route.params import RouteParams
from lanner.upstream.templates import (
    Credentials,
    CredentialTemplate,
    geo_text,
    ttl_text,
    vendor_session_id,
)

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "vendors.yaml"
ENVIRON = {
    "BRD_CUSTOMER": "hl_1234abcd",
    "BRD_ZONE": "resi",
    "BRD_PASSWORD": "zonepass",
    "OXY_USER": "acme",
    "OXY_PASSWORD": "p1",
    "DECODO_USER": "spuser",
    "DECODO_PASSWORD": "p2",
    "IPROYAL_USER": "royal",
    "IPROYAL_PASSWORD": "p3",
    "SOAX_PACKAGE": "123456",
    "SOAX_KEY": "pk_x",
    "VENDOR_SESSION_SECRET": "test-secret-123",
}
CHARSETS = {
    "alnum": string.digits + string.ascii_letters,
    "lower_alnum": string.digits + string.ascii_lowercase,
    "digits": string.digits,
    "hex": string.hexdigits.lower()[:16],
}


def provider(**settings: Any) -> ProviderConfig:
    fields: dict[str, Any] = {"name": "p", "endpoints": ["127.0.0.1:9"], "username": "u", **settings}
    return ProviderConfig.model_validate(fields)


# CredentialTemplate: optional groups and required fields.


def test_optional_groups_are_written_only_with_all_their_fields() -> None:
    template = CredentialTemplate("customer-X[-cc-{country}][-sessid-{session}-t-{ttl}]-end")
    assert template.render({}) == "customer-X-end"
    assert template.render({"country": "DE"}) == "customer-X-cc-DE-end"
    assert template.render({"session": "s1"}) == "customer-X-end"  # ttl missing: the whole group goes
    assert (
        template.render({"session": "s1", "ttl": "5", "country": "de"})
        == "customer-X-cc-de-sessid-s1-t-5-end"
    )


def test_fields_of_a_template() -> None:
    template = CredentialTemplate("{user}-zone[-c-{country}]-{session}[-{city}]")
    assert template.fields == {"user", "country", "session", "city"}


def test_fields_outside_groups_are_required() -> None:
    template = CredentialTemplate("{user}-zone[-c-{country}]-{session}[-{city}]")
    assert template.required == {"user", "session"}


def test_a_required_field_without_a_value_is_a_key_error_naming_it() -> None:
    template = CredentialTemplate("u-{session}[-c-{country}]")
    with pytest.raises(KeyError, match="session"):
        template.render({"country": "us"})  # today: '-c-us', the `u-` lost with the session


def test_a_required_field_with_its_value_is_written() -> None:
    template = CredentialTemplate("u-{session}[-c-{country}]")
    assert template.render({"session": "s"}) == "u-s"
    assert template.render({"session": "s", "country": "us"}) == "u-s-c-us"


def test_a_template_without_fields_is_literal() -> None:
    assert CredentialTemplate("plain-user").render({"country": "us"}) == "plain-user"
    assert CredentialTemplate("").render({}) == ""


# Vendor session ids: exact length and charset, deterministic, distinct.


@pytest.mark.parametrize("charset", sorted(CHARSETS))
@pytest.mark.parametrize("length", [4, 8, 10, 64])
def test_session_id_length_and_charset(charset: Any, length: int) -> None:
    fmt = SessionFormat(charset=charset, length=length)
    for index in range(50):
        session_id = vendor_session_id(b"secret-key", ("p", "alice", f"s{index}", "7", "0"), fmt)
        assert len(session_id) == length
        assert set(session_id) <= set(CHARSETS[charset])


def test_session_ids_use_the_whole_charset() -> None:
    fmt = SessionFormat(charset="alnum", length=64)
    seen = set("".join(vendor_session_id(b"k" * 8, (str(i),), fmt) for i in range(50)))
    assert seen == set(CHARSETS["alnum"])


def test_session_id_is_deterministic() -> None:
    fmt = SessionFormat(charset="alnum", length=10)
    parts = ("oxylabs", "alice", "cart42", "2833333", "0")
    assert vendor_session_id(b"secret-1", parts, fmt) == vendor_session_id(b"secret-1", parts, fmt)
    assert vendor_session_id(b"secret-1", parts, fmt) != vendor_session_id(b"secret-2", parts, fmt)


@settings(max_examples=200, deadline=None)
@given(
    first=st.tuples(st.text(max_size=8), st.text(max_size=8), st.integers(0, 5).map(str)),
    second=st.tuples(st.text(max_size=8), st.text(max_size=8), st.integers(0, 5).map(str)),
)
def test_different_parts_give_different_ids(first: tuple[str, ...], second: tuple[str, ...]) -> None:
    fmt = SessionFormat(charset="lower_alnum", length=16)
    if "\0".join(first) == "\0".join(second):
        return  # the same bytes are HMACed
    assert vendor_session_id(b"secret!!", first, fmt) != vendor_session_id(b"secret!!", second, fmt)


def test_each_period_and_rotation_changes_the_id() -> None:
    fmt = SessionFormat(charset="alnum", length=8)
    ids = {
        vendor_session_id(b"secret!!", ("iproyal", "alice", "s1", str(period), str(generation)), fmt)
        for period in range(10)
        for generation in range(3)
    }
    assert len(ids) == 30


# Lifetimes in the vendor's unit and bounds.


@pytest.mark.parametrize(
    ("seconds", "fmt", "text"),
    [
        (900.0, TtlFormat(unit="m"), "15"),
        (901.0, TtlFormat(unit="m"), "16"),  # rounded up: never shorter than asked
        (60.0, TtlFormat(unit="m"), "1"),
        (1.0, TtlFormat(unit="m"), "1"),
        (900.0, TtlFormat(unit="m", suffix=True), "15m"),
        (5400.0, TtlFormat(unit="h", suffix=True), "2h"),
        (7200.0, TtlFormat(unit="h"), "2"),
        (900.0, TtlFormat(unit="s"), "900"),
        (90.5, TtlFormat(unit="s", suffix=True), "91s"),
        (10.0, TtlFormat(unit="s", min=60, max=3600), "60"),  # raised to min
        (7200.0, TtlFormat(unit="s", min=60, max=3600), "3600"),  # cut to max
        (7200.0, TtlFormat(unit="m", max=1800), "30"),
        (0.0, TtlFormat(unit="s", min=1), "1"),
        (86400.0 * 30, TtlFormat(unit="m", suffix=True, min=1, max=7 * 86400), "10080m"),
    ],
)
def test_ttl_text(seconds: float, fmt: TtlFormat, text: str) -> None:
    assert ttl_text(seconds, fmt) == text


@settings(max_examples=200, deadline=None)
@given(seconds=st.floats(0, 10 * 86400), unit=st.sampled_from(["s", "m", "h"]))
def test_ttl_text_never_shorter_than_asked_within_bounds(seconds: float, unit: Any) -> None:
    fmt = TtlFormat(unit=unit, min=30, max=86400)
    number = int(ttl_text(seconds, fmt))
    factor = {"s": 1, "m": 60, "h": 3600}[unit]
    assert number * factor >= min(max(seconds, 30), 86400) - 1e-6
    assert (number - 1) * factor < min(max(seconds, 30), 86400)  # and not a whole unit longer


# Geo values in the vendor's case, with its space and prefix.


@pytest.mark.parametrize(
    ("value", "fmt", "text"),
    [
        ("us", FieldFormat(), "us"),
        ("US", FieldFormat(), "us"),
        ("us", FieldFormat(case="upper"), "US"),
        ("New+York", FieldFormat(case="keep", space="_"), "New_York"),
        ("new+york", FieldFormat(), "newyork"),
        ("new+york", FieldFormat(space="-"), "new-york"),
        ("california", FieldFormat(prefix="us_"), "us_california"),
        (
            "North+Carolina",
            FieldFormat(prefix="US_", space="_"),
            "US_north_carolina",
        ),  # the prefix as written
    ],
)
def test_geo_text(value: str, fmt: FieldFormat, text: str) -> None:
    assert geo_text(value, fmt) == text


# Config validation of templates and vendors.


@pytest.mark.parametrize(
    ("template", "problem"),
    [
        ("u[-cc-{country}", "balanced and not nested"),
        ("u-cc-{country}]", "balanced and not nested"),
        ("u][-cc-{country}[", "balanced and not nested"),
        ("u[-cc-[{country}]]", "balanced and not nested"),
        ("u[-cc-{colour}]", "unknown template fields ['colour']"),
        ("u-{pool}", "unknown template fields ['pool']"),
        ("u-{country", "a brace that opens no {field}"),
        ("u-country}", "a brace that opens no {field}"),
        ("u-{Country}", "a brace that opens no {field}"),
        ("u-{ttl}[-s-{session}]", "{ttl} is written only with a session"),
    ],
)
def test_bad_templates_are_refused(template: str, problem: str) -> None:
    with pytest.raises(ValidationError, match=re.escape(problem)):
        provider(username=template)
    with pytest.raises(ValidationError, match="password"):
        provider(password=template)


def test_every_known_field_is_accepted() -> None:
    config = provider(username="{user}[-{country}][-{state}][-{city}][-{asn}][-{session}][-{ttl}]")
    assert config.supports == {"user", "country", "state", "city", "asn", "session", "ttl"}


def test_requires_whitelist_takes_no_credentials() -> None:
    with pytest.raises(ValidationError, match="requires_whitelist takes no credentials"):
        provider(requires_whitelist=True)
    with pytest.raises(ValidationError, match="requires_whitelist takes no credentials"):
        provider(username=None, password="p", requires_whitelist=True)
    assert provider(username=None, requires_whitelist=True).username is None


def test_a_provider_needs_a_username_template() -> None:
    with pytest.raises(ValidationError, match="needs a username template"):
        provider(username=None)
    with pytest.raises(ValidationError, match="needs a username template"):
        provider(username=None, password="p-{country}")


@pytest.mark.parametrize(
    "settings", [{"defaults": {"session": "x"}}, {"fields": {"user": {"case": "upper"}}}]
)
def test_defaults_and_fields_name_geo_params_only(settings: dict[str, Any]) -> None:
    with pytest.raises(ValidationError, match="geo parameters only"):
        provider(**settings)


def test_ttl_min_above_max_is_refused() -> None:
    with pytest.raises(ValidationError, match="ttl.min is above ttl.max"):
        provider(ttl={"min": "2h", "max": "1h"})


def test_countries_are_lower_cased() -> None:
    assert provider(countries=["US", "De"]).countries == ["us", "de"]


def test_duplicate_provider_names_are_refused() -> None:
    with pytest.raises(ValidationError, match="duplicate provider names"):
        VendorsConfig.model_validate(
            {"providers": [{"name": "a", "endpoints": ["h:1"], "username": "u"}] * 2}
        )


def test_a_pool_naming_an_unknown_provider_is_refused() -> None:
    with pytest.raises(ValidationError, match=r"vendor pool 'resi' names unknown providers \['b'\]"):
        VendorsConfig.model_validate(
            {
                "providers": [{"name": "a", "endpoints": ["h:1"], "username": "u"}],
                "pools": [{"name": "resi", "providers": ["a", "b"]}],
            }
        )


def test_a_listener_naming_an_unknown_vendor_pool_is_refused() -> None:
    vendors = {"providers": [{"name": "a", "endpoints": ["h:1"], "username": "u"}]}
    with pytest.raises(ValidationError, match="listener 'gw': no vendor pool 'resi'"):
        Config.model_validate({"listeners": [{"name": "gw", "upstream_pool": "resi"}], "vendors": vendors})
    config = Config.model_validate(
        {"listeners": [{"name": "gw", "upstream_pool": "default"}], "vendors": vendors}
    )
    assert config.listeners[0].upstream_pool == "default"  # without pools: one `default` of all


# Credentials.serves: the geo a provider's templates can carry.


def test_serves_only_the_geo_its_templates_carry() -> None:
    credentials = Credentials(provider(username="u[-cc-{country}][-city-{city}]"))
    assert credentials.serves(RouteParams())
    assert credentials.serves(RouteParams(country="us", city="boston", session="s", ttl=60.0))
    assert not credentials.serves(RouteParams(country="us", asn="7922"))
    assert not credentials.serves(RouteParams(state="ohio"))


def test_serves_geo_carried_by_the_password_template() -> None:
    credentials = Credentials(provider(username="u", password="p[_country-{country}]"))
    assert credentials.serves(RouteParams(country="fr"))
    assert not credentials.serves(RouteParams(city="paris"))


def test_serves_only_its_countries() -> None:
    credentials = Credentials(provider(username="u[-cc-{country}]", countries=["US", "ca"]))
    assert credentials.serves(RouteParams(country="us"))
    assert credentials.serves(RouteParams(country="CA"))
    assert not credentials.serves(RouteParams(country="de"))
    assert not credentials.serves(RouteParams())  # the vendor might choose any country
    defaulted = Credentials(
        provider(username="u[-cc-{country}]", countries=["us"], defaults={"country": "US"})
    )
    assert defaulted.serves(RouteParams())


def test_a_required_geo_field_is_satisfied_by_defaults() -> None:
    defaulted = Credentials(provider(username="u-cc-{country}[-s-{session}]", defaults={"country": "gb"}))
    assert defaulted.serves(RouteParams())
    assert defaulted.serves(RouteParams(country="ie"))
    assert defaulted.render(defaulted.values(None, RouteParams(), None, 0.0)) == ("u-cc-gb", "")
    assert defaulted.render(defaulted.values(None, RouteParams(country="ie"), None, 0.0)) == ("u-cc-ie", "")


def test_a_required_geo_field_without_a_default_must_be_asked() -> None:
    bare = Credentials(provider(username="u-cc-{country}[-s-{session}]"))
    assert bare.serves(RouteParams(country="us"))
    assert not bare.serves(RouteParams())  # today: served, and rendered as '' (the `u-cc-` dropped)


def test_values_and_render() -> None:
    credentials = Credentials(provider(username="{user}[-cc-{country}][-s-{session}-t-{ttl}]"))
    values = credentials.values("alice", RouteParams(country="us"), "sess1", 120.0)
    assert values == {"country": "us", "user": "alice", "session": "sess1", "ttl": "2"}
    assert credentials.render(values) == ("alice-cc-us-s-sess1-t-2", "")
    assert credentials.render(credentials.values("alice", RouteParams(), None, 120.0)) == ("alice", "")


def test_a_whitelisted_provider_renders_no_credentials() -> None:
    credentials = Credentials(provider(username=None, requires_whitelist=True))
    assert credentials.render(credentials.values("alice", RouteParams(country="us"), "s", 60.0)) == (
        None,
        None,
    )
    assert credentials.serves(RouteParams())
    assert not credentials.serves(RouteParams(country="us"))


# The five vendors of examples/vendors.yaml, rendered exactly as each documents its format.


@pytest.fixture(scope="module")
def example_credentials() -> dict[str, Credentials]:
    config = load_config(EXAMPLE, environ=ENVIRON)
    assert config.vendors.session_secret == "test-secret-123"
    return {item.name: Credentials(item) for item in config.vendors.providers}


CITY_SESSION = RouteParams(country="us", state="california", city="new+york", session="cart42")
RENDERED_CITY_SESSION = {
    "brightdata": (
        "brd-customer-hl_1234abcd-zone-resi-country-us-state-california-city-newyork-session-abcd1234",
        "zonepass",
    ),
    "oxylabs": ("customer-acme-cc-US-st-us_california-city-new_york-sessid-abcd1234-sesstime-15", "p1"),
    "decodo": (
        "user-spuser-country-us-state-us_california-city-new_york-session-abcd1234-sessionduration-15",
        "p2",
    ),
    "iproyal": ("royal", "p3_country-us_state-california_city-newyork_session-abcd1234_lifetime-15m"),
    "soax": (
        "package-123456-country-us-region-california-city-new-york-sessionid-abcd1234-sessionlength-900",
        "pk_x",
    ),
}
RENDERED_COUNTRY = {
    "brightdata": ("brd-customer-hl_1234abcd-zone-resi-country-de", "zonepass"),
    "oxylabs": ("customer-acme-cc-DE", "p1"),
    "decodo": ("user-spuser-country-de", "p2"),
    "iproyal": ("royal", "p3_country-de"),
    "soax": ("package-123456-country-de", "pk_x"),
}


def test_the_example_has_the_five_vendors(example_credentials: dict[str, Credentials]) -> None:
    assert sorted(example_credentials) == sorted(RENDERED_CITY_SESSION)


@pytest.mark.parametrize("name", sorted(RENDERED_CITY_SESSION))
def test_vendor_render_with_city_and_session(example_credentials: dict[str, Credentials], name: str) -> None:
    credentials = example_credentials[name]
    assert credentials.serves(CITY_SESSION)
    values = credentials.values("alice", CITY_SESSION, "abcd1234", 900.0)
    assert credentials.render(values) == RENDERED_CITY_SESSION[name]


@pytest.mark.parametrize("name", sorted(RENDERED_COUNTRY))
def test_vendor_render_with_country_only(example_credentials: dict[str, Credentials], name: str) -> None:
    credentials = example_credentials[name]
    params = RouteParams(country="de")
    assert credentials.serves(params)
    assert credentials.render(credentials.values("alice", params, None, 900.0)) == RENDERED_COUNTRY[name]


def test_example_vendors_bound_the_lifetime(example_credentials: dict[str, Credentials]) -> None:
    long_session = RouteParams(session="s")
    rendered = {
        name: credentials.render(credentials.values("alice", long_session, "abcd1234", 7 * 3600.0))
        for name, credentials in example_credentials.items()
    }
    assert rendered["oxylabs"][0] == "customer-acme-sessid-abcd1234-sesstime-30"  # at most 30 minutes
    assert rendered["soax"][0] == "package-123456-sessionid-abcd1234-sessionlength-3600"
    assert rendered["decodo"][0] == "user-spuser-session-abcd1234-sessionduration-420"
    assert rendered["iproyal"][1] == "p3_session-abcd1234_lifetime-420m"


def test_example_vendors_geo_capability(example_credentials: dict[str, Credentials]) -> None:
    asn = RouteParams(asn="7922")
    assert {name for name, item in example_credentials.items() if item.serves(asn)} == {
        "brightdata",
        "decodo",
    }
