"""Operator commands: serve, db, playbooks, tokens, audit."""

from __future__ import annotations

import json
from pathlib import Path

import typer
import uvicorn
from rich.table import Table
from sqlalchemy import func, select

from hub.api.app import create_app
from hub.cli.app import app, context, err, fail, hub_errors, out, settings
from hub.config.playbooks import check_files
from hub.config.team import load_roster
from hub.core.checklists.schema import playbook_json_schema
from hub.runtime.embedded import EmbeddedWorkers
from hub.runtime.root import build_runtime, config_environment, sync_clients
from hub.services.context import HubContext
from hub.services.tokens import Role, create_token, revoke_token
from hub.store import audit
from hub.store.db import make_engine, transaction
from hub.store.migrate import current_revision, upgrade
from hub.store.models import ApiToken

db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
playbooks_app = typer.Typer(help="Checklist templates.", no_args_is_help=True)
tokens_app = typer.Typer(help="API bearer tokens.", no_args_is_help=True)
audit_app = typer.Typer(help="The tamper-evident audit trail.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(playbooks_app, name="playbooks")
app.add_typer(tokens_app, name="tokens")
app.add_typer(audit_app, name="audit")


@app.command()
def serve(
    host: str = typer.Option(None, help="Bind address (default: MSPHUB_HOST)."),
    port: int = typer.Option(None, help="Port (default: MSPHUB_PORT)."),
) -> None:
    """Run the API, webhooks and dashboard (migrates the database first).

    Without MSPHUB_REDIS_URL the workers and the scheduler run inside this process.
    """
    s = settings()
    with hub_errors():
        rt = build_runtime(s)
        upgrade(rt.ctx.engine)
        sync_clients(rt.ctx)
    bootstrap_admin_token(rt.ctx)
    app_ = create_app(rt)
    embedded = None if s.redis_url else EmbeddedWorkers(rt, threads=s.worker_threads)
    if embedded:
        embedded.start()
    try:
        uvicorn.run(app_, host=host or s.host, port=port or s.port, log_config=None,
                    access_log=False)
    finally:
        if embedded:
            embedded.stop()
        rt.stop()


def create_demo_token(ctx: HubContext) -> str:
    """An admin token for the demo database (which is fresh on every start)."""
    with transaction(ctx.sessions) as session:
        return create_token(session, name="demo-admin", role=Role.ADMIN, now=ctx.clock())


def bootstrap_admin_token(ctx: HubContext) -> None:
    """On a fresh database, create the first admin token and print it once."""
    with transaction(ctx.sessions) as session:
        if session.execute(select(func.count()).select_from(ApiToken)).scalar_one() == 0:
            token = create_token(session, name="admin", role=Role.ADMIN, now=ctx.clock())
            out.print(f"Created the first admin API token (shown once): [bold]{token}[/]")


@db_app.command("upgrade")
def db_upgrade(revision: str = typer.Argument("head")) -> None:
    """Apply database migrations."""
    s = settings()
    engine = make_engine(s.database_url)
    upgrade(engine, revision)
    out.print(f"database at revision {current_revision(engine)}")


@playbooks_app.command("check")
def playbooks_check(
    paths: list[Path] = typer.Argument(None, help="Files or directories (default: playbooks dir)."),
) -> None:
    """Validate playbook files (roles and assignees against config/team.yaml); exit 1 and
    print file:line [field]: reason for each error."""
    targets = paths or [settings().playbooks_dir]
    missing = [p for p in targets if not p.exists()]
    if missing:
        fail(f"no such file or directory: {', '.join(map(str, missing))}")
    with hub_errors():
        roster = load_roster(settings().config_dir / "team.yaml", env=config_environment())
    good, errors = check_files(targets, roster)
    for e in errors:
        err.print(str(e), highlight=False, markup=False)
    if errors:
        fail(f"{len(errors)} invalid playbook file(s)")
    steps = sum(len(lp.playbook.steps) for lp in good)
    out.print(f"OK {len(good)} playbooks, {steps} steps")


@playbooks_app.command("schema")
def playbooks_schema() -> None:
    """Print the JSON Schema of playbook files (for editors)."""
    print(json.dumps(playbook_json_schema(), indent=2))


@playbooks_app.command("list")
def playbooks_list() -> None:
    """List the playbooks on disk."""
    ctx = context()
    table = Table("id", "version", "title", "steps", "schedule")
    for pb in ctx.playbooks():
        table.add_row(pb.id, str(pb.version), pb.title, str(len(pb.steps)), pb.schedule or "")
    out.print(table)


@tokens_app.command("create")
def tokens_create(
    role: Role = typer.Option(..., "--role", help="viewer, technician, manager or admin."),
    name: str = typer.Option(..., "--name", help="Who or what uses it (unique)."),
) -> None:
    """Create an API token and print it once."""
    ctx = context(migrate=True)
    with hub_errors(), transaction(ctx.sessions) as session:
        token = create_token(session, name=name, role=role, now=ctx.clock())
    err.print(f"token '{name}' ({role.value}) created; it is shown only now:")
    print(token)


@tokens_app.command("revoke")
def tokens_revoke(name: str = typer.Argument(...)) -> None:
    """Revoke an API token by name."""
    ctx = context(migrate=True)
    with transaction(ctx.sessions) as session:
        if not revoke_token(session, name, now=ctx.clock()):
            fail(f"no active token named '{name}'")
    out.print(f"token '{name}' revoked")


@tokens_app.command("list")
def tokens_list() -> None:
    """List API tokens (names, roles, prefixes; never the tokens)."""
    ctx = context(migrate=True)
    table = Table("name", "role", "prefix", "created", "last used", "revoked")
    with ctx.sessions() as session:
        for t in session.execute(select(ApiToken).order_by(ApiToken.id)).scalars():
            table.add_row(t.name, t.role, t.prefix + "…", f"{t.created_at:%Y-%m-%d %H:%M}",
                          f"{t.last_used_at:%Y-%m-%d %H:%M}" if t.last_used_at else "",
                          f"{t.revoked_at:%Y-%m-%d %H:%M}" if t.revoked_at else "")
    out.print(table)


@audit_app.command("verify")
def audit_verify(
    checkpoints: list[Path] = typer.Option(
        None, "--checkpoints",
        help="Checkpoint files (default: MSPHUB_AUDIT_CHECKPOINT_FILE, else "
        "<data_dir>/audit-checkpoints.jsonl, when it exists)."),
    anchors: list[str] = typer.Option(
        None, "--anchor",
        help="A head kept elsewhere: N:HASH, or the 'Audit chain: entry #N, sha256 HASH' "
        "line of a completion record on a ticket (repeatable)."),
    state: bool = typer.Option(
        True, "--state/--no-state", help="Also check run and step state against the chain."),
) -> None:
    """Check the audit chain; exit 1 naming the first altered, inserted or removed entry.

    With MSPHUB_AUDIT_KEY set, keyed entries and signed checkpoints are checked with it.
    """
    s = settings()
    ctx = context(migrate=True)
    files = checkpoints or [s.audit_checkpoints]
    found = [cp for path in files for cp in audit.read_checkpoints(path)]
    try:
        found += [audit.parse_anchor(text) for text in anchors or []]
    except ValueError as exc:
        fail(f"--anchor: {exc}")
    key = s.audit_key.get_secret_value().encode() if s.audit_key else None
    with ctx.sessions() as session:
        result = audit.verify(session, key=key, checkpoints=found, check_state=state)
    if not result.ok:
        where = f" at entry {result.entry_id}" if result.entry_id is not None else ""
        hint = "" if key else " (if this deployment keys its chain, set MSPHUB_AUDIT_KEY)"
        fail(f"audit chain broken{where}: {result.problem} "
             f"({result.checked} entries verified before it){hint}")
    extra = f", {len(found)} checkpoints matched" if found else ""
    keyed = "keyed" if key else "unkeyed (no MSPHUB_AUDIT_KEY)"
    out.print(f"OK audit chain intact: {result.checked} entries verified{extra}; {keyed}"
              + ("; run and step state agree" if state else ""))
