"""Settings: read from HERALD_* variables, and refusing unsafe defaults outside dev."""

from __future__ import annotations

import secrets

import pytest
from cryptography.fernet import Fernet
from pydantic import ValidationError

from herald_common.crypto import TokenCipher
from herald_common.platforms.registry import PLATFORM_NAMES
from herald_common.settings import DEV_ENCRYPTION_KEY, Environment, Settings


def test_lists_are_read_from_comma_separated_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HERALD_PUBLISHER_PLATFORMS", "sandbox, mastodon")
    monkeypatch.setenv("HERALD_PUBLISHER_RETRY_DELAYS_SECONDS", "1,5,15")
    settings = Settings()
    assert settings.publisher_platforms == ["sandbox", "mastodon"]
    assert settings.publisher_retry_delays_seconds == [1.0, 5.0, 15.0]


def test_an_empty_ai_key_leaves_the_assistant_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HERALD_OPENAI_API_KEY", "")
    assert Settings().openai_api_key is None
    monkeypatch.setenv("HERALD_OPENAI_API_KEY", "sk-real")
    key = Settings().openai_api_key
    assert key is not None and key.get_secret_value() == "sk-real"
    assert "sk-real" not in repr(Settings())


def fernet_key() -> str:
    return Fernet.generate_key().decode()


def jwt_key() -> str:
    return secrets.token_urlsafe(48)


@pytest.mark.parametrize("environment", ["test", "production"])
def test_every_environment_but_dev_refuses_the_development_encryption_key(
    environment: Environment,
) -> None:
    with pytest.raises(ValidationError, match="HERALD_ENCRYPTION_KEYS"):
        Settings(
            environment=environment,
            encryption_keys=[fernet_key(), DEV_ENCRYPTION_KEY],
            jwt_signing_key=jwt_key(),
        )
    Settings(environment=environment, encryption_keys=[fernet_key()], jwt_signing_key=jwt_key())


@pytest.mark.parametrize("environment", ["test", "production"])
@pytest.mark.parametrize("key", [Settings.DEV_JWT_SIGNING_KEY, "too-short-for-hs256"])
def test_every_environment_but_dev_refuses_the_development_or_a_short_jwt_signing_key(
    environment: Environment, key: str
) -> None:
    with pytest.raises(ValidationError, match="HERALD_JWT_SIGNING_KEY"):
        Settings(environment=environment, encryption_keys=[fernet_key()], jwt_signing_key=key)


def test_dev_runs_with_the_development_keys() -> None:
    settings = Settings(
        environment="dev",
        encryption_keys=[DEV_ENCRYPTION_KEY],
        jwt_signing_key=Settings.DEV_JWT_SIGNING_KEY,
    )
    assert settings.encryption_keys[0].get_secret_value() == DEV_ENCRYPTION_KEY


def test_the_jwt_signing_key_is_never_shown() -> None:
    settings = Settings(jwt_signing_key="a-secret-that-is-long-enough-for-hs256-signing")
    assert "a-secret" not in repr(settings)
    assert "a-secret" not in str(settings.model_dump())


def test_tokens_encrypted_under_an_old_key_still_decrypt_after_rotation() -> None:
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    token = TokenCipher([old]).encrypt("secret-token")
    rotated = TokenCipher([new, old])
    assert rotated.decrypt(token) == "secret-token"
    assert TokenCipher([new]).decrypt(rotated.rotate(token)) == "secret-token"


def test_a_publisher_drains_every_platform_unless_told_otherwise() -> None:
    assert sorted(Settings().publisher_platforms) == sorted(PLATFORM_NAMES)


def test_trusted_proxies_are_addresses_or_networks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HERALD_TRUSTED_PROXIES", "10.0.0.0/8, 127.0.0.1,fd00::/8")
    assert Settings().trusted_proxies == ["10.0.0.0/8", "127.0.0.1", "fd00::/8"]
    # uvicorn would keep a name as a literal that no peer address ever matches.
    monkeypatch.setenv("HERALD_TRUSTED_PROXIES", "ingress-nginx")
    with pytest.raises(ValidationError, match="not an IP address or network"):
        Settings()
