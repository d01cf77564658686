"""One settings object for every Herald process, read from ``HERALD_*`` environment variables."""

from __future__ import annotations

import ipaddress
from functools import lru_cache
from typing import Annotated, ClassVar, Literal

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
    # API processes (uvicorn workers) sharing the port. One process is CPU-bound well before
    # Postgres is; each has its own database pool of `database_pool_size` connections.
    api_workers: int = Field(default=1, ge=1, le=64)
    # Peers whose X-Forwarded-For (and X-Forwarded-Proto) the API believes: addresses or
    # networks of the reverse proxies in front of it (an ingress controller's pods). None by
    # default, so a client cannot choose the address its sign-in throttles count against.
    trusted_proxies: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # The furthest ahead the API accepts a time: post schedules, list filters, and every later
    # endpoint taking a time (queue slots, recurring rules). Three years and a leap day; a
    # post further ahead is a typo, not a plan.
    schedule_max_ahead_days: int = Field(default=1096, ge=1, le=36_500)

    # Scheduler: a target is moved into the queue once it is due within the horizon, with an
    # exact deferral, so the queue (not a cron tick) decides when it fires.
    scheduler_horizon_seconds: float = 900.0
    scheduler_interval_seconds: float = 2.0
    scheduler_batch_size: int = 1000
    # Batches one pass moves at once once more than a batch is due, each in its own
    # transaction: Postgres spends most of a batch updating rows and indexes, which a second
    # connection overlaps (bench/README.md).
    scheduler_concurrency: int = Field(default=2, ge=1, le=16)
    # The repair pass re-enqueues targets this long overdue whose job vanished from Redis.
    scheduler_repair_grace_seconds: float = 30.0
    scheduler_repair_interval_seconds: float = 10.0

    # Publisher
    publisher_platforms: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: [
            "sandbox",
            "mastodon",
            "x",
            "linkedin",
            "bluesky",
            "telegram",
            "discord",
        ],
        description="Comma-separated platform queues this publisher process drains.",
    )
    # How often an idle worker asks its queue for due jobs: the floor of steady-state lateness
    # (p99 59 ms at 0.05, 28 ms at 0.02 here; bench/README.md), for ~50 cheap Redis reads a
    # second per queue.
    publisher_poll_delay_seconds: float = 0.02
    # Targets of one platform due at the same instant share a job of up to this many, claimed,
    # published (concurrently) and recorded together: a job costs arq ~20 Redis commands and a
    # claim or record costs a round of statements, whatever their size (docs/decisions.md).
    # 50 rather than 20 cut the publisher's CPU per target in the spike by ~17 % (bench/README).
    publisher_job_size: int = Field(default=50, ge=1, le=1000)
    # Bytes of pictures one publisher process holds at once: attempts whose pictures would
    # exceed it wait for others to finish (one larger than the budget runs alone).
    publisher_media_budget_bytes: int = Field(default=256 * 1024 * 1024, ge=1024 * 1024)
    # Jobs one worker runs at once: up to max_jobs x job_size requests per queue, of which at
    # most http_max_connections are in flight per process (the rest wait for a connection).
    publisher_max_jobs: int = 10
    publisher_job_timeout_seconds: float = 60.0
    # A target left `publishing` longer than this (its worker died mid-publish) is taken over
    # and reconciled. Longer than the job timeout, so a live worker is never overtaken.
    publisher_claim_lease_seconds: float = 90.0
    # On SIGTERM, in-flight publishes get this long to finish (match the pod's
    # terminationGracePeriodSeconds, minus a margin).
    publisher_grace_seconds: float = 25.0
    # Transient failures are retried after each of these delays, then the target fails. The
    # first retry comes after seconds: most 5xx and dropped connections are a blip, and a
    # minute's wait made a minute of lateness for each of them; seed 002's 1, 5 and 15 minutes
    # follow for an outage. A platform's own Retry-After, when longer, is waited instead.
    publisher_retry_delays_seconds: Annotated[list[float], NoDecode] = Field(
        default_factory=lambda: [3.0, 60.0, 300.0, 900.0], min_length=1
    )
    # Each retry waits its delay plus up to this fraction more, at random (0.5: the 3 s retry
    # comes after 3 to 4.5 s), so targets that failed together do not all come back at once.
    publisher_retry_jitter: float = Field(default=0.5, ge=0.0, le=10.0)
    # An unknown target on a platform that can be asked later (X, LinkedIn, Bluesky, Mastodon)
    # is looked for again this long after it became unknown, then this long after each look
    # (the platform may list a post late); not found after the last, it stays unknown.
    reconcile_delays_seconds: Annotated[list[float], NoDecode] = Field(
        default_factory=lambda: [60.0, 300.0, 900.0, 3600.0, 6 * 3600.0]
    )

    # HTTP out
    http_timeout_seconds: float = 15.0
    http_max_connections: int = 200

    # Operations
    # The scheduler, publisher and analytics serve /healthz, /readyz and /metrics on this
    # address (the API serves them on its own port). No port: the service's own default
    # (scheduler 9101, publisher 9102, analytics 9103); 0 picks a free port. Containers set
    # 0.0.0.0 and one port for all. A port in use is a start-up error, except in dev, where
    # a free port is taken instead.
    metrics_host: str = "127.0.0.1"
    metrics_port: int | None = Field(default=None, ge=0, le=65535)
    # A listening socket inherited from a supervisor (`make run` passes one per service), served
    # instead of binding HERALD_METRICS_HOST/PORT.
    metrics_fd: int | None = Field(default=None, ge=0)
    # A service loop (scheduler pass, publisher poll, analytics check) that has not finished
    # a turn for this long fails /healthz, so the pod is restarted; one that has not
    # succeeded for this long fails /readyz.
    health_stall_seconds: float = Field(default=60.0, gt=0)
    # How often each publisher queue's arq health-check key (`{queue}:health-check`) is
    # rewritten; it lives one second longer. The API's /readyz reports a platform with no
    # such key as having no live publisher.
    publisher_heartbeat_seconds: float = Field(default=5.0, gt=0)

    # Platforms
    sandbox_latency_ms: int = 0
    sandbox_failure_rate: float = Field(default=0.0, ge=0.0, le=1.0)
    mastodon_api_base: str = "https://mastodon.social"
    # Where each adapter sends its requests; tests and benchmarks point them at local servers.
    x_api_base: str = "https://api.x.com"
    linkedin_api_base: str = "https://api.linkedin.com"
    # LinkedIn's versioned APIs need a `LinkedIn-Version: YYYYMM` header; each version is
    # supported for about a year (learn.microsoft.com/linkedin/marketing/versioning).
    linkedin_version: str = "202510"
    # The PDS used when a Bluesky account names none of its own (bsky.social's entryway).
    bluesky_api_base: str = "https://bsky.social"
    telegram_api_base: str = "https://api.telegram.org"
    # Webhook URLs are stored as secrets; only their /api/webhooks/{id}/{token} path is used,
    # joined to this base, so a stored URL can never send Herald's traffic elsewhere.
    discord_api_base: str = "https://discord.com"

    # Account connection
    # OAuth 2.0 clients (authorization code with PKCE) for the platforms that connect through
    # OAuth. The redirect URI registered with each platform is
    # `{public_url}/v1/accounts/callback/{platform}`. A platform without a client id cannot be
    # connected (409 `platform-not-configured`).
    x_client_id: str | None = None
    x_client_secret: SecretStr | None = None
    x_authorize_url: str = "https://x.com/i/oauth2/authorize"
    x_token_url: str = "https://api.x.com/2/oauth2/token"  # noqa: S105 (a URL)
    x_revoke_url: str = "https://api.x.com/2/oauth2/revoke"
    # media.write: uploading pictures (POST /2/media/upload); X refuses uploads without it
    # (docs.x.com/fundamentals/authentication/oauth-2-0/authorization-code, scopes table).
    x_scopes: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: [
            "tweet.read",
            "tweet.write",
            "users.read",
            "offline.access",
            "media.write",
        ]
    )
    linkedin_client_id: str | None = None
    linkedin_client_secret: SecretStr | None = None
    linkedin_authorize_url: str = "https://www.linkedin.com/oauth/v2/authorization"
    linkedin_token_url: str = "https://www.linkedin.com/oauth/v2/accessToken"  # noqa: S105
    linkedin_scopes: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["openid", "profile", "w_member_social"]
    )
    # Mastodon: Herald registers an application on each instance the first time someone
    # connects an account there (POST /api/v1/apps) and keeps its client id and secret.
    # Granular scopes (docs.joinmastodon.org/api/oauth-scopes): the profile
    # (verify_credentials), reading back statuses (reconciliation, metrics), posting, media.
    mastodon_scopes: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["read:accounts", "read:statuses", "write:statuses", "write:media"]
    )
    # Shown to the person on the instance's authorization page and in their authorized apps.
    mastodon_app_name: str = "Herald"
    mastodon_app_website: str | None = None
    # How long a started connection (its state and PKCE verifier, kept in Redis) may wait for
    # the platform's callback; each state is used once.
    oauth_state_ttl_seconds: int = Field(default=600, ge=30)
    # Access tokens are refreshed when they expire within this margin (before publishing).
    token_refresh_margin_seconds: float = Field(default=300.0, ge=0)

    # AI writing assistant (herald_api.ai): any OpenAI-compatible chat-completions server
    # (OpenAI, Azure OpenAI, vLLM, Ollama, LM Studio). Without a key every AI endpoint
    # answers 503 saying how to configure one.
    openai_api_key: SecretStr | None = None
    openai_base_url: str = "https://api.openai.com/v1"
    openai_model: str = "gpt-4o-mini"
    # Whether the model reads pictures (alt text sends them as data URLs); 422 when not.
    openai_model_sees_images: bool = True
    openai_timeout_seconds: float = Field(default=60.0, gt=0)
    # Failed calls (5xx, timeouts, dropped connections, 429) are tried again this many
    # times, after openai_retry_backoff_seconds, doubled each time (a 429's Retry-After
    # when it asks for longer).
    openai_max_retries: int = Field(default=2, ge=0, le=10)
    openai_retry_backoff_seconds: float = Field(default=1.0, ge=0)
    # App-wide budgets shared by every API replica and AI worker (Redis token buckets):
    # OpenAI's usage tier 1 for gpt-4o-mini (platform.openai.com/docs/guides/rate-limits).
    openai_requests_per_minute: int = Field(default=500, ge=1)
    openai_tokens_per_minute: int = Field(default=200_000, ge=1)
    # The most a request waits for those budgets before answering 429 with Retry-After.
    openai_max_wait_seconds: float = Field(default=10.0, ge=0)
    # The longest answer asked of the model per call (and what a call reserves of the
    # tokens-per-minute budget beside its prompt).
    openai_max_completion_tokens: int = Field(default=2000, ge=16)
    # Tokens (prompt + completion) each workspace may use per calendar month (UTC).
    ai_monthly_token_quota: int = Field(default=2_000_000, ge=1)
    # Content plans (POST /v1/ai/batches): the most drafts one plan makes, the AI worker's
    # concurrent batches, and how long one batch job may run before arq runs it again.
    ai_batch_max_posts: int = Field(default=31, ge=1, le=200)
    ai_worker_max_jobs: int = Field(default=2, ge=1)
    ai_batch_timeout_seconds: float = Field(default=1800.0, gt=0)

    # Fernet keys, newest first; older keys still decrypt so keys can be rotated. The default
    # is the published development key, refused in every environment but dev.
    encryption_keys: Annotated[list[SecretStr], NoDecode] = Field(
        default_factory=lambda: [SecretStr(DEV_ENCRYPTION_KEY)]
    )

    # Auth
    # HS256 key for access tokens. A well-known key for dev only: every other environment
    # (test included) refuses to start with it (at least 32 bytes: HS256 wants a key as long
    # as its hash).
    DEV_JWT_SIGNING_KEY: ClassVar[str] = "dev-only-herald-jwt-signing-key-do-not-use-in-prod"
    jwt_signing_key: SecretStr = SecretStr(DEV_JWT_SIGNING_KEY)
    access_token_ttl_seconds: int = Field(default=900, ge=30)
    refresh_token_ttl_seconds: int = Field(default=30 * 24 * 3600, ge=60)
    email_verification_ttl_seconds: int = 48 * 3600
    password_reset_ttl_seconds: int = 3600
    invitation_ttl_seconds: int = 7 * 24 * 3600
    # Where links in emails point: the web app (verify, reset, accept an invitation).
    public_url: str = "http://127.0.0.1:8000"
    # Argon2id cost: pwdlib's defaults (RFC 9106's second recommended option). Hashing runs
    # in a pool of `password_hash_workers` threads, bounding memory to workers x memory_kib.
    password_hash_time_cost: int = Field(default=3, ge=1)
    password_hash_memory_kib: int = Field(default=65536, ge=8)
    password_hash_workers: int = Field(default=2, ge=1)
    # Throttles (Redis token buckets): attempts allowed per window, per client IP and per
    # account (the email, whether or not it has an account, so answers reveal nothing).
    login_per_ip: int = Field(default=20, ge=1)
    login_per_ip_seconds: float = 60.0
    login_per_account: int = Field(default=10, ge=1)
    login_per_account_seconds: float = 900.0
    signup_per_ip: int = Field(default=10, ge=1)
    signup_per_ip_seconds: float = 3600.0
    # After this many failed logins in a row from one client IP for one email, that IP is
    # locked out of that account for `lockout_seconds` (the owner elsewhere is not), and the
    # owner is told by email.
    lockout_threshold: int = Field(default=5, ge=1)
    lockout_seconds: float = 900.0
    # The global ceiling: this many failed logins for one email from all IPs within
    # `lockout_seconds` lock it for every IP that has not signed in to it successfully within
    # `login_known_source_seconds`, so guessing spread over many addresses stops too while
    # the owner still gets in from where they signed in before (or by a password reset).
    lockout_ceiling: int = Field(default=100, ge=1)
    login_known_source_seconds: float = Field(default=30 * 24 * 3600, gt=0)
    # Mail: `log` writes messages to the log (with their links in dev only); `smtp` sends.
    mail_backend: Literal["log", "smtp"] = "log"
    mail_from: str = "Herald <no-reply@herald.dev>"
    smtp_host: str = "127.0.0.1"
    smtp_port: int = 587
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_starttls: bool = True
    smtp_timeout_seconds: float = 15.0
    # The web app's origins allowed by CORS (comma-separated); none by default.
    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # Larger request bodies are refused with 413 before they are read.
    max_request_body_bytes: int = Field(default=1024 * 1024, ge=1024)
    # The largest picture POST /v1/media stores (16 MiB: Mastodon's image limit, the largest
    # of the platforms'); each platform's own smaller limit is checked when a post names it.
    media_max_bytes: int = Field(default=16 * 1024 * 1024, ge=1024)
    # The most memory a stored picture may take once decoded (width x height x bytes per
    # pixel x frames): what a 40-megapixel RGB photo needs. Stops small files that expand into
    # huge pictures (decompression bombs) before the API or a platform decodes them.
    media_max_decoded_bytes: int = Field(default=120_000_000, ge=1024 * 1024)

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _split_proxies(cls, value: object) -> object:
        if isinstance(value, str):
            return [p.strip() for p in value.split(",") if p.strip()]
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _proxies_are_addresses(cls, value: list[str]) -> list[str]:
        # uvicorn's middleware would take a typo as a literal host that never matches.
        for entry in value:
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError:
                raise ValueError(
                    f"HERALD_TRUSTED_PROXIES: {entry!r} is not an IP address or network"
                ) from None
        return value

    @field_validator("openai_api_key", mode="before")
    @classmethod
    def _blank_key_is_none(cls, value: object) -> object:
        """An empty HERALD_OPENAI_API_KEY (the Secret template's) turns the assistant off."""
        if isinstance(value, str) and not value.strip():
            return None
        return value

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        if isinstance(value, str):
            return [o.strip().rstrip("/") for o in value.split(",") if o.strip()]
        return value

    @model_validator(mode="after")
    def _no_dev_jwt_key_outside_dev(self) -> Settings:
        key = self.jwt_signing_key.get_secret_value()
        if self.environment != "dev" and (
            key == self.DEV_JWT_SIGNING_KEY or len(key.encode()) < 32
        ):
            raise ValueError(
                "HERALD_JWT_SIGNING_KEY is the development key or shorter than 32 bytes; set a "
                "random one (python -c 'import secrets; print(secrets.token_urlsafe(48))')"
            )
        return self

    @field_validator("x_scopes", "linkedin_scopes", "mastodon_scopes", mode="before")
    @classmethod
    def _split_scopes(cls, value: object) -> object:
        if isinstance(value, str):
            return [s for s in value.replace(",", " ").split() if s]
        return value

    @field_validator("publisher_platforms", mode="before")
    @classmethod
    def _split_platforms(cls, value: object) -> object:
        if isinstance(value, str):
            return [p.strip() for p in value.split(",") if p.strip()]
        return value

    @field_validator("publisher_retry_delays_seconds", "reconcile_delays_seconds", mode="before")
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
    def _no_dev_encryption_key_outside_dev(self) -> Settings:
        if self.environment != "dev" and any(
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


# A well-known key for development only; every other environment refuses it.
DEV_ENCRYPTION_KEY = "ZGV2LW9ubHktaGVyYWxkLWtleS1kby1ub3QtdXNlISE="


@lru_cache
def get_settings() -> Settings:
    return Settings()
