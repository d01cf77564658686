"""posts: an index in order of scheduled time (a post with no time last, ties by id), for
GET /v1/posts?sort=scheduled_at and sort=-scheduled_at

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-04 14:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_posts_workspace_schedule_order",
        "posts",
        ["workspace_id", sa.text("coalesce(scheduled_at, 'infinity'::timestamptz)"), "id"],
    )


def downgrade() -> None:
    op.drop_index("ix_posts_workspace_schedule_order", table_name="posts")
