"""Real clients through one forward listener: curl, httpx, requests, python-socks, aiohttp."""

from __future__ import annotations

import asyncio
import ssl
import subprocess
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import pytest
import requests
from python_socks.async_.asyncio import Proxy

from tests.conftest import require_binary
from tests.integration.servers import Origin

BODY = "hello-from-origin\n"


@pytest.fixture(scope="module")
def proxy(module_lanner: Any) -> Any:
    return module_lanner({"listeners": [{"name": "forward"}]})


def curl(*args: str) -> subprocess.CompletedProcess[str]:
    binary = require_binary("curl")
    return subprocess.run(
        [binary, "-sS", "--max-time", "20", *args], capture_output=True, text=True, timeout=30
    )


@pytest.mark.parametrize(
    "mode",
    [
        ["-x", "http://127.0.0.1:{port}"],
        ["-p", "-x", "http://127.0.0.1:{port}"],
        ["--socks4", "127.0.0.1:{port}"],
        ["--socks4a", "127.0.0.1:{port}"],
        ["--socks5", "127.0.0.1:{port}"],
        ["--socks5-hostname", "127.0.0.1:{port}"],
    ],
    ids=["http", "connect", "socks4", "socks4a", "socks5", "socks5-hostname"],
)
def test_curl_every_entry_protocol(proxy: Any, origin: Origin, mode: list[str]) -> None:
    args = [part.format(port=proxy.port) for part in mode]
    host = "localhost" if mode[0] in ("--socks4a", "--socks5-hostname") else "127.0.0.1"
    result = curl(*args, f"http://{host}:{origin.port}/small")
    assert result.returncode == 0, result.stderr
    assert result.stdout == BODY


@pytest.mark.parametrize("flag", ["-x", "--socks5-hostname"])
def test_curl_https_through_tunnel(proxy: Any, tls_origin: Origin, ca_file: Path, flag: str) -> None:
    target = f"http://127.0.0.1:{proxy.port}" if flag == "-x" else f"127.0.0.1:{proxy.port}"
    result = curl("--cacert", str(ca_file), flag, target, f"https://localhost:{tls_origin.port}/small")
    assert result.returncode == 0, result.stderr
    assert result.stdout == BODY


def test_httpx_http_proxy_and_socks5(proxy: Any, origin: Origin, tls_origin: Origin, ca_file: Path) -> None:
    context = ssl.create_default_context(cafile=str(ca_file))
    for proxy_url in (proxy.http_proxy, f"socks5://127.0.0.1:{proxy.port}"):
        with httpx.Client(proxy=proxy_url, verify=context) as client:
            for _ in range(3):  # keep-alive through the proxy
                assert client.get(f"http://127.0.0.1:{origin.port}/small").text == BODY
            assert client.get(f"https://localhost:{tls_origin.port}/small").text == BODY


def test_requests_with_pysocks(proxy: Any, origin: Origin) -> None:
    for scheme in ("http", "socks5h", "socks4a"):
        proxies = {"http": f"{scheme}://127.0.0.1:{proxy.port}"}
        with requests.Session() as session:
            reply = session.get(f"http://localhost:{origin.port}/small", proxies=proxies, timeout=10)
            assert reply.status_code == 200
            assert reply.text == BODY


def test_requests_post_body_streams_through(proxy: Any, origin: Origin) -> None:
    payload = bytes(range(256)) * 4096  # 1 MiB
    proxies = {"http": proxy.http_proxy}
    reply = requests.post(f"http://127.0.0.1:{origin.port}/echo", data=payload, proxies=proxies, timeout=20)
    assert reply.content == payload

    def chunks() -> Any:
        for index in range(64):
            yield bytes([index]) * 1000

    reply = requests.post(f"http://127.0.0.1:{origin.port}/echo", data=chunks(), proxies=proxies, timeout=20)
    assert reply.content == b"".join(chunks())


def test_python_socks_and_aiohttp(proxy: Any, origin: Origin) -> None:
    async def scenario() -> None:
        socks = Proxy.from_url(f"socks5://127.0.0.1:{proxy.port}")
        sock = await socks.connect(dest_host="localhost", dest_port=origin.port, timeout=10)
        reader, writer = await asyncio.open_connection(sock=sock)
        writer.write(b"GET /small HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        response = await reader.read()
        writer.close()
        assert response.startswith(b"HTTP/1.1 200") and response.endswith(BODY.encode())

        async with aiohttp.ClientSession() as session:
            for _ in range(3):
                url = f"http://127.0.0.1:{origin.port}/small"
                async with session.get(url, proxy=proxy.http_proxy) as reply:
                    assert reply.status == 200
                    assert await reply.text() == BODY

    asyncio.run(scenario())


def test_connection_log_lines(proxy: Any, origin: Origin) -> None:
    result = curl("--socks5-hostname", f"127.0.0.1:{proxy.port}", f"http://localhost:{origin.port}/small")
    assert result.returncode == 0
    line = proxy.wait_log(
        rf"connection id=\w+\.\d+ listener=forward client=127\.0\.0\.1:\d+ proto=socks5 "
        rf"user=- dest=localhost:{origin.port} sni=- up=\d+ down=\d+ .*outcome=ok"
    )
    assert line
