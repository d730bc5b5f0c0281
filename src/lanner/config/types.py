"""The config's primitive types: addresses, ports, durations, sizes, the frozen base model.

Shared by `model.py` (the whole config) and `pools.py` (reverse routes and
backend pools) so that neither imports the other's internals.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, WithJsonSchema

DEFAULT_BIND = "127.0.0.1:8080"


def split_hostport(text: str) -> tuple[str, int]:
    """'host:port', '[v6]:port' or ':port' (all interfaces) into (host, port)."""
    if text.startswith("["):
        host, sep, port = text[1:].partition("]:")
    else:
        host, sep, port = text.rpartition(":")
        if ":" in host:
            raise ValueError(f"IPv6 addresses must be bracketed: {text!r}")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"expected host:port, got {text!r}")
    return host or "0.0.0.0", int(port)


def _hostport(text: str) -> str:
    split_hostport(text)
    return text


def _port_spec(spec: int | str) -> int | str:
    low, _, high = str(spec).partition("-")
    if not low.isdigit() or (high and not high.isdigit()):
        raise ValueError(f"expected a port or a range like 8000-8999, got {spec!r}")
    if not 0 < int(low) <= int(high or low) < 65536:
        raise ValueError(f"port range out of order or bounds: {spec!r}")
    return spec


HostPort = Annotated[str, AfterValidator(_hostport)]
PortSpec = Annotated[int | str, AfterValidator(_port_spec)]


class Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


_DURATION_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(value: float | str) -> float:
    """Seconds, or a number with a unit: 250ms, 90s, 30m, 12h, 7d."""
    if isinstance(value, int | float):
        return float(value)
    text = value.strip().lower()
    for unit, factor in _DURATION_UNITS.items():
        number = text[: -len(unit)]
        if text.endswith(unit) and number.replace(".", "", 1).isdigit():
            return float(number) * factor
    raise ValueError(f"expected seconds or a duration like 30m, 12h, 7d; got {value!r}")


def parse_size(value: int | str) -> int:
    """Bytes, or a number with a unit: 512KiB, 100MiB, 2GiB (KB/MB/GB are read the same)."""
    if isinstance(value, int):
        return value
    text = value.strip().upper().replace("IB", "B")
    units = {"KB": 1024, "MB": 1024**2, "GB": 1024**3, "TB": 1024**4, "B": 1}
    for unit, factor in units.items():
        number = text[: -len(unit)].strip()
        if text.endswith(unit) and number.replace(".", "", 1).isdigit():
            return int(float(number) * factor)
    raise ValueError(f"expected bytes or a size like 64KiB, 500MiB, 2GiB; got {value!r}")


# Typed as numbers once validated; the file may write either form (the schema says so).
Duration = Annotated[
    float,
    BeforeValidator(parse_duration),
    WithJsonSchema({"anyOf": [{"type": "number"}, {"type": "string"}], "description": "seconds or 30s, 5m"}),
]
Size = Annotated[
    int,
    BeforeValidator(parse_size),
    WithJsonSchema({"anyOf": [{"type": "integer"}, {"type": "string"}], "description": "bytes or 64KiB"}),
]
