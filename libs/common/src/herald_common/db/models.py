"""Herald's tables. Every tenant-owned row carries ``workspace_id``; times are UTC timestamptz."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, cast

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    func,
    literal_column,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from herald_common.ids import new_id
from herald_common.roles import ApiKeyScope, Role
from herald_common.statuses import AccountStatus, PostStatus, TargetStatus

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


# Posts in order of scheduled time, a post with no time (a draft) after every time: 'infinity'
# is the timestamptz Postgres orders after all others. Written as SQL so the index on it and
# the queries it serves (herald_api.posts.repository) are the same expression to the planner.
NO_TIME = literal_column("'infinity'::timestamptz", DateTime(timezone=True))
SCHEDULE_ORDER_SQL = "coalesce(scheduled_at, 'infinity'::timestamptz)"


def _in(values: Any) -> str:
    return ", ".join(f"'{v.value}'" for v in values)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    # Fetch server-made values (created_at, updated_at) with RETURNING on flush, so objects
    # stay readable after commit without a lazy load.
    __mapper_args__ = {"eager_defaults": True}
    type_annotation_map = {
        datetime: DateTime(timezone=True),
        uuid.UUID: UUID(as_uuid=True),
        dict[str, Any]: JSONB,
    }


def _pk() -> Mapped[uuid.UUID]:
    return mapped_column(primary_key=True, default=new_id)


def _created() -> Mapped[datetime]:
    return mapped_column(server_default=func.now())


def _workspace_fk() -> Mapped[uuid.UUID]:
    return mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"), index=True)


class Workspace(Base):
    __tablename__ = "workspaces"

    id: Mapped[uuid.UUID] = _pk()
    name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = _created()


class User(Base):
    """A person who signs in with an email and a password."""

    __tablename__ = "users"
    __table_args__ = (
        # Emails are stored lowercased, so the unique constraint is case-insensitive.
        CheckConstraint("email = lower(email)", name="email_lowercase"),
    )

    id: Mapped[uuid.UUID] = _pk()
    email: Mapped[str] = mapped_column(String(320), unique=True)
    # Argon2id (PHC string); never logged, never returned.
    password_hash: Mapped[str] = mapped_column(String(255))
    email_verified_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = _created()
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now(), onupdate=func.now())


class Membership(Base):
    """A user's role in a workspace."""

    __tablename__ = "memberships"
    __table_args__ = (
        UniqueConstraint("workspace_id", "user_id"),
        CheckConstraint(f"role IN ({_in(Role)})", name="role"),
    )

    id: Mapped[uuid.UUID] = _pk()
    workspace_id: Mapped[uuid.UUID] = _workspace_fk()
    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    role: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = _created()


class AuthSession(Base):
    """One sign-in: the family of refresh tokens that rotate from one login.

    Access tokens name their session (``sid``), so revoking it (logout, a reused refresh
    token, a password change) also stops its access tokens at once.
    """

    __tablename__ = "auth_sessions"

    id: Mapped[uuid.UUID] = _pk()
    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    created_at: Mapped[datetime] = _created()
    expires_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]
    # Why it was revoked: logout, refresh-token-reuse, password-changed, password-reset.
    revoked_reason: Mapped[str | None] = mapped_column(String(32))


class RefreshToken(Base):
    """One refresh token of a session; used once, then replaced by the next."""

    __tablename__ = "refresh_tokens"

    id: Mapped[uuid.UUID] = _pk()
    session_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("auth_sessions.id", ondelete="CASCADE"), index=True
    )
    # SHA-256 of the token (random, so a fast hash is enough, as for API keys).
    token_hash: Mapped[bytes] = mapped_column(LargeBinary(32), unique=True)
    created_at: Mapped[datetime] = _created()
    # Set when exchanged for the next token; presenting it again means it was stolen.
    used_at: Mapped[datetime | None]


