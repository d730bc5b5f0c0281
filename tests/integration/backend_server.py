"""A backend for reverse-proxy tests, run as its own process so that a test can kill it.

    python tests/integration/backend_server.py PORT NAME

Answers every request with JSON naming itself and echoing what it got,
except:
  /health            200, or 503 after POST /control?health=down
  /slow?s=SECONDS    answers after sleeping
  /stream?n=N&every=SECONDS   N chunks, one every SECONDS
  /reset             a response head and part of its body, then a TCP reset
  /status/NNN        that status
POST /control?health=down|up&fail=STATUS|off&delay=SECONDS changes how it behaves
(`fail` answers every request but /health and /control with STATUS).
"""

from __future__ import annotations

import asyncio
import json
import socket
import struct
import sys

from aiohttp import web

state: dict[str, object] = {"health": "up", "fail": None, "delay": 0.0}


async def control(request: web.Request) -> web.Response:
    query = request.query
    if "health" in query:
        state["health"] = query["health"]
    if "fail" in query:
        state["fail"] = None if query["fail"] == "off" else int(query["fail"])
    if "delay" in query:
        state["delay"] = float(query["delay"])
    return web.json_response(state)


async def health(request: web.Request) -> web.Response:
    return web.Response(status=200 if state["health"] == "up" else 503, text=str(state["health"]))


async def reset(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse(headers={"Content-Length": "100000"})
    await response.prepare(request)
    await response.write(b"x" * 1000)
    await asyncio.sleep(0.05)
    transport = request.transport
    assert transport is not None
    sock = transport.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()
    return response


async def stream(request: web.Request) -> web.StreamResponse:
    count, every = int(request.query.get("n", "10")), float(request.query.get("every", "0.1"))
    response = web.StreamResponse()
    response.enable_chunked_encoding()
    await response.prepare(request)
    for index in range(count):
        await response.write(f"chunk {index} from {NAME}\n".encode())
        await asyncio.sleep(every)
    await response.write_eof()
    return response


async def everything(request: web.Request) -> web.StreamResponse:
    if request.path == "/reset":
        return await reset(request)
    if request.path == "/stream":
        return await stream(request)
    if state["delay"]:
        await asyncio.sleep(float(state["delay"]))  # type: ignore[arg-type]
    if request.path == "/slow":
        await asyncio.sleep(float(request.query.get("s", "1")))
    body = await request.read()
    status = 200
    if request.path.startswith("/status/"):
        status = int(request.path.rsplit("/", 1)[1])
    elif state["fail"] is not None:
        status = int(state["fail"])  # type: ignore[call-overload]
    echo = {
        "backend": NAME,
        "method": request.method,
        "path": request.path_qs,
        "headers": [[name, value] for name, value in request.headers.items()],
        "body_length": len(body),
        "peer": request.transport.get_extra_info("peername")[1] if request.transport else None,
    }
    return web.Response(status=status, text=json.dumps(echo), content_type="application/json")


def main() -> None:
    global NAME
    port, NAME = int(sys.argv[1]), sys.argv[2]
    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_post("/control", control)
    app.router.add_get("/health", health)
    app.router.add_route("*", "/{tail:.*}", everything)
    print("ready", flush=True)
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None, handle_signals=True)


NAME = "?"

if __name__ == "__main__":
    main()
