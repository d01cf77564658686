"""post_targets: thread, content_warning, visibility per target

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23 17:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "post_targets",
        sa.Column("thread", postgresql.ARRAY(sa.Text()), server_default="{}", nullable=False),
    )
    op.add_column("post_targets", sa.Column("content_warning", sa.Text(), nullable=True))
    op.add_column("post_targets", sa.Column("visibility", sa.String(length=32), nullable=True))


def downgrade() -> None:
    op.drop_column("post_targets", "visibility")
    op.drop_column("post_targets", "content_warning")
    op.drop_column("post_targets", "thread")