class Invitation(Base):
    """An emailed invitation to join a workspace with a role, accepted with its token."""

    __tablename__ = "invitations"
    __table_args__ = (CheckConstraint(f"role IN ({_in(Role)})", name="role"),)

    id: Mapped[uuid.UUID] = _pk()
    workspace_id: Mapped[uuid.UUID] = _workspace_fk()
    email: Mapped[str] = mapped_column(String(320))
    role: Mapped[str] = mapped_column(String(16))
    token_hash: Mapped[bytes] = mapped_column(LargeBinary(32), unique=True)
    invited_by: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )
    created_at: Mapped[datetime] = _created()
    expires_at: Mapped[datetime]
    accepted_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]


class ApiKey(Base):
    __tablename__ = "api_keys"
    __table_args__ = (
        CheckConstraint(
            f"scopes <@ ARRAY[{_in(ApiKeyScope)}]::varchar[] AND cardinality(scopes) > 0",
            name="scopes",
        ),
    )

    id: Mapped[uuid.UUID] = _pk()
    workspace_id: Mapped[uuid.UUID] = _workspace_fk()
    name: Mapped[str] = mapped_column(String(200))
    # The first characters of the key, shown to users so they can tell keys apart.
    prefix: Mapped[str] = mapped_column(String(32))
    # SHA-256 of the whole key: keys are long random strings, so a fast hash is enough.
    key_hash: Mapped[bytes] = mapped_column(LargeBinary(32), unique=True)
    # read and/or write (herald_common.roles.ApiKeyScope); keys made before scopes had both.
    scopes: Mapped[list[str]] = mapped_column(ARRAY(String(16)), server_default="{read,write}")
    created_by: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )
    created_at: Mapped[datetime] = _created()
    revoked_at: Mapped[datetime | None]
    # Written at most once a minute, after the request (herald_api.api_keys.usage).
    last_used_at: Mapped[datetime | None]


class SocialAccount(Base):
    __tablename__ = "social_accounts"
    __table_args__ = (
        UniqueConstraint("workspace_id", "platform", "external_id"),
        CheckConstraint(f"status IN ({_in(AccountStatus)})", name="status"),
    )

    id: Mapped[uuid.UUID] = _pk()
    workspace_id: Mapped[uuid.UUID] = _workspace_fk()
    platform: Mapped[str] = mapped_column(String(32))
    external_id: Mapped[str] = mapped_column(String(255))
    handle: Mapped[str] = mapped_column(String(255))
    display_name: Mapped[str | None] = mapped_column(String(255))
    instance_url: Mapped[str | None] = mapped_column(String(500))
    # Fernet tokens (herald_common.crypto); never stored or logged in the clear.
    access_token_enc: Mapped[bytes | None] = mapped_column(LargeBinary)
    refresh_token_enc: Mapped[bytes | None] = mapped_column(LargeBinary)
    token_expires_at: Mapped[datetime | None]
    scopes: Mapped[list[str]] = mapped_column(ARRAY(String), server_default="{}")
    status: Mapped[str] = mapped_column(String(32), server_default=AccountStatus.ACTIVE.value)
    created_at: Mapped[datetime] = _created()
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now(), onupdate=func.now())


class MastodonApp(Base):
    """Herald's OAuth application on one Mastodon instance, registered through
    ``POST /api/v1/apps`` the first time someone connects an account there, then reused.

    Not tenant-owned: one registration serves every workspace. ``instance_url`` is the
    normalised origin (herald_common.caller_urls.origin), so one instance has one row.
    """

    __tablename__ = "mastodon_apps"

    id: Mapped[uuid.UUID] = _pk()
    instance_url: Mapped[str] = mapped_column(String(500), unique=True)
    # Public by design: it travels in every authorization URL the person's browser opens.
    client_id: Mapped[str] = mapped_column(String(255))
    # Fernet (herald_common.crypto), like account tokens.
    client_secret_enc: Mapped[bytes] = mapped_column(LargeBinary)
    # What the application was registered with: a change of HERALD_PUBLIC_URL or
    # HERALD_MASTODON_SCOPES makes Herald register again (Mastodon refuses others).
    redirect_uri: Mapped[str] = mapped_column(String(500))
    scopes: Mapped[list[str]] = mapped_column(ARRAY(String))
    created_at: Mapped[datetime] = _created()
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now(), onupdate=func.now())


