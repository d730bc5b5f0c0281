"""Applies a reloaded config to a running gateway: validated completely, then swapped at once.

A reload (SIGHUP, the config file changing, `POST /api/v1/config/reload`) reads
the file, validates it, and builds the whole new generation (`lanner.generation`:
certificates read, the CA loaded, new addresses bound). Any failure leaves the
running config serving and is reported as `file:line: path: reason`. Then, in
one synchronous step, new connections get the new generation; open ones finish
on the one they started with; addresses no longer configured stop accepting
and their connections get `shutdown_grace` seconds before they are aborted.

A few settings live as long as the process (`pin`): the number of workers,
`data_dir`, where and how the writer process records, the log format and the
admin listener. A reload keeps their running values and names them in
`needs_restart`. This module never changes a generation connections hold.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from lanner.config.load import ConfigError
from lanner.config.model import Config
from lanner.control import metrics
from lanner.generation import BuildError, Generation, build, describe, services_for
from lanner.net.tasks import spawn

if TYPE_CHECKING:
    from lanner.app import Gateway

log = logging.getLogger("lanner")

_RESTART_ONLY = ("workers", "data_dir", "admin")
_RECORD_RESTART_ONLY = ("enabled", "path", "batch", "redact")  # the writer process's settings


@dataclass(frozen=True, slots=True)
class ReloadResult:
    ok: bool
    errors: list[str]  # `file:line: path: reason`, one per problem (ok: none)
    changed: list[str]  # top-level settings and `listeners.<name>` that differ from the running config
    needs_restart: list[str]  # settings the file changed that only a restart applies


def reload(gateway: Gateway, trigger: str) -> ReloadResult:
    """Re-read the gateway's config source and apply it, or keep the running config and say why."""
    source = gateway.source
    if source.path is None:
        return _refused(trigger, ["lanner runs on its embedded defaults: there is no config file to reload"])
    gateway.watcher.note_read(source.stamp())
    try:
        loaded = source.load()
    except ConfigError as exc:
        return _refused(trigger, [str(problem) for problem in exc.problems])
    config, pending = pin(loaded, gateway.started_config)
    previous = gateway.generation
    assert previous is not None, "reload before start"
    try:
        generation = build(config, services_for(config, previous), previous, config.workers > 1)
    except BuildError as exc:
        return _refused(trigger, [f"{source.path}: {problem}" for problem in exc.problems])
    changed = changes(previous.config, config)
    gateway.activate(generation)
    spawn(generation.serve(), name="listeners-serve")
    _log_listeners(previous, generation)
    if config.log.level != previous.config.log.level:
        logging.getLogger().setLevel(config.log.level.upper())
    if gateway.retention is not None:
        gateway.retention.config = config.record.retention  # read by its thread before each pass
    fields: dict[str, Any] = {
        "source": trigger,
        "changed": ", ".join(changed) or None,
        "needs_restart": ", ".join(pending) or None,
        "listeners": len(config.listeners),
        "pools": len(config.pools),
        "providers": len(config.vendors.providers),
    }
    if gateway.services.worker is not None:
        fields["worker"] = gateway.services.worker
    log.info("config reloaded", extra={"fields": fields})
    metrics.reload_counted(True)
    return ReloadResult(True, [], changed, pending)


def pin(loaded: Config, started: Config) -> tuple[Config, list[str]]:
    """`loaded` with what only a restart applies kept as the process started; and what that was.

    Recording that was off at start stays off, and retention that was off (no max_age, no
    max_size: its thread never started) stays off, until a restart.
    """
    pending = [key for key in _RESTART_ONLY if getattr(loaded, key) != getattr(started, key)]
    update: dict[str, Any] = {key: getattr(started, key) for key in pending}
    record = {
        key: getattr(started.record, key)
        for key in _RECORD_RESTART_ONLY
        if getattr(loaded.record, key) != getattr(started.record, key)
    }
    retention = started.record.retention
    if retention.max_age is None and retention.max_size is None and loaded.record.retention != retention:
        record["retention"] = retention
    if record:
        update["record"] = loaded.record.model_copy(update=record)
        pending += [f"record.{key}" for key in record]
    if loaded.log.format != started.log.format:
        update["log"] = loaded.log.model_copy(update={"format": started.log.format})
        pending.append("log.format")
    return (loaded.model_copy(update=update) if update else loaded), pending


def changes(running: Config, loaded: Config) -> list[str]:
    """Top-level settings that differ, then `listeners.<name>` for each listener added, removed or changed."""
    changed = [
        key
        for key in Config.model_fields
        if key != "listeners" and getattr(running, key) != getattr(loaded, key)
    ]
    before = {listener.name: listener for listener in running.listeners}
    after = {listener.name: listener for listener in loaded.listeners}
    names = [*before, *(name for name in after if name not in before)]
    return changed + [f"listeners.{name}" for name in names if before.get(name) != after.get(name)]


def _log_listeners(previous: Generation, generation: Generation) -> None:
    """Listeners that now accept where they did not, and addresses given up (stdout is for startup only)."""
    for acceptor in generation.opened:
        runtime = next(runtime for runtime in generation.runtimes if runtime.acceptor is acceptor)
        log.info("listener added", extra={"fields": {"listener": describe(runtime.config)}})
    kept = {runtime.acceptor for runtime in generation.runtimes}
    for runtime in previous.runtimes:
        if runtime.acceptor not in kept:
            fields = {"listener": runtime.name, "bind": runtime.config.bind, "open": len(runtime.live)}
            log.info("listener removed: no new connections; open ones may finish", extra={"fields": fields})


def _refused(trigger: str, errors: list[str]) -> ReloadResult:
    fields = {"source": trigger, "errors": "; ".join(errors)}
    log.error("config not reloaded: the running config stays", extra={"fields": fields})
    metrics.reload_counted(False)
    return ReloadResult(False, errors, [], [])
