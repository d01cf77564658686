"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-23 09:22:24.395723
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "workspaces",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_workspaces")),
    )
    op.create_table(
        "api_keys",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("workspace_id", sa.UUID(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("prefix", sa.String(length=32), nullable=False),
        sa.Column("key_hash", sa.LargeBinary(length=32), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_api_keys_workspace_id_workspaces"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_keys")),
        sa.UniqueConstraint("key_hash", name=op.f("uq_api_keys_key_hash")),
    )
    op.create_index(op.f("ix_api_keys_workspace_id"), "api_keys", ["workspace_id"], unique=False)
    op.create_table(
        "posts",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("workspace_id", sa.UUID(), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("media_ids", postgresql.ARRAY(sa.String()), server_default="{}", nullable=False),
        sa.Column("scheduled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("timezone", sa.String(length=64), nullable=True),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("revision", sa.Integer(), server_default="1", nullable=False),
        sa.Column("idempotency_key", sa.String(length=255), nullable=True),
        sa.Column("request_hash", sa.String(length=64), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "status IN ('draft', 'scheduled', 'publishing', 'published', "
            "'partially_published', 'failed', 'cancelled')",
            name=op.f("ck_posts_status"),
        ),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_posts_workspace_id_workspaces"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_posts")),
        sa.UniqueConstraint(
            "workspace_id", "idempotency_key", name=op.f("uq_posts_workspace_id_idempotency_key")
        ),
    )
    op.create_index(op.f("ix_posts_workspace_id"), "posts", ["workspace_id"], unique=False)
    op.create_index(
        "ix_posts_workspace_scheduled", "posts", ["workspace_id", "scheduled_at"], unique=False
    )
    op.create_table(
        "social_accounts",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("workspace_id", sa.UUID(), nullable=False),
        sa.Column("platform", sa.String(length=32), nullable=False),
        sa.Column("external_id", sa.String(length=255), nullable=False),
        sa.Column("handle", sa.String(length=255), nullable=False),
        sa.Column("display_name", sa.String(length=255), nullable=True),
        sa.Column("instance_url", sa.String(length=500), nullable=True),
        sa.Column("access_token_enc", sa.LargeBinary(), nullable=True),
        sa.Column("refresh_token_enc", sa.LargeBinary(), nullable=True),
        sa.Column("token_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("scopes", postgresql.ARRAY(sa.String()), server_default="{}", nullable=False),
        sa.Column("status", sa.String(length=32), server_default="active", nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "status IN ('active', 'requires_reauth', 'disconnected')",
            name=op.f("ck_social_accounts_status"),
        ),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_social_accounts_workspace_id_workspaces"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_social_accounts")),
        sa.UniqueConstraint(
            "workspace_id",
            "platform",
            "external_id",
            name=op.f("uq_social_accounts_workspace_id_platform_external_id"),
        ),
    )
    op.create_index(
        op.f("ix_social_accounts_workspace_id"), "social_accounts", ["workspace_id"], unique=False
    )
    op.create_table(
        "post_targets",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("workspace_id", sa.UUID(), nullable=False),
        sa.Column("post_id", sa.UUID(), nullable=False),
        sa.Column("account_id", sa.UUID(), nullable=False),
        sa.Column("platform", sa.String(length=32), nullable=False),
        sa.Column("scheduled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("content_override", sa.Text(), nullable=True),
        sa.Column("status", sa.String(length=32), server_default="pending", nullable=False),
        sa.Column("revision", sa.Integer(), server_default="1", nullable=False),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("remote_id", sa.String(length=255), nullable=True),
        sa.Column("remote_url", sa.String(length=1000), nullable=True),
        sa.Column("error_kind", sa.String(length=32), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("claim_id", sa.UUID(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "status IN ('pending', 'enqueued', 'publishing', 'retrying', 'published', "
            "'failed', 'cancelled', 'unknown')",
            name=op.f("ck_post_targets_status"),
        ),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["social_accounts.id"],
            name=op.f("fk_post_targets_account_id_social_accounts"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["post_id"],
            ["posts.id"],
            name=op.f("fk_post_targets_post_id_posts"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_post_targets_workspace_id_workspaces"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_post_targets")),
        sa.UniqueConstraint(
            "post_id", "account_id", name=op.f("uq_post_targets_post_id_account_id")
        ),
    )
    op.create_index(
        op.f("ix_post_targets_account_id"), "post_targets", ["account_id"], unique=False
    )
    op.create_index(
        "ix_post_targets_due",
        "post_targets",
        ["scheduled_at"],
        unique=False,
        postgresql_where=sa.text("status = 'pending' AND scheduled_at IS NOT NULL"),
    )
    op.create_index(
        "ix_post_targets_in_flight",
        "post_targets",
        ["status", "claimed_at"],
        unique=False,
        postgresql_where=sa.text("status IN ('enqueued', 'publishing', 'retrying')"),
    )
    op.create_index(op.f("ix_post_targets_post_id"), "post_targets", ["post_id"], unique=False)
    op.create_index(
        op.f("ix_post_targets_workspace_id"), "post_targets", ["workspace_id"], unique=False
    )
    op.create_table(
        "sandbox_publications",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("workspace_id", sa.UUID(), nullable=False),
        sa.Column("account_id", sa.UUID(), nullable=False),
        sa.Column("idempotency_key", sa.String(length=255), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column(
            "published_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["social_accounts.id"],
            name=op.f("fk_sandbox_publications_account_id_social_accounts"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_sandbox_publications_workspace_id_workspaces"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sandbox_publications")),
    )
    op.create_index(
        op.f("ix_sandbox_publications_account_id"),
        "sandbox_publications",
        ["account_id"],
        unique=False,
    )
    op.create_index(
        op.f("ix_sandbox_publications_idempotency_key"),
        "sandbox_publications",
        ["idempotency_key"],
        unique=False,
    )
    op.create_index(
        op.f("ix_sandbox_publications_workspace_id"),
        "sandbox_publications",
        ["workspace_id"],
        unique=False,
    )
    op.create_table(
        "publish_attempts",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("workspace_id", sa.UUID(), nullable=False),
        sa.Column("target_id", sa.UUID(), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("claim_id", sa.UUID(), nullable=False),
        sa.Column("worker", sa.String(length=255), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("outcome", sa.String(length=32), nullable=False),
        sa.Column("http_status", sa.Integer(), nullable=True),
        sa.Column("remote_id", sa.String(length=255), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["target_id"],
            ["post_targets.id"],
            name=op.f("fk_publish_attempts_target_id_post_targets"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_publish_attempts_workspace_id_workspaces"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_publish_attempts")),
    )
    op.create_index(
        op.f("ix_publish_attempts_target_id"), "publish_attempts", ["target_id"], unique=False
    )
    op.create_index(
        op.f("ix_publish_attempts_workspace_id"), "publish_attempts", ["workspace_id"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_publish_attempts_workspace_id"), table_name="publish_attempts")
    op.drop_index(op.f("ix_publish_attempts_target_id"), table_name="publish_attempts")
    op.drop_table("publish_attempts")
    op.drop_index(op.f("ix_sandbox_publications_workspace_id"), table_name="sandbox_publications")
    op.drop_index(
        op.f("ix_sandbox_publications_idempotency_key"), table_name="sandbox_publications"
    )
    op.drop_index(op.f("ix_sandbox_publications_account_id"), table_name="sandbox_publications")
    op.drop_table("sandbox_publications")
    op.drop_index(op.f("ix_post_targets_workspace_id"), table_name="post_targets")
    op.drop_index(op.f("ix_post_targets_post_id"), table_name="post_targets")
    op.drop_index(
        "ix_post_targets_in_flight",
        table_name="post_targets",
        postgresql_where=sa.text("status IN ('enqueued', 'publishing', 'retrying')"),
    )
    op.drop_index(
        "ix_post_targets_due",
        table_name="post_targets",
        postgresql_where=sa.text("status = 'pending' AND scheduled_at IS NOT NULL"),
    )
    op.drop_index(op.f("ix_post_targets_account_id"), table_name="post_targets")
    op.drop_table("post_targets")
    op.drop_index(op.f("ix_social_accounts_workspace_id"), table_name="social_accounts")
    op.drop_table("social_accounts")
    op.drop_index("ix_posts_workspace_scheduled", table_name="posts")
    op.drop_index(op.f("ix_posts_workspace_id"), table_name="posts")
    op.drop_table("posts")
    op.drop_index(op.f("ix_api_keys_workspace_id"), table_name="api_keys")
    op.drop_table("api_keys")
    op.drop_table("workspaces")