class Post(Base):
    __tablename__ = "posts"
    __table_args__ = (
        UniqueConstraint("workspace_id", "idempotency_key"),
        CheckConstraint(f"status IN ({_in(PostStatus)})", name="status"),
        Index("ix_posts_workspace_scheduled", "workspace_id", "scheduled_at"),
        # GET /v1/posts?sort=scheduled_at and sort=-scheduled_at: one range scan per page.
        Index("ix_posts_workspace_schedule_order", "workspace_id", text(SCHEDULE_ORDER_SQL), "id"),
        Index("ix_posts_media_ids", "media_ids", postgresql_using="gin"),
    )

    id: Mapped[uuid.UUID] = _pk()
    workspace_id: Mapped[uuid.UUID] = _workspace_fk()
    content: Mapped[str] = mapped_column(Text)
    # Pictures (rows of media), attached in this order to every target.
    media_ids: Mapped[list[uuid.UUID]] = mapped_column(
        ARRAY(UUID(as_uuid=True)), server_default="{}", default=list
    )
    scheduled_at: Mapped[datetime | None]
    timezone: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(32))
    # Bumped by every change; also the post's ETag.
    revision: Mapped[int] = mapped_column(Integer, server_default="1")
    idempotency_key: Mapped[str | None] = mapped_column(String(255))
    request_hash: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = _created()
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now(), onupdate=func.now())


class Media(Base):
    """A picture uploaded to Herald (``POST /v1/media``), kept until deleted; adapters upload
    it to each platform at publish time. The type is sniffed from the bytes, never taken from
    the client."""

    __tablename__ = "media"

    id: Mapped[uuid.UUID] = _pk()
    workspace_id: Mapped[uuid.UUID] = _workspace_fk()
    content_type: Mapped[str] = mapped_column(String(32))
    size_bytes: Mapped[int] = mapped_column(Integer)
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    alt_text: Mapped[str | None] = mapped_column(Text)
    sha256: Mapped[str] = mapped_column(String(64))
    # Loaded only when asked for: listing and validating read the metadata alone.
    data: Mapped[bytes] = mapped_column(LargeBinary, deferred=True)
    created_at: Mapped[datetime] = _created()


class MediaUpload(Base):
    """What one target's adapter uploaded a picture as (the platform's media id, blob, urn),
    written as soon as the upload answered, so a retry attaches it instead of uploading again."""

    __tablename__ = "media_uploads"

    target_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("post_targets.id", ondelete="CASCADE"), primary_key=True
    )
    media_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("media.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    workspace_id: Mapped[uuid.UUID] = _workspace_fk()
    reference: Mapped[str] = mapped_column(Text)
    uploaded_at: Mapped[datetime] = mapped_column(server_default=func.now())


class PostTarget(Base):
    """One (post, account) pair: the unit the scheduler and publisher move."""

    __tablename__ = "post_targets"
    __table_args__ = (
        UniqueConstraint("post_id", "account_id"),
        CheckConstraint(f"status IN ({_in(TargetStatus)})", name="status"),
        # The scheduler's claim: pending targets by due time.
        Index(
            "ix_post_targets_due",
            "scheduled_at",
            postgresql_where=text("status = 'pending' AND scheduled_at IS NOT NULL"),
        ),
        # The repair loop and reconciliation look only at in-flight rows.
        Index(
            "ix_post_targets_in_flight",
            "status",
            "claimed_at",
            postgresql_where=text("status IN ('enqueued', 'publishing', 'retrying')"),
        ),
        # The reconciliation pass: unknown targets due for another look.
        Index(
            "ix_post_targets_next_look",
            "next_attempt_at",
            postgresql_where=text("status = 'unknown' AND next_attempt_at IS NOT NULL"),
        ),
        # Room on each page for a row's next version (migration 0009): the publisher's
        # "may have left" write (sent_at) changes no indexed column, and so stays a HOT update.
        {"postgresql_with": {"fillfactor": 80}},
    )

    id: Mapped[uuid.UUID] = _pk()
    workspace_id: Mapped[uuid.UUID] = _workspace_fk()
    post_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("posts.id", ondelete="CASCADE"), index=True
    )
    account_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("social_accounts.id", ondelete="RESTRICT"), index=True
    )
    # Copied from the account and the post so the hot paths never join.
    platform: Mapped[str] = mapped_column(String(32))
    # NULL while the post is a draft: a draft target is never due.
    scheduled_at: Mapped[datetime | None]
    content_override: Mapped[str | None] = mapped_column(Text)
    # Platform options of this target: further posts of a thread (each a reply to the one
    # before, where the platform threads by reply), a content warning, a visibility in the
    # platform's own words. The platform's rules refuse the ones it lacks.
    thread: Mapped[list[str]] = mapped_column(ARRAY(Text), server_default="{}", default=list)
    content_warning: Mapped[str | None] = mapped_column(Text)
    visibility: Mapped[str | None] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(32), server_default=TargetStatus.PENDING.value)
    revision: Mapped[int] = mapped_column(Integer, server_default="1")
    attempts: Mapped[int] = mapped_column(Integer, server_default="0")
    # When the next attempt is due (retrying, rate-limited); for an unknown target, when the
    # reconciliation pass looks for it on the platform again (NULL: it no longer looks).
    next_attempt_at: Mapped[datetime | None]
    # Set just before a request for this target goes to the platform, and kept for as long as
    # that request may have created a post nobody has accounted for (its worker died, asking
    # the platform failed, the outcome is unknown): while set, the next attempt asks the
    # platform before sending anything. Cleared once the outcome is known. A claim taken over
    # after its lease with this NULL never sent anything, so it is simply sent.
    sent_at: Mapped[datetime | None]
    # How many times the reconciliation pass has looked for this unknown target.
    lookups: Mapped[int] = mapped_column(Integer, server_default="0")
    remote_id: Mapped[str | None] = mapped_column(String(255))
    remote_url: Mapped[str | None] = mapped_column(String(1000))
    error_kind: Mapped[str | None] = mapped_column(String(32))
    error: Mapped[str | None] = mapped_column(Text)
    published_at: Mapped[datetime | None]
    claimed_at: Mapped[datetime | None]
    claim_id: Mapped[uuid.UUID | None]
    created_at: Mapped[datetime] = _created()
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now(), onupdate=func.now())


