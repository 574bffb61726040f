"""A TCP proxy on 127.0.0.1 in front of PostgreSQL or Kafka, for network faults.

Two kinds of fault, as a service sees them:

- ``down()`` / ``up()``: every proxied connection is cut and new ones are refused (what a
  server restart looks like from the client);
- ``blackhole()`` / ``restore()``: a network partition. Connections stay open but no byte
  moves in either direction, and a new connection is accepted by the kernel but never
  answered, so the client's reads and connects hang until its own timeouts fire (as when
  packets are dropped). ``restore()`` lets the held bytes and connections through, as TCP
  retransmission does once the path is back (a partition shorter than the peers' timeouts).

:class:`TcpProxy` lives on an asyncio loop (the integration tests run it on theirs);
:class:`ProxyThread` runs a set of them on a loop of their own for a synchronous caller.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Coroutine
from typing import Any

CHUNK = 65536


class TcpProxy:
    def __init__(self, target_host: str, target_port: int, port: int = 0) -> None:
        self.target = (target_host, target_port)
        self.port = port  # 0: chosen by the first up(), kept afterwards
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._pumps: set[asyncio.Task[None]] = set()
        self._open = asyncio.Event()  # cleared while blackholed
        self._open.set()
        self.connections = 0  # accepted, so a run can show its traffic did pass the proxy
        self.bytes = 0

    @property
    def blackholed(self) -> bool:
        return not self._open.is_set()

    async def up(self) -> None:
        self._server = await asyncio.start_server(
            self._serve, "127.0.0.1", self.port, reuse_address=True
        )
        self.port = self._server.sockets[0].getsockname()[1]

    async def down(self) -> None:
        """Refuse new connections and cut the open ones (as a database restart does)."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()
        for pump in list(self._pumps):
            pump.cancel()
        await asyncio.gather(*self._pumps, return_exceptions=True)

    async def blackhole(self) -> None:
        """From now on no byte moves and new connections hang (nothing is closed)."""
        self._open.clear()

    async def restore(self) -> None:
        self._open.set()

    async def _serve(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        self._writers.add(client_w)
        self.connections += 1
        await self._open.wait()  # a connection made during a partition hangs here
        try:
            server_r, server_w = await asyncio.open_connection(*self.target)
        except OSError:
            client_w.transport.abort()
            self._writers.discard(client_w)
            return
        self._writers.add(server_w)
        for reader, writer in ((client_r, server_w), (server_r, client_w)):
            pump = asyncio.create_task(self._pump(reader, writer))
            self._pumps.add(pump)
            pump.add_done_callback(self._pumps.discard)

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, OSError):
            while True:
                # Not reading while blackholed lets the kernel buffers fill and the sender's
                # window close, as on a path that drops packets.
                await self._open.wait()
                data = await reader.read(CHUNK)
                if not data:
                    break
                await self._open.wait()  # bytes read just before the cut are held too
                self.bytes += len(data)
                writer.write(data)
                await writer.drain()
        writer.transport.abort()
        self._writers.discard(writer)


class ProxyThread:
    """Proxies served by an event loop in a daemon thread, driven from synchronous code."""

    def __init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self.proxies: dict[str, TcpProxy] = {}

    def _call(self, coroutine: Coroutine[Any, Any, Any]) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout=30)

    def add(self, name: str, target_host: str, target_port: int, port: int = 0) -> TcpProxy:
        async def create() -> TcpProxy:
            proxy = TcpProxy(target_host, target_port, port)
            await proxy.up()
            return proxy

        proxy: TcpProxy = self._call(create())
        self.proxies[name] = proxy
        return proxy

    def blackhole(self, name: str) -> None:
        self._call(self.proxies[name].blackhole())

    def restore(self, name: str) -> None:
        self._call(self.proxies[name].restore())

    def traffic(self) -> dict[str, str]:
        return {
            name: f"{p.connections} connections, {p.bytes / 2**20:.1f} MiB"
            for name, p in self.proxies.items()
        }

    def close(self) -> None:
        for proxy in self.proxies.values():
            with contextlib.suppress(Exception):
                self._call(proxy.down())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
