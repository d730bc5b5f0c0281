"""The admin listener: uvicorn serving the control plane's ASGI app inside lanner's own event loop.

The socket is bound here (so a taken port fails `lanner run` like any other
listener), then handed to uvicorn. uvicorn's own signal handling is switched
off: SIGINT/SIGTERM/SIGHUP belong to the gateway, which stops this server as
part of its shutdown. It must never run in a thread or a process of its own:
the API reads live connections and listeners straight from the gateway.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Iterator
from typing import Any

import uvicorn

from lanner.config.types import split_hostport
from lanner.net.tasks import spawn

log = logging.getLogger("lanner.admin")

STOP_TIMEOUT = 5


class _EmbeddedServer(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield  # the gateway owns the process's signals


class AdminServer:
    def __init__(self, app: Any, bind: str) -> None:
        self.bind = bind
        config = uvicorn.Config(
            app,
            http="httptools",
            ws="websockets-sansio",
            lifespan="off",
            log_config=None,
            access_log=False,  # state-changing calls go to the audit log; reads are not logged
            server_header=False,
            timeout_graceful_shutdown=STOP_TIMEOUT,
            ws_ping_interval=10.0,  # a stream client that stopped reading is closed within ~20 s
            ws_ping_timeout=10.0,
        )
        self._server = _EmbeddedServer(config)
        self._socket: socket.socket | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def address(self) -> str:
        assert self._socket is not None
        host, port = self._socket.getsockname()[:2]
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"

    def start(self) -> None:
        """Bind now (OSError if the address is taken) and serve in a task."""
        host, port = split_hostport(self.bind)
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((host, port))
            sock.listen(128)
            sock.setblocking(False)
        except OSError:
            sock.close()
            raise
        self._socket = sock
        logging.getLogger("uvicorn.error").setLevel(logging.WARNING)
        self._task = spawn(self._server.serve(sockets=[sock]), "admin-server")

    async def stop(self) -> None:
        self._server.should_exit = True
        if self._task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._task), STOP_TIMEOUT + 1)
            except TimeoutError:
                self._task.cancel()
        if self._socket is not None:
            self._socket.close()
