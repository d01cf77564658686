"""Encryption at rest for platform tokens: Fernet with several keys, newest first, for rotation."""

from __future__ import annotations

from cryptography.fernet import Fernet, MultiFernet

from herald_common.settings import Settings


class TokenCipher:
    def __init__(self, keys: list[str]) -> None:
        if not keys:
            raise ValueError("at least one encryption key is required")
        self._fernet = MultiFernet([Fernet(key.encode()) for key in keys])

    @classmethod
    def from_settings(cls, settings: Settings) -> TokenCipher:
        return cls([key.get_secret_value() for key in settings.encryption_keys])

    def encrypt(self, plaintext: str) -> bytes:
        return self._fernet.encrypt(plaintext.encode())

    def decrypt(self, token: bytes) -> str:
        return self._fernet.decrypt(token).decode()

    def rotate(self, token: bytes) -> bytes:
        """Re-encrypt ``token`` under the newest key."""
        return self._fernet.rotate(token)
