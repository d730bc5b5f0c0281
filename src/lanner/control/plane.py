"""The control plane of one gateway process: its admin listener, store reader and live-stream hub.

Started by the gateway after its listeners are bound (in the only process,
or in worker 0 of `--workers N`), stopped first at shutdown so the API never
answers for a gateway that is gone.
"""

from __future__ import annotations

from lanner.control import api
from lanner.control.api_runtime import Target
from lanner.control.server import AdminServer
from lanner.control.store_reads import StoreReader
from lanner.control.stream import StreamHub


class ControlPlane:
    def __init__(self, gateway: Target) -> None:
        config = gateway.config
        self.reader = StoreReader(config.store_path) if config.record.enabled else None
        self.hub = StreamHub(self.reader, config.admin.stream_buffer, config.admin.stream_interval)
        self.server = AdminServer(api.build(gateway, self.reader, self.hub), config.admin.bind)

    def start(self) -> str:
        """Bind and serve (OSError if the address is taken); the URL it serves at."""
        self.server.start()
        return f"http://{self.server.address}"

    async def stop(self) -> None:
        await self.server.stop()
        if self.reader is not None:
            self.reader.close()
