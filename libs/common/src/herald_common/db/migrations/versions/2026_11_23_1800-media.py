"""media: pictures uploaded to Herald; media_uploads: what each target uploaded them as;
sandbox_publications.media

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-23 18:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "media",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("workspace_id", sa.Uuid(), nullable=False),
        sa.Column("content_type", sa.String(length=32), nullable=False),
        sa.Column("size_bytes", sa.Integer(), nullable=False),
        sa.Column("width", sa.Integer(), nullable=False),
        sa.Column("height", sa.Integer(), nullable=False),
        sa.Column("alt_text", sa.Text(), nullable=True),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_media_workspace_id_workspaces"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_media")),
    )
    op.create_index(op.f("ix_media_workspace_id"), "media", ["workspace_id"])
    op.create_table(
        "media_uploads",
        sa.Column("target_id", sa.Uuid(), nullable=False),
        sa.Column("media_id", sa.Uuid(), nullable=False),
        sa.Column("workspace_id", sa.Uuid(), nullable=False),
        sa.Column("reference", sa.Text(), nullable=False),
        sa.Column(
            "uploaded_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["target_id"],
            ["post_targets.id"],
            name=op.f("fk_media_uploads_target_id_post_targets"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["media_id"],
            ["media.id"],
            name=op.f("fk_media_uploads_media_id_media"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_media_uploads_workspace_id_workspaces"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("target_id", "media_id", name=op.f("pk_media_uploads")),
    )
    op.create_index(op.f("ix_media_uploads_media_id"), "media_uploads", ["media_id"])
    op.create_index(op.f("ix_media_uploads_workspace_id"), "media_uploads", ["workspace_id"])
    # Until now the API never set media_ids, so every row holds '{}'; from now on they are
    # ids of rows in media.
    op.alter_column("posts", "media_ids", server_default=None)
    op.alter_column(
        "posts",
        "media_ids",
        type_=postgresql.ARRAY(sa.Uuid()),
        postgresql_using="media_ids::uuid[]",
    )
    op.alter_column("posts", "media_ids", server_default="{}")
    op.add_column(
        "sandbox_publications",
        sa.Column("media", postgresql.ARRAY(sa.Text()), server_default="{}", nullable=False),
    )
    # Whether a picture is still used by a post that may be published (DELETE /v1/media/{id}).
    op.create_index("ix_posts_media_ids", "posts", ["media_ids"], postgresql_using="gin")


def downgrade() -> None:
    op.drop_column("sandbox_publications", "media")
    op.drop_index("ix_posts_media_ids", table_name="posts")
    op.alter_column("posts", "media_ids", server_default=None)
    op.alter_column(
        "posts",
        "media_ids",
        type_=postgresql.ARRAY(sa.String()),
        postgresql_using="media_ids::varchar[]",
    )
    op.alter_column("posts", "media_ids", server_default="{}")
    op.drop_index(op.f("ix_media_uploads_workspace_id"), table_name="media_uploads")
    op.drop_index(op.f("ix_media_uploads_media_id"), table_name="media_uploads")
    op.drop_table("media_uploads")
    op.drop_index(op.f("ix_media_workspace_id"), table_name="media")
    op.drop_table("media")
