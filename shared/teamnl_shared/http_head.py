"""uvicorn's httptools protocol with a request's head (its request line and headers) bounded.

uvicorn bounds the head only with h11 (``h11_max_incomplete_event_size``); with httptools,
the parser every service runs on (far cheaper per request than h11, which is pure Python),
it reads a head of any size into memory. One anonymous request to ``/healthz`` with a
300 MB header took an ingestion service from 95 MB to 663 MB of memory (370 MB stayed),
before any route or key was looked at: a few such requests and the service is gone.

:class:`BoundedHead` counts the bytes of each request from its first byte until its headers
are complete and answers **431** (an RFC 9457 problem) and closes the connection once they
pass :data:`MAX_HEAD_BYTES`. The body is bounded per route (``read_body``), not here.
The bytes after one request's body in the same read (a pipelined request) are counted from
the next read on: at most one read more than the bound.

It also times each request as it arrives: its head must arrive within :data:`HEAD_SECONDS`
of the connection's start or of its own first byte, and its body may pause at most
:data:`BODY_IDLE_SECONDS` between two reads; else **408** (when no response has started)
and the connection is closed. uvicorn times a connection out only between two requests
(keep-alive): one that was opened and sent nothing, or that sent a head or a body a byte at
a time (slowloris), was held for ever with its socket - a form's body, for one, is read by
the dashboard's CSRF check before anyone has signed in.

Serve with ``uvicorn.run(app, http=BoundedHead, ...)``.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from .problem import PROBLEM_JSON, problem_document

MAX_HEAD_BYTES = 64 * 1024
"""The request line and headers of one request. Well above what any client of ours sends:
a binary-mode event with the 16 extension attributes of 1,024 characters the contract
allows carries about 17 KiB of headers; a browser's cookies and the CSRF token about 1.
(nginx allows 4 x 8 KiB by default, h11 16 KiB.)"""

HEAD_SECONDS = 20.0
"""The time a request's head may take to arrive. Every client of ours writes one at once;
Apache's mod_reqtimeout allows 20 s to the first byte, nginx 60 s for the whole head."""

BODY_IDLE_SECONDS = 60.0
"""The longest pause between two reads of a request's body (nginx's ``client_body_timeout``):
a body of any size may take its time, as long as it keeps coming."""

_TOO_LARGE = (
    b"431 Request Header Fields Too Large",
    problem_document(
        431,
        "too-large",
        "Request Header Fields Too Large",
        f"the request line and headers hold at most {MAX_HEAD_BYTES} bytes",
        [{"field": "header", "reason": f"at most {MAX_HEAD_BYTES} bytes with the request line"}],
    ),
)


class BoundedHead(HttpToolsProtocol):
    """:class:`HttpToolsProtocol` refusing a request whose head passes `MAX_HEAD_BYTES` or
    takes longer than `HEAD_SECONDS` to arrive, or whose body pauses longer than
    `BODY_IDLE_SECONDS`."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_read: int | None = 0
        """Bytes read of the current request's head; None from its headers' end until the
        end of its body (the next bytes begin the next request's head)."""
        self._timer: asyncio.TimerHandle | None = None
        """While a request arrives: its head's time (from the connection's start or the
        head's first byte), then its body's pause (from the head's end or the last read)."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm(HEAD_SECONDS)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def on_headers_complete(self) -> None:
        self._head_read = None
        self._arm(BODY_IDLE_SECONDS)
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._head_read = 0
        self._disarm()
        super().on_message_complete()

    def data_received(self, data: bytes) -> None:
        while data:
            read = self._head_read
            if read is None:
                self._arm(BODY_IDLE_SECONDS)  # the body came on
                super().data_received(data)
                return
            room = MAX_HEAD_BYTES - read
            if room <= 0:
                self._refuse(*_TOO_LARGE)
                return
            if self._timer is None:  # a head's first byte
                self._arm(HEAD_SECONDS)
            part, data = data[:room], data[room:]  # a whole short request: no copy
            self._head_read = read + len(part)
            super().data_received(part)
            if self.transport.is_closing():
                return

    def _arm(self, seconds: float) -> None:
        self._disarm()
        self._timer = self.loop.call_later(seconds, self._too_slow)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _too_slow(self) -> None:
        self._timer = None
        if self.transport.is_closing():
            return
        if self._head_read is None:
            what = f"the body may pause at most {BODY_IDLE_SECONDS:g} s"
        elif self.cycle is not None and not self.cycle.response_complete:
            self._arm(HEAD_SECONDS)  # a head pipelined behind a response
            return  # still going: timed again after it
        else:
            what = f"the request line and headers must arrive within {HEAD_SECONDS:g} s"
        if self.cycle is not None and self.cycle.response_started:
            self.transport.close()  # the app answered already: nothing more can be said
            return
        field = "body" if self._head_read is None else "header"
        document = problem_document(
            408, "timeout", "Request Timeout", what, [{"field": field, "reason": what}]
        )
        self._refuse(b"408 Request Timeout", document)

    def _refuse(self, status: bytes, document: dict[str, Any]) -> None:
        body = json.dumps(document).encode()
        head = [b"HTTP/1.1 " + status + b"\r\n"]
        head += [
            name + b": " + value + b"\r\n" for name, value in self.server_state.default_headers
        ]
        head.append(f"content-type: {PROBLEM_JSON}\r\n".encode())
        head.append(f"content-length: {len(body)}\r\nconnection: close\r\n\r\n".encode())
        self.transport.write(b"".join(head) + body)
        self.transport.close()
