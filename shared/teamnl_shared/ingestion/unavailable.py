"""Which errors mean "the database is unavailable for a moment" rather than "a bug".

A PostgreSQL restart, a failover or a lost connection surfaces on the request path as one of
these: the connect is refused (``OSError``), the server is starting or shutting down
(``CannotConnectNowError``, ``AdminShutdownError``: operator intervention, SQLSTATE 57),
the connection died mid-query (``ConnectionDoesNotExistError``, ``InterfaceError``:
SQLSTATE 08 or client side), the server is out of connections or memory (SQLSTATE 53), the
pool could not hand out a connection in time (``TimeoutError``), or a deadlock survived the
retries (SQLSTATE 40). The app answers each with RFC 9457 ``503`` and ``Retry-After``;
the request's transaction was rolled back, so the client retries it unchanged (a replay of
an event that did commit answers 200 with the original receipt).
"""

from __future__ import annotations

import asyncpg
from asyncpg import exceptions as pg

UNAVAILABLE_ERRORS: tuple[type[Exception], ...] = (
    OSError,  # ConnectionRefusedError, ConnectionResetError, TimeoutError (pool acquire)
    asyncpg.InterfaceError,  # "connection is closed", "pool is closing"
    pg.InternalClientError,  # a connection the server dropped mid-operation (seen in faults)
    asyncpg.PostgresConnectionError,  # SQLSTATE 08: ConnectionDoesNotExistError, ...
    pg.OperatorInterventionError,  # SQLSTATE 57: AdminShutdown, CannotConnectNow, Crash...
    pg.InsufficientResourcesError,  # SQLSTATE 53: TooManyConnectionsError, out of memory
    pg.TransactionRollbackError,  # SQLSTATE 40: deadlock or serialization, after retries
)


def is_unavailable(error: BaseException) -> bool:
    return isinstance(error, UNAVAILABLE_ERRORS)
