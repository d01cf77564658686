"""Argon2id password hashing, always off the event loop.

A hash costs tens of milliseconds of CPU and ``password_hash_memory_kib`` of memory, so it
runs in a small pool of its own: the loop keeps serving, and a burst of logins queues here
instead of exhausting memory.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher

from herald_common.settings import Settings

MIN_PASSWORD_LENGTH = 10
MAX_PASSWORD_LENGTH = 256


class PasswordHasher:
    def __init__(self, settings: Settings) -> None:
        self._hash = PasswordHash(
            (
                Argon2Hasher(
                    time_cost=settings.password_hash_time_cost,
                    memory_cost=settings.password_hash_memory_kib,
                ),
            )
        )
        self._pool = ThreadPoolExecutor(
            max_workers=settings.password_hash_workers, thread_name_prefix="argon2"
        )
        # Verified when an email has no account, so that answer takes as long as a wrong
        # password and timing does not tell which emails are registered.
        self._decoy = self._hash.hash("herald-decoy-password")

    async def hash(self, password: str) -> str:
        return await asyncio.get_running_loop().run_in_executor(
            self._pool, self._hash.hash, password
        )

    async def verify(self, password: str, password_hash: str | None) -> bool:
        """Whether ``password`` matches; ``None`` (no such user) costs the same and is False."""
        matched = await asyncio.get_running_loop().run_in_executor(
            self._pool, self._hash.verify, password, password_hash or self._decoy
        )
        return matched and password_hash is not None

    def close(self) -> None:
        self._pool.shutdown(wait=True)
