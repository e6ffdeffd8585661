"""event outcomes: an enriched record as a row linked to its thin webhook; notes about
failed events (no run)

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01
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
    with op.batch_alter_table("inbox_events", schema=None) as batch_op:
        # the full record fetched for a thin webhook is its own row, keyed by the change
        # it describes; this names the thin row it came from (kept as the vendor sent it)
        batch_op.add_column(sa.Column("enriched_from", sa.Integer(), nullable=True))
        batch_op.create_index("ix_inbox_events_enriched_from", ["enriched_from"], unique=False)
    with op.batch_alter_table("outbox_notes", schema=None) as batch_op:
        # a note saying why an event launched nothing belongs to no run
        batch_op.alter_column("run_id", existing_type=sa.Integer(), nullable=True)


def downgrade() -> None:
    with op.batch_alter_table("outbox_notes", schema=None) as batch_op:
        batch_op.alter_column("run_id", existing_type=sa.Integer(), nullable=False)
    with op.batch_alter_table("inbox_events", schema=None) as batch_op:
        batch_op.drop_index("ix_inbox_events_enriched_from")
        batch_op.drop_column("enriched_from")
