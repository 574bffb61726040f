"""Password hashing with Argon2id (argon2-cffi's recommended parameters).

Hashing and verifying cost ~0.2 s of CPU each; the async helpers run them on a small,
bounded thread pool (argon2-cffi releases the GIL), so sign-ins never stall the event loop
that also serves the API, the live stream and the consumer, and a burst of sign-ins queues
instead of taking every core.
"""

from __future__ import annotations

import asyncio
import functools
import os
from concurrent.futures import ThreadPoolExecutor

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

MIN_LENGTH = 12
HASHING_THREADS = max(1, min(4, (os.cpu_count() or 1) // 2))
_hasher = PasswordHasher()
_threads = ThreadPoolExecutor(max_workers=HASHING_THREADS, thread_name_prefix="argon2")


@functools.cache
def _dummy_hash() -> str:
    """Verified when the e-mail address is unknown, so a wrong address costs as much time
    as a wrong password and response times do not tell which addresses exist. Made at the
    first sign-in, not at import: every process that reads the dashboard's settings imports
    this module (a rebuild's, a worker's), and the hash took 0.12 s of each one's start."""
    return _hasher.hash("not a member's password")


class WeakPassword(ValueError):
    pass


def hash_password(password: str) -> str:
    if len(password) < MIN_LENGTH:
        raise WeakPassword(f"a password needs at least {MIN_LENGTH} characters")
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    try:
        return (
            _hasher.verify(password_hash or _dummy_hash(), password) and password_hash is not None
        )
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash: str) -> bool:
    return _hasher.check_needs_rehash(password_hash)


async def hash_password_off_loop(password: str) -> str:
    """`hash_password` on the hashing threads."""
    if len(password) < MIN_LENGTH:  # refused at once, without queueing
        raise WeakPassword(f"a password needs at least {MIN_LENGTH} characters")
    return await asyncio.get_running_loop().run_in_executor(_threads, hash_password, password)


async def verify_password_off_loop(password_hash: str | None, password: str) -> bool:
    """`verify_password` on the hashing threads (the dummy hash when there is no member)."""
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(_threads, verify_password, password_hash, password)
