"""Fixtures: a hub on a fresh database whose team is told by email (a real local SMTP
server) and Teams/Slack (a local webhook server), with a fake PSA for ticket notes."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from hub.runtime.process import Runtime
from hub.runtime.root import build_runtime, sync_clients
from hub.settings import Settings
from hub.store.migrate import upgrade
from hub.store.models import Notification
from tests.pipeline.conftest import CLIENTS, Clock
from tests.pipeline.fakes import FakePSA, sources_with
from tests.services.notifications.servers import (
    SMTP_PASSWORD,
    SMTP_USER,
    Hooks,
    SMTPServer,
    smtp_server,
    webhook_server,
)

REPO = Path(__file__).resolve().parents[3]

TEAM = """\
members:
  - id: alice
    name: Alice Smith
    email: alice@msp.example
    notify:
      channels: [email, teams, slack]
      teams: {hooks}/teams/alice
      slack: {hooks}/slack/alice
  - id: bob
    name: Bob Jones
    email: bob@msp.example
  - id: carol
    name: Carol Nguyen
    email: carol@msp.example
    notify:
      channels: [email, slack]
      slack: {hooks}/slack/carol
  - id: dan
    name: Dan Okafor
    email: dan@msp.example
  - id: erin
    name: Erin Walsh
    email: erin@msp.example
    notify:
      quiet_hours: {{from: "19:00", to: "07:30", timezone: Europe/London}}
roles:
  service-desk: bob
  engineer: carol
  senior-engineer: dan
  security: erin
  service-manager: alice
  dispatcher: bob
  account-manager: bob
"""

LEAVER_ACCESS = """\
id: leaver-access
title: Leaver access revocation
version: 1
steps:
  - id: revoke
    title: Revoke all access
    role: engineer
    due: 4h
  - id: confirm
    title: Confirm with HR
    role: service-desk
    after: [revoke]
"""


@pytest.fixture
def smtp(tmp_path: Path) -> Iterator[SMTPServer]:
    with smtp_server(tmp_path) as server:
        yield server


@pytest.fixture
def hooks() -> Iterator[Hooks]:
    with webhook_server() as server:
        yield server


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def psa() -> FakePSA:
    return FakePSA("psa")


@pytest.fixture
def hub_settings(tmp_path: Path, db_url: str, smtp: SMTPServer, hooks: Hooks) -> Settings:
    """The shipped playbooks and config, this test team, no mapping rules (tests add them)."""
    for name in ("playbooks", "config"):
        shutil.copytree(REPO / name, tmp_path / name)
    (tmp_path / "config" / "connectors.yaml").unlink(missing_ok=True)
    (tmp_path / "config" / "schedules.yaml").unlink(missing_ok=True)
    (tmp_path / "config" / "clients.yaml").write_text(CLIENTS)
    (tmp_path / "config" / "team.yaml").write_text(TEAM.format(hooks=hooks.base))
    (tmp_path / "playbooks" / "leaver-access.yaml").write_text(LEAVER_ACCESS)
    (tmp_path / "mappings").mkdir()
    return Settings(_env_file=None, database_url=db_url, data_dir=tmp_path / "data",
                    playbooks_dir=tmp_path / "playbooks", config_dir=tmp_path / "config",
                    mappings_dir=tmp_path / "mappings", public_url="http://hub.test",
                    redis_url=None, smtp_host="127.0.0.1", smtp_port=smtp.port,
                    smtp_user=SMTP_USER, smtp_password=SMTP_PASSWORD,
                    smtp_from="Acme MSP <hub@msp.example>", smtp_ca_file=smtp.cert,
                    smtp_timeout=20)


@pytest.fixture
def runtime(hub_settings: Settings, psa: FakePSA, clock: Clock) -> Iterator[Runtime]:
    """The hub on an in-process broker (nothing runs unless a test calls it)."""
    rt = build_runtime(hub_settings, clock=clock, sources=sources_with(psa))
    upgrade(rt.ctx.engine)
    sync_clients(rt.ctx)
    yield rt
    rt.stop()


def rows(rt: Runtime, **where: object) -> list[Notification]:
    """Notification rows matching column values, oldest first."""
    with rt.ctx.sessions() as session:
        stmt = select(Notification).order_by(Notification.id)
        for name, value in where.items():
            stmt = stmt.where(getattr(Notification, name) == value)
        return list(session.execute(stmt).scalars().all())
