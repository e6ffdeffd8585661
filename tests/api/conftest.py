"""Fixtures for the API tests: a migrated database per backend, a hub with a hand-driven
clock, a TestClient, and one token per role."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from hub.api import create_app
from hub.runtime.process import Runtime
from hub.runtime.root import build_runtime
from hub.services.context import HubContext
from hub.services.sources import Sources
from hub.services.tokens import Role, create_token
from hub.settings import Settings
from hub.store.db import make_engine, transaction
from hub.store.migrate import upgrade

REPO = Path(__file__).resolve().parents[2]

# A Monday morning in March: no bank holiday in England or the US.
START = datetime(2025, 3, 3, 10, 0, tzinfo=UTC)

# Token names per role. "alice" is a team member (config/team.yaml), so her
# dashboard shows "My tasks".
TOKEN_NAMES = {Role.VIEWER: "vera", Role.TECHNICIAN: "alice", Role.MANAGER: "max",
               Role.ADMIN: "ada"}

OFFBOARDING_INPUTS = {"leaver_name": "Jane Doe", "last_day": "2025-03-07"}


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        """Move the clock forward."""
        self.now += timedelta(**delta)


@dataclass
class Api:
    """A running app with its hub, clock and a token per role."""

    http: TestClient
    rt: Runtime
    clock: Clock
    tokens: dict[Role, str] = field(default_factory=dict)

    @property
    def ctx(self) -> HubContext:
        """The hub's services."""
        return self.rt.ctx

    def auth(self, role: Role) -> dict[str, str]:
        """The Authorization header of the token holding ``role``."""
        return {"Authorization": f"Bearer {self.tokens[role]}"}

    def get(self, path: str, role: Role | None = Role.VIEWER, **kw: Any) -> httpx.Response:
        """GET as ``role`` (None: without a token)."""
        return self.http.get(path, headers=self.auth(role) if role else {}, **kw)

    def post(self, path: str, role: Role | None, json: Any = None,
             **kw: Any) -> httpx.Response:
        """POST a JSON body as ``role`` (None: without a token)."""
        return self.http.post(path, headers=self.auth(role) if role else {}, json=json, **kw)

    def launch(self, playbook: str = "user-offboarding", client: str = "ACME",
               inputs: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
        """Launch a run as the manager and return its detail (asserting 201)."""
        body = {"playbook": playbook, "client": client,
                "inputs": OFFBOARDING_INPUTS if inputs is None else inputs, **extra}
        response = self.post("/api/runs", Role.MANAGER, body)
        assert response.status_code == 201, response.text
        result: dict[str, Any] = response.json()
        return result


@pytest.fixture
def make_api(db_url: str, tmp_path: Path) -> Iterator[Callable[..., Api]]:
    """Build an app over a fresh, migrated database (optionally another playbook dir)."""
    built: list[Api] = []

    def build(playbooks_dir: Path | None = None) -> Api:
        settings = Settings(
            _env_file=None,
            data_dir=tmp_path / "data",
            database_url=db_url,
            playbooks_dir=playbooks_dir or REPO / "playbooks",
            config_dir=REPO / "config",
            mappings_dir=tmp_path / "mappings",
            log_format="console",
        )
        engine = make_engine(db_url)
        upgrade(engine)
        clock = Clock(START)
        rt = build_runtime(settings, clock=clock, engine=engine, sources=Sources())
        ctx = rt.ctx
        api = Api(http=TestClient(create_app(rt)), rt=rt, clock=clock)
        if built:  # a second app over the same database shares the tokens
            api.tokens = built[0].tokens
        else:
            with transaction(ctx.sessions) as session:
                api.tokens = {role: create_token(session, name=name, role=role, now=START)
                              for role, name in TOKEN_NAMES.items()}
        built.append(api)
        return api

    yield build
    for api in built:
        api.http.close()
        api.ctx.engine.dispose()


@pytest.fixture
def api(make_api: Callable[..., Api]) -> Api:
    """The app with the shipped playbooks and config."""
    return make_api()