class PublishAttempt(Base):
    """Append-only audit of every call made to a platform."""

    __tablename__ = "publish_attempts"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    workspace_id: Mapped[uuid.UUID] = _workspace_fk()
    target_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("post_targets.id", ondelete="CASCADE"), index=True
    )
    attempt: Mapped[int] = mapped_column(Integer)
    revision: Mapped[int] = mapped_column(Integer)
    claim_id: Mapped[uuid.UUID]
    worker: Mapped[str] = mapped_column(String(255))
    started_at: Mapped[datetime]
    finished_at: Mapped[datetime]
    outcome: Mapped[str] = mapped_column(String(32))
    http_status: Mapped[int | None]
    remote_id: Mapped[str | None] = mapped_column(String(255))
    error: Mapped[str | None] = mapped_column(Text)


class Notification(Base):
    """Something a person should know: a terminal failure, an unknown outcome, a lost login."""

    __tablename__ = "notifications"
    __table_args__ = (
        Index("ix_notifications_workspace_unread", "workspace_id", "id"),
        # One notification per (target, kind, revision): a retried job cannot notify twice.
        UniqueConstraint("dedupe_key"),
    )

    id: Mapped[uuid.UUID] = _pk()
    workspace_id: Mapped[uuid.UUID] = _workspace_fk()
    kind: Mapped[str] = mapped_column(String(64))
    message: Mapped[str] = mapped_column(Text)
    post_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("posts.id", ondelete="CASCADE"))
    target_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("post_targets.id", ondelete="CASCADE")
    )
    account_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("social_accounts.id", ondelete="CASCADE")
    )
    dedupe_key: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = _created()
    read_at: Mapped[datetime | None]


class SandboxPublication(Base):
    """What the built-in sandbox platform has "published": the sandbox's own record.

    Like a real platform without idempotency keys, every publish call adds a row, so a double
    publish shows up here as two rows for one target.
    """

    __tablename__ = "sandbox_publications"

    id: Mapped[uuid.UUID] = _pk()
    workspace_id: Mapped[uuid.UUID] = _workspace_fk()
    account_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("social_accounts.id", ondelete="CASCADE"), index=True
    )
    idempotency_key: Mapped[str] = mapped_column(String(255), index=True)
    text: Mapped[str] = mapped_column(Text)
    # What each attached picture was "uploaded" as (type and digest of the bytes received).
    media: Mapped[list[str]] = mapped_column(ARRAY(Text), server_default="{}", default=list)
    published_at: Mapped[datetime] = _created()


