"""A minimal HTTP/1.1 keep-alive client on asyncio streams, for the load generator.

httpx costs about 1 ms of CPU per request; on a 2-core machine that makes the load
generator, not the server, the bottleneck of a no-op baseline. This client does only what
the benchmark needs (one request at a time per connection, Content-Length or chunked
answers) at a fraction of that cost. ``LoadConfig.client = "httpx"`` switches back.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit


class TransportError(Exception):
    """The connection failed before a whole answer arrived."""


@dataclass
class RawResponse:
    status_code: int
    headers: dict[str, str]
    content: bytes

    @property
    def text(self) -> str:
        return self.content.decode(errors="replace")

    def json(self) -> Any:
        return json.loads(self.content)


class _Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    async def exchange(self, head: bytes, body: bytes) -> tuple[RawResponse, bool]:
        self.writer.write(head + body)
        await self.writer.drain()
        status_line = await self.reader.readuntil(b"\r\n")
        status = int(status_line.split(b" ", 2)[1])
        headers: dict[str, str] = {}
        while True:
            line = await self.reader.readuntil(b"\r\n")
            if line == b"\r\n":
                break
            name, _, value = line.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        if headers.get("transfer-encoding", "").lower() == "chunked":
            content = await self._chunked()
        else:
            content = await self.reader.readexactly(int(headers.get("content-length", "0")))
        keep = headers.get("connection", "").lower() != "close"
        return RawResponse(status, headers, content), keep

    async def _chunked(self) -> bytes:
        parts = []
        while True:
            size = int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16)
            if size == 0:
                await self.reader.readuntil(b"\r\n")
                return b"".join(parts)
            parts.append(await self.reader.readexactly(size))
            await self.reader.readexactly(2)

    def close(self) -> None:
        self.writer.close()


class RawClient:
    """A pool of at most ``max_connections`` keep-alive connections per host."""

    def __init__(self, max_connections: int, timeout: float) -> None:
        self.max_connections = max_connections
        self.timeout = timeout
        self._idle: dict[tuple[str, int], list[_Connection]] = {}
        self._slots: dict[tuple[str, int], asyncio.Semaphore] = {}

    async def request(
        self, method: str, url: str, headers: dict[str, str], content: bytes = b""
    ) -> RawResponse:
        parts = urlsplit(url)
        address = (parts.hostname or "127.0.0.1", parts.port or 80)
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        lines = [
            f"{method} {target} HTTP/1.1",
            f"host: {address[0]}:{address[1]}",
            f"content-length: {len(content)}",
        ]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        slot = self._slots.setdefault(address, asyncio.Semaphore(self.max_connections))
        async with slot:
            return await self._exchange(address, head, content)

    async def _exchange(self, address: tuple[str, int], head: bytes, body: bytes) -> RawResponse:
        idle = self._idle.setdefault(address, [])
        connection = idle.pop() if idle else None
        if connection is not None:
            try:
                return await self._on(connection, address, head, body)
            except TransportError:
                pass  # the server closed an idle connection: once more on a fresh one
        return await self._on(None, address, head, body)

    async def _on(
        self, connection: _Connection | None, address: tuple[str, int], head: bytes, body: bytes
    ) -> RawResponse:
        try:
            async with asyncio.timeout(self.timeout):
                if connection is None:
                    reader, writer = await asyncio.open_connection(*address)
                    connection = _Connection(reader, writer)
                response, keep = await connection.exchange(head, body)
        except (
            OSError,
            asyncio.IncompleteReadError,
            asyncio.LimitOverrunError,
            TimeoutError,
            ValueError,
            IndexError,
        ) as error:
            if connection is not None:
                connection.close()
            raise TransportError(f"{type(error).__name__}: {error}") from error
        if keep:
            self._idle[address].append(connection)
        else:
            connection.close()
        return response

    async def aclose(self) -> None:
        for connections in self._idle.values():
            for connection in connections:
                connection.close()
        self._idle.clear()
