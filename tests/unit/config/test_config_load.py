"""Config loading: line numbers in errors, ${env.NAME}, LANNER_* overrides, defaults."""

from __future__ import annotations

from pathlib import Path

import pytest

from lanner.config import ConfigError, load_config, load_default


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "lanner.yaml"
    path.write_text(text)
    return path


def test_defaults_are_one_forward_listener() -> None:
    config = load_default({})
    (listener,) = config.listeners
    assert (listener.type, listener.bind) == ("forward", "127.0.0.1:8080")
    assert listener.protocols == ["http", "socks4", "socks5"]
    assert config.limits.idle_timeout == 120


def test_errors_carry_file_line_and_path(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "listeners:\n  - name: a\n    bind: nowhere\n  - name: b\n    type: tcp\n"
        "limits:\n  idle_timeout: -1\n",
    )
    with pytest.raises(ConfigError) as caught:
        load_config(path, {})
    text = str(caught.value)
    assert f"{path}:3: listeners.0.bind" in text
    assert f"{path}:4: listeners.1" in text and "needs a target" in text
    assert f"{path}:7: limits.idle_timeout" in text


def test_unknown_keys_are_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r":2: listeners.0.colour: Extra inputs"):
        load_config(write(tmp_path, "listeners:\n  - {name: a, colour: red}\n"), {})


def test_yaml_syntax_error_has_a_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"lanner.yaml:3: YAML"):
        load_config(write(tmp_path, "listeners:\n  - name: a\n  bad: [\n"), {})


def test_env_references(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "users:\n  - name: alice\n    password: ${env.ALICE_PW}\n"
        "  - name: bob\n    password: ${env.BOB_PW:-fallback}\n",
    )
    config = load_config(path, {"ALICE_PW": "s3cret"})
    assert [user.password for user in config.users] == ["s3cret", "fallback"]
    with pytest.raises(ConfigError, match=r":3: users.0.password: \$\{env.ALICE_PW\} is not set"):
        load_config(path, {})


def test_env_overrides(tmp_path: Path) -> None:
    path = write(tmp_path, "listeners:\n  - name: a\n    bind: 127.0.0.1:9000\n")
    config = load_config(
        path,
        {
            "LANNER_LISTENERS__0__BIND": "127.0.0.1:9100",
            "LANNER_LISTENERS__0__PROTOCOLS": "[socks5]",
            "LANNER_LIMITS__IDLE_TIMEOUT": "30",
            "LANNER_LOG__FORMAT": "json",
            "LANNER_CONFIG": "ignored.yaml",
        },
    )
    assert config.listeners[0].bind == "127.0.0.1:9100"
    assert config.listeners[0].protocols == ["socks5"]
    assert config.limits.idle_timeout == 30
    assert config.log.format == "json"


def test_env_override_of_a_default_list() -> None:
    config = load_default({"LANNER_LISTENERS__0__BIND": ":3128"})
    assert config.listeners[0].name == "forward"
    assert config.listeners[0].bind == ":3128"


def test_bad_env_override_names_the_variable() -> None:
    with pytest.raises(ConfigError, match=r"env LANNER_LIMITS__IDLE_TIMEOUT: limits.idle_timeout"):
        load_default({"LANNER_LIMITS__IDLE_TIMEOUT": "soon"})


def test_rules_must_name_known_listeners_and_users(tmp_path: Path) -> None:
    path = write(tmp_path, "rules:\n  - action: deny\n    users: [ghost]\n")
    with pytest.raises(ConfigError, match="unknown listeners or users"):
        load_config(path, {})


@pytest.mark.parametrize("port", ["70000", "80-20", "http"])
def test_bad_port_specs(tmp_path: Path, port: str) -> None:
    path = write(tmp_path, f"rules:\n  - action: deny\n    ports: ['{port}']\n")
    with pytest.raises(ConfigError, match=r":3: rules.0.ports.0"):
        load_config(path, {})


def test_examples_load() -> None:
    examples = sorted(Path(__file__).parents[3].joinpath("examples").glob("*.yaml"))
    assert len(examples) >= 4
    for example in examples:
        config = load_config(example, {"ALICE_PASSWORD": "x"})
        assert config.listeners


@pytest.mark.parametrize(
    ("listener", "message"),
    [
        ("type: router", "a router listener needs routes"),
        ("type: tls\n    target: 127.0.0.1:1", "a tls listener needs certificates"),
        ("type: tls\n    certificates: [{cert: c.pem, key: k.pem}]", "needs a target or routes"),
        ("type: forward\n    routes: [{match: a, target: 'h:1'}]", "routes apply to router, tls and reverse"),
        ("type: router\n    routes: [{match: a, target: 'h:1'}]\n    target: h:2", "target applies"),
        (
            "type: tls\n    target: h:1\n    certificates: [{cert: a, key: b, default: true},"
            " {cert: c, key: d, default: true}]",
            "at most one certificate may be the default",
        ),
        ("type: router\n    routes: [{match: a, protocol: udp, target: 'h:1'}]", "routes.0.protocol"),
    ],
)
def test_router_and_tls_listener_fields(tmp_path: Path, listener: str, message: str) -> None:
    path = write(tmp_path, f"listeners:\n  - name: edge\n    {listener}\n")
    with pytest.raises(ConfigError, match=message):
        load_config(path, {})


def test_intercept_rules_name_known_listeners(tmp_path: Path) -> None:
    path = write(tmp_path, "intercept:\n  - hosts: ['*']\n    listeners: [nope]\n")
    with pytest.raises(ConfigError, match="unknown listeners"):
        load_config(path, {})
    config = load_config(write(tmp_path, "intercept:\n  - hosts: ['*.example.com']\n    verify: false\n"), {})
    assert config.intercept[0].verify is False and config.ca_dir.endswith("ca")
