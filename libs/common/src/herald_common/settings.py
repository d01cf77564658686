"""One settings object for every Herald process, read from ``HERALD_*`` environment variables."""

from __future__ import annotations

from functools import lru_cache
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

Environment = Literal["dev", "test", "production"]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="HERALD_", env_file=".env", extra="ignore")

    environment: Environment = "dev"
    log_level: str = "INFO"
    log_format: Literal["json", "console"] | None = Field(
        default=None, description="Log renderer; defaults to console in dev and json elsewhere."
    )

    database_url: str = "postgresql+asyncpg://postgres@127.0.0.1:5432/herald"
    database_pool_size: int = 10
    redis_url: str = "redis://127.0.0.1:6379/0"

    # API
    api_host: str = "127.0.0.1"
    api_port: int = 8000

    # Scheduler: a target is moved into the queue once it is due within the horizon, with an
    # exact deferral, so the queue (not a cron tick) decides when it fires.
    scheduler_horizon_seconds: float = 900.0
    scheduler_interval_seconds: float = 2.0
    scheduler_batch_size: int = 1000

    # Publisher
    publisher_platforms: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["sandbox", "mastodon"],
        description="Comma-separated platform queues this publisher process drains.",
    )
    publisher_poll_delay_seconds: float = 0.05
    publisher_max_jobs: int = 50
    publisher_job_timeout_seconds: float = 60.0
    # On SIGTERM, in-flight publishes get this long to finish (match the pod's
    # terminationGracePeriodSeconds, minus a margin).
    publisher_grace_seconds: float = 25.0
    # Transient failures are retried after each of these delays, then the target fails.
    publisher_retry_delays_seconds: Annotated[list[float], NoDecode] = Field(
        default_factory=lambda: [60.0, 300.0, 900.0]
    )

    # HTTP out
    http_timeout_seconds: float = 15.0
    http_max_connections: int = 100

    # Platforms
    sandbox_latency_ms: int = 0
    sandbox_failure_rate: float = Field(default=0.0, ge=0.0, le=1.0)
    mastodon_api_base: str = "https://mastodon.social"

    # Fernet keys, newest first; older keys still decrypt so keys can be rotated.
    encryption_keys: Annotated[list[SecretStr], NoDecode] = Field(
        default_factory=lambda: [SecretStr(DEV_ENCRYPTION_KEY)]
    )

    @field_validator("publisher_platforms", mode="before")
    @classmethod
    def _split_platforms(cls, value: object) -> object:
        if isinstance(value, str):
            return [p.strip() for p in value.split(",") if p.strip()]
        return value

    @field_validator("publisher_retry_delays_seconds", mode="before")
    @classmethod
    def _split_delays(cls, value: object) -> object:
        if isinstance(value, str):
            return [float(d) for d in value.split(",") if d.strip()]
        return value

    @field_validator("encryption_keys", mode="before")
    @classmethod
    def _split_keys(cls, value: object) -> object:
        if isinstance(value, str):
            return [k.strip() for k in value.split(",") if k.strip()]
        return value

    @model_validator(mode="after")
    def _no_dev_secrets_in_production(self) -> Settings:
        if self.environment == "production" and any(
            key.get_secret_value() == DEV_ENCRYPTION_KEY for key in self.encryption_keys
        ):
            raise ValueError(
                "HERALD_ENCRYPTION_KEYS still holds the development key; set real Fernet keys "
                "(python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key())')"
            )
        return self

    @property
    def effective_log_format(self) -> Literal["json", "console"]:
        if self.log_format is not None:
            return self.log_format
        return "console" if self.environment == "dev" else "json"


# A well-known key for development only; outside dev a real key must be configured.
DEV_ENCRYPTION_KEY = "ZGV2LW9ubHktaGVyYWxkLWtleS1kby1ub3QtdXNlISE="


@lru_cache
def get_settings() -> Settings:
    return Settings()
