"""Command line: `lanner run`, `lanner config check|schema`, `lanner flows|ca …`, `lanner --version`."""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys

from lanner import __version__
from lanner.cli_ca import add_commands as add_ca_commands
from lanner.cli_flows import add_commands as add_flows_commands
from lanner.config import Config, ConfigError, load_config, load_default
from lanner.config.source import ConfigSource, Overrides


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    code: int = args.func(args)
    return code


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lanner",
        description="A multi-protocol proxy gateway: SOCKS4/4a/5 and HTTP proxy, TCP router.",
    )
    parser.add_argument("--version", action="version", version=f"lanner {__version__}")
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")

    run = commands.add_parser(
        "run",
        help="run the gateway",
        description="Run the gateway. With no config: a forward proxy (HTTP, CONNECT, "
        "SOCKS4/4a/5) on 127.0.0.1:8080.",
    )
    run.add_argument("-c", "--config", metavar="FILE", help="YAML config (default: $LANNER_CONFIG)")
    run.add_argument("--workers", type=int, metavar="N", help="processes sharing the listeners")
    run.add_argument("--json-logs", action="store_true", help="log one JSON object per line")
    run.add_argument("--log-level", choices=["debug", "info", "warning", "error"])
    run.add_argument(
        "--intercept",
        action="append",
        metavar="PATTERN",
        help="intercept (MITM) tunnels to hosts matching this glob; repeatable",
    )
    run.set_defaults(func=_run)

    config = commands.add_parser("config", help="check a config or print its schema")
    config_commands = config.add_subparsers(title="config commands", metavar="COMMAND")
    check = config_commands.add_parser(
        "check",
        help="validate a config file",
        description="Exit 0 if FILE is valid; "
        "otherwise print file:line: path: reason for each error and exit 1.",
    )
    check.add_argument("file", metavar="FILE")
    check.set_defaults(func=_check)
    schema = config_commands.add_parser("schema", help="print the config's JSON Schema")
    schema.set_defaults(func=_schema)
    config.set_defaults(func=lambda _args: _usage(config))
    add_flows_commands(commands)
    add_ca_commands(commands)
    return parser


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2


def config_from(path: str | None) -> Config:
    path = path or os.environ.get("LANNER_CONFIG")
    return load_config(path) if path else load_default()


def _run(args: argparse.Namespace) -> int:
    from lanner import logs
    from lanner.control import metrics_dir

    # A reload reads the config the same way: the command line's flags hold for every generation.
    overrides = Overrides(
        args.workers, "json" if args.json_logs else None, args.log_level, tuple(args.intercept or ())
    )
    source = ConfigSource(args.config or os.environ.get("LANNER_CONFIG"), overrides)
    try:
        config, stamp = source.read()
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 1
    logs.setup(config.log.format, config.log.level)
    _raise_fd_limit()
    # Before lanner.app (and so prometheus_client) is imported: every process of this run, forked
    # workers and writer children included, keeps its metric values there (control/metrics_dir.py).
    with metrics_dir.per_run():
        if config.workers > 1:
            from lanner.workers import supervise

            return supervise(config, source, stamp)
        from lanner.app import run

        return run(config, source=source, stamp=stamp)


def _check(args: argparse.Namespace) -> int:
    try:
        config = load_config(args.file)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 1
    print(f"{args.file}: ok ({len(config.listeners)} listeners, {len(config.rules)} rules)")
    return 0


def _schema(_args: argparse.Namespace) -> int:
    print(json.dumps(Config.model_json_schema(), indent=2))
    return 0


def _raise_fd_limit() -> None:
    """Each proxied connection needs two descriptors; use all the hard limit allows."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
