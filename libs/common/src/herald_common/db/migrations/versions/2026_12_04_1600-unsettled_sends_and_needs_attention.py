"""post_targets.sent_at (a request may have reached the platform) and lookups (how often an
unknown target was looked for since), pages with room for updates; posts.status
needs_attention

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-04 16:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_STATUSES = (
    "'draft', 'scheduled', 'publishing', 'published', 'partially_published', 'failed', 'cancelled'"
)


# Room on each page for an updated row to stay there (a HOT update, no index entries): the
# "may have left" write changes no indexed column, so it can be one (docs/decisions.md).
FILLFACTOR = 80


def upgrade() -> None:
    op.execute(f"ALTER TABLE post_targets SET (fillfactor = {FILLFACTOR})")
    op.add_column("post_targets", sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column(
        "post_targets", sa.Column("lookups", sa.Integer(), server_default="0", nullable=False)
    )
    # The reconciliation pass: unknown targets due for another look.
    op.create_index(
        "ix_post_targets_next_look",
        "post_targets",
        ["next_attempt_at"],
        postgresql_where=sa.text("status = 'unknown' AND next_attempt_at IS NOT NULL"),
    )
    op.drop_constraint(op.f("ck_posts_status"), "posts", type_="check")
    op.create_check_constraint(
        op.f("ck_posts_status"), "posts", f"status IN ({_STATUSES}, 'needs_attention')"
    )


def downgrade() -> None:
    op.execute("UPDATE posts SET status = 'failed' WHERE status = 'needs_attention'")
    op.drop_constraint(op.f("ck_posts_status"), "posts", type_="check")
    op.create_check_constraint(op.f("ck_posts_status"), "posts", f"status IN ({_STATUSES})")
    op.drop_index("ix_post_targets_next_look", table_name="post_targets")
    op.drop_column("post_targets", "lookups")
    op.drop_column("post_targets", "sent_at")
    op.execute("ALTER TABLE post_targets RESET (fillfactor)")
