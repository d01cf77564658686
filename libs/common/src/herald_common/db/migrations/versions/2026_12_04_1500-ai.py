"""ai_usage: every call to the AI model; ai_batches and ai_batch_items: content plans

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-04 15:00:00
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _workspace(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["workspace_id"],
        ["workspaces.id"],
        name=op.f(f"fk_{table}_workspace_id_workspaces"),
        ondelete="CASCADE",
    )


def _now(name: str) -> sa.Column[Any]:
    return sa.Column(name, sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False)


def upgrade() -> None:
    op.create_table(
        "ai_batches",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("workspace_id", sa.Uuid(), nullable=False),
        sa.Column("created_by", sa.Uuid(), nullable=True),
        sa.Column("api_key_id", sa.Uuid(), nullable=True),
        sa.Column("plan", sa.Text(), nullable=False),
        sa.Column("account_ids", postgresql.ARRAY(sa.Uuid()), nullable=False),
        sa.Column("tone", sa.String(length=200), nullable=True),
        sa.Column("language", sa.String(length=64), nullable=True),
        sa.Column("max_posts", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), server_default="queued", nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        _now("created_at"),
        _now("updated_at"),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "status IN ('queued', 'planning', 'drafting', 'succeeded', 'failed')",
            name=op.f("ck_ai_batches_status"),
        ),
        _workspace("ai_batches"),
        sa.ForeignKeyConstraint(
            ["created_by"],
            ["users.id"],
            name=op.f("fk_ai_batches_created_by_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["api_key_id"],
            ["api_keys.id"],
            name=op.f("fk_ai_batches_api_key_id_api_keys"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ai_batches")),
    )
    op.create_index(op.f("ix_ai_batches_workspace_id"), "ai_batches", ["workspace_id"])
    op.create_table(
        "ai_batch_items",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("batch_id", sa.Uuid(), nullable=False),
        sa.Column("workspace_id", sa.Uuid(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("brief", sa.Text(), nullable=False),
        sa.Column("suggested_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("written", postgresql.JSONB(), nullable=True),
        sa.Column("status", sa.String(length=16), server_default="planned", nullable=False),
        sa.Column("post_id", sa.Uuid(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        _now("updated_at"),
        sa.CheckConstraint(
            "status IN ('planned', 'written', 'drafted', 'failed')",
            name=op.f("ck_ai_batch_items_status"),
        ),
        sa.ForeignKeyConstraint(
            ["batch_id"],
            ["ai_batches.id"],
            name=op.f("fk_ai_batch_items_batch_id_ai_batches"),
            ondelete="CASCADE",
        ),
        _workspace("ai_batch_items"),
        sa.ForeignKeyConstraint(
            ["post_id"],
            ["posts.id"],
            name=op.f("fk_ai_batch_items_post_id_posts"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ai_batch_items")),
        sa.UniqueConstraint("batch_id", "position", name=op.f("uq_ai_batch_items_batch_id")),
    )
    op.create_index(op.f("ix_ai_batch_items_batch_id"), "ai_batch_items", ["batch_id"])
    op.create_index(op.f("ix_ai_batch_items_workspace_id"), "ai_batch_items", ["workspace_id"])
    op.create_table(
        "ai_usage",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("workspace_id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=True),
        sa.Column("api_key_id", sa.Uuid(), nullable=True),
        sa.Column("batch_id", sa.Uuid(), nullable=True),
        sa.Column("model", sa.String(length=200), nullable=False),
        sa.Column("task", sa.String(length=32), nullable=False),
        sa.Column("prompt_tokens", sa.Integer(), nullable=False),
        sa.Column("completion_tokens", sa.Integer(), nullable=False),
        _now("created_at"),
        _workspace("ai_usage"),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_ai_usage_user_id_users"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["api_key_id"],
            ["api_keys.id"],
            name=op.f("fk_ai_usage_api_key_id_api_keys"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["batch_id"],
            ["ai_batches.id"],
            name=op.f("fk_ai_usage_batch_id_ai_batches"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ai_usage")),
    )
    op.create_index("ix_ai_usage_workspace_created", "ai_usage", ["workspace_id", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_ai_usage_workspace_created", table_name="ai_usage")
    op.drop_table("ai_usage")
    op.drop_index(op.f("ix_ai_batch_items_workspace_id"), table_name="ai_batch_items")
    op.drop_index(op.f("ix_ai_batch_items_batch_id"), table_name="ai_batch_items")
    op.drop_table("ai_batch_items")
    op.drop_index(op.f("ix_ai_batches_workspace_id"), table_name="ai_batches")
    op.drop_table("ai_batches")
