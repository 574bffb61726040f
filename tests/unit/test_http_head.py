"""A request's head is bounded (`teamnl_shared.http_head`): on a real uvicorn with httptools on
127.0.0.1, a head past `MAX_HEAD_BYTES` is answered 431 and its connection closed before
the server holds it; heads within it, bodies of any size the route takes, and pipelined
requests are served as before. The services and the dashboard are served with it."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from collections.abc import AsyncIterator
from typing import Any

import pytest
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import StreamingResponse

from support import eventually
from teamnl_shared import http_head
from teamnl_shared.http_head import MAX_HEAD_BYTES, BoundedHead
from teamnl_shared.problem import PROBLEM_JSON

SLOW = 0.4
"""`HEAD_SECONDS` in the tests of the head's time."""


def _app() -> FastAPI:
    app = FastAPI()

    @app.post("/echo")
    async def echo(request: Request) -> dict[str, int]:
        return {"body": len(await request.body()), "headers": len(request.headers)}

    @app.get("/slowly")
    async def slowly() -> StreamingResponse:
        async def parts() -> AsyncIterator[bytes]:
            for _ in range(4):
                await asyncio.sleep(SLOW / 2)
                yield b"part;"

        return StreamingResponse(parts(), media_type="text/plain")

    return app


@contextlib.asynccontextmanager
async def serving() -> AsyncIterator[int]:
    config = uvicorn.Config(
        _app(), host="127.0.0.1", port=0, http=BoundedHead, log_config=None, lifespan="off"
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())

    async def started() -> bool:
        if task.done():
            task.result()
        return server.started

    await eventually(started)
    try:
        yield server.servers[0].sockets[0].getsockname()[1]
    finally:
        server.should_exit = True
        await task


