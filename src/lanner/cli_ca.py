"""`lanner ca`: create, locate and export the CA that signs intercepted hosts' certificates.

The CA lives in `DIR/ca/` with --data-dir DIR, else where the config puts it
(-c FILE or $LANNER_CONFIG: tls.ca_dir, else <data_dir>/ca/; with no config
./lanner-data/ca/), so these commands find the CA `lanner run` uses. Every
command creates the CA if it is missing. Exit codes: 0 done, 1 CA, config or file error, 2 usage.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from lanner.tls.ca import CaError, CertificateAuthority, ca_directory


def add_commands(commands: Any) -> None:
    """Add `ca` and its subcommands to the top-level subparsers."""
    ca = commands.add_parser(
        "ca",
        help="create, locate and export the interception CA",
        description="lanner's certificate authority, in <data_dir>/ca/. Clients that should accept "
        "intercepted TLS must trust its certificate (lanner ca export).",
    )
    _add_options(ca, None)
    ca.set_defaults(func=lambda _args: _usage(ca))
    sub = ca.add_subparsers(title="ca commands", metavar="COMMAND")

    init = sub.add_parser("init", help="create the CA; print its path and fingerprint")
    init.set_defaults(func=_init)
    path = sub.add_parser("path", help="print the path of the CA certificate")
    path.set_defaults(func=_path)
    export = sub.add_parser("export", help="write the CA certificate for clients to trust")
    export.add_argument("--format", choices=["pem", "der"], default="pem", help="default: pem")
    export.add_argument("-o", "--output", metavar="FILE", help="write to FILE (default: stdout)")
    export.set_defaults(func=_export)
    for command in (init, path, export):
        # also after the subcommand (`lanner ca init -c F`); SUPPRESS keeps what came before it
        _add_options(command, argparse.SUPPRESS)


def _add_options(parser: argparse.ArgumentParser, default: str | None) -> None:
    parser.add_argument(
        "-c", "--config", metavar="FILE", default=default, help="take data_dir from this config"
    )
    parser.add_argument(
        "--data-dir", metavar="DIR", default=default, help="the data directory (the CA is in DIR/ca/)"
    )


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2


class _Failed(Exception):
    """Ends a command with a one-line message on stderr and exit code 1."""


def _command(function: Any) -> Any:
    def run(args: argparse.Namespace) -> int:
        try:
            code: int = function(args)
            return code
        except (_Failed, CaError) as exc:
            print(f"lanner ca: {exc}", file=sys.stderr)
            return 1

    return run


def _authority(args: argparse.Namespace) -> CertificateAuthority:
    if args.data_dir is not None:
        return CertificateAuthority.load_or_create(ca_directory(args.data_dir))
    from lanner.cli import config_from
    from lanner.config import ConfigError

    try:
        config = config_from(args.config)
    except ConfigError as exc:
        raise _Failed(str(exc)) from exc
    return CertificateAuthority.load_or_create(config.ca_dir)  # tls.ca_dir, else <data_dir>/ca


@_command
def _init(args: argparse.Namespace) -> int:
    ca = _authority(args)
    where = os.path.abspath(ca.path)
    print(f"created the CA: {where}" if ca.created else f"the CA already exists: {where}")
    print(f"SHA-256 fingerprint: {ca.fingerprint_sha256}")
    return 0


@_command
def _path(args: argparse.Namespace) -> int:
    print(os.path.abspath(_authority(args).path))  # usable from any directory: --cacert "$(lanner ca path)"
    return 0


@_command
def _export(args: argparse.Namespace) -> int:
    ca = _authority(args)
    data = ca.cert_der if args.format == "der" else ca.cert_pem
    if args.output is None and args.format == "pem":
        sys.stdout.write(data.decode("ascii"))
        return 0
    if args.output is None:
        sys.stdout.flush()
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
        return 0
    try:
        with open(args.output, "wb") as file:
            file.write(data)
    except OSError as exc:
        raise _Failed(f"cannot write {args.output}: {exc.strerror}") from exc
    return 0
