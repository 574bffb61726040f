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

Serve with ``uvicorn.run(app, http=BoundedHead, ...)``.
"""

from __future__ import annotations

import json
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from .problem import PROBLEM_JSON, problem_document

MAX_HEAD_BYTES = 64 * 1024
"""The request line and headers of one request. Well above what any client of ours sends:
a binary-mode event with the 16 extension attributes of 1,024 characters the contract
allows carries about 17 KiB of headers; a browser's cookies and the CSRF token about 1.
(nginx allows 4 x 8 KiB by default, h11 16 KiB.)"""

_REFUSAL = json.dumps(
    problem_document(
        431,
        "too-large",
        "Request Header Fields Too Large",
        f"the request line and headers hold at most {MAX_HEAD_BYTES} bytes",
        [{"field": "header", "reason": f"at most {MAX_HEAD_BYTES} bytes with the request line"}],
    )
).encode()


class BoundedHead(HttpToolsProtocol):
    """:class:`HttpToolsProtocol` refusing a request whose head passes `MAX_HEAD_BYTES`."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_read: int | None = 0
        """Bytes read of the current request's head; None from its headers' end until the
        end of its body (the next bytes begin the next request's head)."""

    def on_headers_complete(self) -> None:
        self._head_read = None
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._head_read = 0
        super().on_message_complete()

    def data_received(self, data: bytes) -> None:
        while data:
            read = self._head_read
            if read is None:
                super().data_received(data)
                return
            room = MAX_HEAD_BYTES - read
            if room <= 0:
                self._refuse()
                return
            part, data = data[:room], data[room:]  # a whole short request: no copy
            self._head_read = read + len(part)
            super().data_received(part)
            if self.transport.is_closing():
                return

    def _refuse(self) -> None:
        head = [b"HTTP/1.1 431 Request Header Fields Too Large\r\n"]
        head += [
            name + b": " + value + b"\r\n" for name, value in self.server_state.default_headers
        ]
        head.append(f"content-type: {PROBLEM_JSON}\r\n".encode())
        head.append(f"content-length: {len(_REFUSAL)}\r\nconnection: close\r\n\r\n".encode())
        self.transport.write(b"".join(head) + _REFUSAL)
        self.transport.close()