async def exchange(port: int, request: bytes) -> bytes:
    """Send `request` (in one write), read until the server closes or goes quiet."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request)
    await writer.drain()
    answer = b""
    with contextlib.suppress(TimeoutError, ConnectionResetError):
        while chunk := await asyncio.wait_for(reader.read(65536), 1.0):
            answer += chunk
    writer.close()
    return answer


def post(headers: dict[str, str], body: bytes = b"{}") -> bytes:
    lines = [f"{name}: {value}" for name, value in headers.items()]
    head = "\r\n".join(["POST /echo HTTP/1.1", "host: t", f"content-length: {len(body)}", *lines])
    return head.encode() + b"\r\n\r\n" + body


def statuses(answer: bytes) -> list[int]:
    """The status of each response, in order (a response's status line follows the body of
    the one before it)."""
    return [int(status) for status in re.findall(rb"HTTP/1\.1 (\d{3}) ", answer)]


@pytest.mark.parametrize(
    "headers",
    [
        {"x-big": "v" * (MAX_HEAD_BYTES + 1)},
        {f"x-{i}": "v" * 100 for i in range(MAX_HEAD_BYTES // 100)},
        {"x-big": "v" * (10 * MAX_HEAD_BYTES)},
    ],
    ids=["one-header", "many-headers", "ten-times"],
)
async def test_a_head_past_the_bound_is_refused_with_431(headers: dict[str, str]) -> None:
    async with serving() as port:
        answer = await exchange(port, post(headers))
    assert statuses(answer) == [431]
    head, _, body = answer.partition(b"\r\n\r\n")
    assert f"content-type: {PROBLEM_JSON}".encode() in head
    assert b"connection: close" in head
    problem = json.loads(body)
    assert problem["status"] == 431 and str(MAX_HEAD_BYTES) in problem["detail"]


async def test_a_long_url_counts_as_head() -> None:
    async with serving() as port:
        answer = await exchange(port, b"GET /" + b"a" * MAX_HEAD_BYTES + b" HTTP/1.1\r\n\r\n")
    assert statuses(answer) == [431]


async def test_heads_within_the_bound_and_bodies_of_any_size_are_served() -> None:
    near = {"x-near": "v" * (MAX_HEAD_BYTES - 200)}
    body = b"x" * (4 * MAX_HEAD_BYTES)  # arrives with its head in the same reads
    async with serving() as port:
        within = await exchange(port, post(near))
        large = await exchange(port, post({"x-small": "v"}, body))
    assert statuses(within) == [200]
    assert statuses(large) == [200]
    assert json.loads(large.partition(b"\r\n\r\n")[2]) == {"body": len(body), "headers": 3}


async def test_every_request_of_a_kept_alive_connection_is_bounded() -> None:
    """After a request served, the next one on the same connection is bounded too."""
    async with serving() as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(post({"x-small": "v"}))
        first = await reader.readuntil(b'"headers":3}')
        writer.write(post({"x-big": "v" * (MAX_HEAD_BYTES + 1)}))
        second = await asyncio.wait_for(reader.read(), 5.0)
        writer.close()
    assert statuses(first) == [200]
    assert statuses(second) == [431]


async def test_pipelined_requests_on_one_connection_are_each_bounded_afresh() -> None:
    """Three requests of three quarters of the bound each, sent in one write: each is within
    it, so all three are served; the count starts again with each request."""
    each = {"x-part": "v" * (MAX_HEAD_BYTES * 3 // 4)}
    async with serving() as port:
        answer = await exchange(port, post(each) * 3)
    assert statuses(answer) == [200, 200, 200]


@pytest.fixture
def head_seconds(monkeypatch: pytest.MonkeyPatch) -> float:
    """`HEAD_SECONDS` made `SLOW`, `BODY_IDLE_SECONDS` twice that."""
    monkeypatch.setattr(http_head, "HEAD_SECONDS", SLOW)
    monkeypatch.setattr(http_head, "BODY_IDLE_SECONDS", 2 * SLOW)
    return SLOW


async def read_all(reader: asyncio.StreamReader, within: float = 5.0) -> bytes:
    return await asyncio.wait_for(reader.read(), within)


async def test_a_connection_that_sends_nothing_is_answered_408_and_closed(
    head_seconds: float,
) -> None:
    async with serving() as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        started = asyncio.get_running_loop().time()
        answer = await read_all(reader)
        waited = asyncio.get_running_loop().time() - started
        writer.close()
    assert statuses(answer) == [408]
    problem = json.loads(answer.partition(b"\r\n\r\n")[2])
    assert problem["status"] == 408 and problem["type"] == "urn:teamnl:problem:timeout"
    assert waited >= head_seconds


async def test_a_head_sent_a_byte_at_a_time_is_cut_off(head_seconds: float) -> None:
    """Slowloris: each byte in time, the head never complete."""
    request = post({"x-slow": "v" * 100})
    answer = b""
    async with serving() as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        for byte in request[:-4]:  # never the blank line that ends the head
            writer.write(bytes([byte]))
            with contextlib.suppress(TimeoutError):  # a pause between two bytes
                answer = await asyncio.wait_for(reader.read(65536), head_seconds / 20)
            if answer:
                answer += await read_all(reader)
                break
        writer.close()
    assert statuses(answer) == [408]


async def test_a_body_that_pauses_too_long_is_answered_408(head_seconds: float) -> None:
    body = b'{"late": true}'
    async with serving() as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(post({}, body)[:-4])  # the head and part of the body; the rest never
        answer = await read_all(reader)
        writer.close()
    assert statuses(answer) == [408]
    [error] = json.loads(answer.partition(b"\r\n\r\n")[2])["errors"]
    assert error["field"] == "body"


async def test_a_body_that_keeps_coming_may_take_its_time(head_seconds: float) -> None:
    """Each pause shorter than `BODY_IDLE_SECONDS`, the whole body longer."""
    body = b'{"slow": "' + b"x" * 8 + b'"}'
    async with serving() as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(post({}, body)[: -len(body)])
        for byte in body:
            await asyncio.sleep(head_seconds / 2)
            writer.write(bytes([byte]))
        answer = await reader.readuntil(b'"headers":2}')
        writer.close()
    assert statuses(answer) == [200]
    assert json.loads(answer.partition(b"\r\n\r\n")[2])["body"] == len(body)


async def test_the_time_bounds_a_request_as_it_arrives_only(head_seconds: float) -> None:
    """A body that comes after the head's time (within its own), a response that streams
    for longer, and the next request of a kept-alive connection sent after longer than the
    head's time (counted from its own first byte) are all served."""
    body = b'{"late": true}'
    async with serving() as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(post({}, body)[: -len(body)])  # the head; the body later
        await asyncio.sleep(1.5 * head_seconds)
        writer.write(body)
        first = await reader.readuntil(b'"headers":2}')
        await asyncio.sleep(1.5 * head_seconds)  # idle, within uvicorn's keep-alive (5 s)
        writer.write(b"GET /slowly HTTP/1.1\r\nhost: t\r\nconnection: close\r\n\r\n")
        second = await read_all(reader)
        writer.close()
    assert statuses(first) == [200]
    assert statuses(second) == [200] and second.count(b"part;") == 4


def test_the_services_and_the_dashboard_are_served_with_the_bound(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from teamnl_dashboard import main as dashboard_main
    from teamnl_shared.ingestion import server

    runs: list[dict[str, Any]] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **options: runs.append(options))
    monkeypatch.setattr(server, "configure_logging", lambda *args: None)
    monkeypatch.setattr(dashboard_main, "configure_logging", lambda *args: None)
    monkeypatch.setattr(dashboard_main, "create_app", lambda settings: FastAPI())
    monkeypatch.setenv("DASHBOARD_DATABASE_URL", "postgresql://u@localhost/d")
    server.serve(_settings(), lambda settings: FastAPI())
    dashboard_main.main()
    assert [run["http"] for run in runs] == [BoundedHead, BoundedHead]


def _settings() -> Any:
    from teamnl_shared.ingestion.settings import IngestionSettings

    return IngestionSettings(database_url="postgresql://u@localhost/d", environment="test")