class AiUsage(Base):
    """One call to the AI model: who asked, for what, and the tokens the model counted.
    Read per workspace and calendar month against the quota (``GET /v1/ai/usage``)."""

    __tablename__ = "ai_usage"
    __table_args__ = (Index("ix_ai_usage_workspace_created", "workspace_id", "created_at"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    workspace_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    # The person who asked, or the API key that did (one of the two, or neither once the
    # person or key is gone: the tokens still count against the workspace).
    user_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    api_key_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("api_keys.id", ondelete="SET NULL")
    )
    batch_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("ai_batches.id", ondelete="SET NULL")
    )
    model: Mapped[str] = mapped_column(String(200))
    # generate, rewrite, alt_text, plan (herald_api.ai.prompts.Task)
    task: Mapped[str] = mapped_column(String(32))
    prompt_tokens: Mapped[int] = mapped_column(Integer)
    completion_tokens: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = _created()


class AiBatch(Base):
    """A content plan (``POST /v1/ai/batches``) worked by the AI worker into drafts."""

    __tablename__ = "ai_batches"
    __table_args__ = (
        CheckConstraint(
            "status IN ('queued', 'planning', 'drafting', 'succeeded', 'failed')", name="status"
        ),
    )

    id: Mapped[uuid.UUID] = _pk()
    workspace_id: Mapped[uuid.UUID] = _workspace_fk()
    created_by: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )
    api_key_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("api_keys.id", ondelete="SET NULL")
    )
    plan: Mapped[str] = mapped_column(Text)
    account_ids: Mapped[list[uuid.UUID]] = mapped_column(ARRAY(UUID(as_uuid=True)))
    tone: Mapped[str | None] = mapped_column(String(200))
    language: Mapped[str | None] = mapped_column(String(64))
    max_posts: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16), server_default="queued")
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = _created()
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now(), onupdate=func.now())
    finished_at: Mapped[datetime | None]


class AiBatchItem(Base):
    """One post of a content plan: its brief, then the text written for each account
    (kept before the draft is made, so a re-run makes the same draft), then the draft."""

    __tablename__ = "ai_batch_items"
    __table_args__ = (
        UniqueConstraint("batch_id", "position"),
        CheckConstraint("status IN ('planned', 'written', 'drafted', 'failed')", name="status"),
    )

    id: Mapped[uuid.UUID] = _pk()
    batch_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("ai_batches.id", ondelete="CASCADE"), index=True
    )
    workspace_id: Mapped[uuid.UUID] = _workspace_fk()
    position: Mapped[int] = mapped_column(Integer)
    brief: Mapped[str] = mapped_column(Text)
    # When the plan suggests publishing it; kept on the draft when still in the future.
    suggested_at: Mapped[datetime | None]
    # Per account: {"account_id", "text", "thread", "problems"}, as written and validated.
    written: Mapped[list[dict[str, Any]] | None] = mapped_column(JSONB)
    status: Mapped[str] = mapped_column(String(16), server_default="planned")
    post_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("posts.id", ondelete="SET NULL"))
    error: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now(), onupdate=func.now())


# The tables as Core ``Table`` objects (``__table__`` is typed as a FromClause), for the hot
# statements written on columns rather than mapped classes: an executemany UPDATE of a mapped
# class would be taken for the ORM's bulk update by primary key, an ORM statement also looks
# up every returned row in the session's identity map, and the unit of work costs more CPU
# than the INSERTs themselves.
Posts = cast(Table, Post.__table__)
# The key of ix_posts_workspace_schedule_order after workspace_id (SCHEDULE_ORDER_SQL).
SCHEDULE_ORDER = func.coalesce(Post.scheduled_at, NO_TIME)
PostTargets = cast(Table, PostTarget.__table__)
PublishAttempts = cast(Table, PublishAttempt.__table__)
