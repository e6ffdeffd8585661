"""client directory: hub clients with calendar, tags and links to vendor records

Every existing client key becomes a hub client with the same key (so audit facts, team
overrides and schedules keep meaning what they meant) and one link to the source that
produced it: the source of its runs' ticket or origin, else of its inbox events. A
client nobody's event or ticket named (launched by hand) gets no link.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    # plain ADD COLUMNs, never a table rebuild: SQLite's foreign keys from runs would refuse
    # to let the old clients table go. The server defaults fill the existing rows; the
    # models declare the same ones.
    op.add_column("clients", sa.Column("calendar", sa.String(length=100), nullable=True))
    op.add_column("clients", sa.Column("tags", JSON, nullable=False,
                                       server_default=sa.text("'[]'")))
    op.add_column("clients", sa.Column("provisional", sa.Boolean(), nullable=False,
                                       server_default=sa.false()))
    op.create_table(
        "client_links",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("client_id", sa.Integer(), nullable=False),
        sa.Column("source", sa.String(length=100), nullable=False),
        sa.Column("object_type", sa.String(length=30), nullable=False),
        sa.Column("vendor_id", sa.String(length=200), nullable=False),
        sa.Column("vendor_name", sa.String(length=300), nullable=True),
        sa.Column("created_by", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["client_id"], ["clients.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("source", "object_type", "vendor_id", name="uq_client_link"),
    )
    with op.batch_alter_table("client_links", schema=None) as batch_op:
        batch_op.create_index("ix_client_links_client_id", ["client_id"], unique=False)
    with op.batch_alter_table("inbox_events", schema=None) as batch_op:
        batch_op.add_column(sa.Column("client_type", sa.String(length=30), nullable=True))
        batch_op.add_column(sa.Column("hub_client", sa.String(length=200), nullable=True))
        batch_op.create_index("ix_inbox_events_hub_client", ["hub_client"], unique=False)
    _link_existing_clients()


def _link_existing_clients() -> None:
    conn = op.get_bind()
    meta = sa.MetaData()
    clients = sa.Table("clients", meta, autoload_with=conn)
    links = sa.Table("client_links", meta, autoload_with=conn)
    runs = sa.Table("runs", meta, autoload_with=conn)
    inbox = sa.Table("inbox_events", meta, autoload_with=conn)
    now = datetime.now(UTC)
    for client_id, key, name in conn.execute(
            sa.select(clients.c.id, clients.c.key, clients.c.name).order_by(clients.c.id)):
        source = conn.execute(
            sa.select(sa.func.coalesce(runs.c.ticket_source, runs.c.origin_source))
            .where(runs.c.client_id == client_id,
                   sa.func.coalesce(runs.c.ticket_source, runs.c.origin_source).is_not(None),
                   sa.func.coalesce(runs.c.ticket_source, runs.c.origin_source) != "scheduler")
            .order_by(runs.c.id).limit(1)).scalar()
        if source is None:
            source = conn.execute(
                sa.select(inbox.c.source).where(inbox.c.client_key == key)
                .order_by(inbox.c.id).limit(1)).scalar()
        if source is None:
            continue
        conn.execute(links.insert().values(
            client_id=client_id, source=source, object_type="company", vendor_id=key,
            vendor_name=name, created_by="migration", created_at=now))
    conn.execute(inbox.update().where(inbox.c.client_key.is_not(None))
                 .values(client_type="company"))
    linked = (sa.select(clients.c.key)
              .select_from(links.join(clients, clients.c.id == links.c.client_id))
              .where(links.c.source == inbox.c.source, links.c.object_type == "company",
                     links.c.vendor_id == inbox.c.client_key)
              .scalar_subquery())
    conn.execute(inbox.update().where(inbox.c.client_key.is_not(None))
                 .values(hub_client=linked))


def downgrade() -> None:
    with op.batch_alter_table("inbox_events", schema=None) as batch_op:
        batch_op.drop_index("ix_inbox_events_hub_client")
        batch_op.drop_column("hub_client")
        batch_op.drop_column("client_type")
    with op.batch_alter_table("client_links", schema=None) as batch_op:
        batch_op.drop_index("ix_client_links_client_id")
    op.drop_table("client_links")
    with op.batch_alter_table("clients", schema=None) as batch_op:
        batch_op.drop_column("provisional")
        batch_op.drop_column("tags")
        batch_op.drop_column("calendar")
