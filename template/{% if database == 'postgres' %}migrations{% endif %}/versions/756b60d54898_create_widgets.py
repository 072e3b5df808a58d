"""create widgets

Revision ID: 756b60d54898
Revises: (none)
Create Date: 2026-11-21 19:13:12.205836
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "756b60d54898"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "widgets",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("account_id", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_widgets")),
    )
    op.create_index(
        op.f("ix_widgets_account_id_created_at_id"),
        "widgets",
        ["account_id", "created_at", "id"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_widgets_account_id_created_at_id"), table_name="widgets")
    op.drop_table("widgets")
