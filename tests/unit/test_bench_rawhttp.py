"""The load generator's HTTP client: answers read whole, connections kept, a silent server
timed out (a socket server in this process stands in for the services)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from bench.rawhttp import RawClient, TransportError

Answer = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def _read_request(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    return await reader.readexactly(length)


async def _serve(answer: Answer) -> tuple[asyncio.Server, list[int]]:
    connections: list[int] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(len(connections))
        try:
            while True:
                await answer(reader, writer)
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    return await asyncio.start_server(handle, "127.0.0.1", 0), connections


@pytest.fixture
async def client() -> AsyncIterator[RawClient]:
    raw = RawClient(max_connections=4, timeout=0.5)
    yield raw
    await raw.aclose()


def _url(server: asyncio.Server) -> str:
    return f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/v1/events"


async def test_answers_by_length_and_chunked_on_one_kept_connection(client: RawClient) -> None:
    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        body = await _read_request(reader)
        if body == b"chunked":
            writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
            writer.write(b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n")
        else:
            writer.write(
                b"HTTP/1.1 202 Accepted\r\ncontent-length: %d\r\n\r\n%s" % (len(body), body)
            )
        await writer.drain()

    server, connections = await _serve(answer)
    async with server:
        first = await client.request("POST", _url(server), {}, b'{"id":"1"}')
        second = await client.request("POST", _url(server), {}, b"chunked")
    assert (first.status_code, first.json()) == (202, {"id": "1"})
    assert (second.status_code, second.content) == (200, b"abcde")
    assert len(connections) == 1


async def test_a_server_that_never_answers_fails_the_request_at_its_timeout(
    client: RawClient,
) -> None:
    async def silent(reader: asyncio.StreamReader, _writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        await asyncio.sleep(3600)

    server, _ = await _serve(silent)
    async with server:
        started = asyncio.get_running_loop().time()
        with pytest.raises(TransportError, match="TimeoutError"):
            await client.request("POST", _url(server), {}, b"{}")
        waited = asyncio.get_running_loop().time() - started
    assert 0.5 <= waited < 3
