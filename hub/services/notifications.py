"""Notifications to people: who hears of a fact, on which channels, rendered and queued.

A fact (steps assigned, a step due soon, overdue or escalated, an approval requested, a
run completed, a mapping rule's ``notify``) becomes one ``notifications`` row per
recipient and channel, in the transaction that records the fact, with its subject and
plain and HTML bodies rendered from the Jinja2 templates (the MSP's own copies under
``config/templates/notifications/`` first, then the shipped ones). The row's
``(fact, recipient, channel)`` is unique, so a fact seen twice notifies once. Sending
is :mod:`hub.services.notification_delivery`'s job.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

import structlog
from jinja2 import ChoiceLoader, FileSystemLoader, StrictUndefined, TemplateError
from jinja2.sandbox import SandboxedEnvironment
from sqlalchemy.orm import Session

from hub.core.checklists.engine import Outcome
from hub.core.states import NoteStatus, StepStatus
from hub.core.team import Channel, Member, Team
from hub.errors import MappingError
from hub.services.context import HubContext
from hub.services.runs import NoteSink
from hub.settings import Settings
from hub.store.db import insert_ignore
from hub.store.models import AuditEntry, Notification, Run

log = structlog.get_logger()

SHIPPED_TEMPLATES = Path(__file__).resolve().parent.parent / "templates" / "notifications"
KINDS = ("assigned", "due_soon", "overdue", "escalated", "approval_requested", "completed",
         "notify")


@lru_cache(maxsize=8)
def template_environment(own: Path | None) -> SandboxedEnvironment:
    """The Jinja2 environment over the MSP's templates and the shipped ones; compiled
    templates are cached in it, so it is built once per directory.

    Sandboxed, with undefined names as errors, HTML autoescaped (a ticket summary is the
    client's text).
    """
    # the MSP's directory may not exist yet: a file put there later is found (and an
    # edited one re-read), no restart needed
    loaders = [FileSystemLoader(str(own))] if own is not None else []
    loaders.append(FileSystemLoader(str(SHIPPED_TEMPLATES)))
    return SandboxedEnvironment(
        loader=ChoiceLoader(loaders), undefined=StrictUndefined, keep_trailing_newline=True,
        autoescape=lambda name: bool(name and name.endswith(".html")))


@dataclass(frozen=True)
class Rendered:
    """One message as a person reads it."""

    subject: str
    text: str
    html: str


@dataclass(frozen=True)
class About:
    """What a notification is about, for the templates and the row.

    Attributes:
        fact: the unique name of the fact (``run/12/step/revoke/overdue``).
        client: the hub client key (whose manager and roles apply).
        steps: the steps concerned (template rows: title, due, assignee).
        assignee: the step's assignee (the ``assignee`` recipient).
        context: more template values (``message``, ``event``, ``late`` …).
    """

    kind: str
    fact: str
    client: str | None
    run: Run | None = None
    step_ids: tuple[str, ...] = ()
    assignee: str | None = None
    link: str | None = None
    event_id: int | None = None
    context: Mapping[str, Any] = field(default_factory=dict)


def _when(moment: datetime | None) -> str | None:
    return f"{moment:%Y-%m-%d %H:%M} UTC" if moment else None


class Notifier:
    """Resolves recipients, renders the templates and queues the rows."""

    def __init__(self, settings: Settings, team: Team) -> None:
        self.team = team
        self.public_url = settings.public_url
        self.env = template_environment(settings.notification_templates)

    def run_link(self, run: Run) -> str:
        """The run page."""
        return f"{self.public_url}/runs/{run.id}"

    def render(self, template: str, values: Mapping[str, Any]) -> Rendered:
        """Subject, plain text and HTML of one template set (``<name>.subject|.txt|.html``).

        Raises:
            MappingError: a template is missing or fails (names the file).
        """
        subject = " ".join(self._one(f"{template}.subject", values).split())[:300]
        values = {**values, "subject": subject}  # the bodies repeat it (HTML title, heading)
        return Rendered(subject, self._one(f"{template}.txt", values),
                        self._one(f"{template}.html", values))

    def _one(self, name: str, values: Mapping[str, Any]) -> str:
        try:
            return self.env.get_template(name).render(values)
        except TemplateError as exc:
            raise MappingError(f"notification template {name}: {exc}") from exc

    def queue(self, session: Session, about: About, *, to: Sequence[str] | None = None,
              channels: Sequence[str] | None = None, template: str | None = None,
              now: datetime) -> list[str]:
        """Queue one notification per recipient and channel; returns the member ids told.

        Args:
            to: recipients (``assignee``, ``manager``, ``role:<r>``, ``person:<id>``);
                default: team.yaml's ``notifications.send`` for the kind.
            channels: email | teams | slack; default: each person's own for the kind.
        """
        targets = to if to is not None else self.team.notifications.send.get(about.kind, ())
        people = self.team.recipients(targets, client_id=about.client, assignee=about.assignee)
        for member_id in people:
            member = self.team.member(member_id)
            assert member is not None  # recipients() keeps team members only
            wanted = [Channel(c) for c in channels] if channels is not None \
                else list(member.notify.channels_for(about.kind))
            broken = None
            try:
                rendered = self.render(template or about.kind, self._values(about, member))
            except MappingError as exc:  # an edited template must not undo the fact itself
                log.error("notification_template_failed", kind=about.kind, reason=str(exc))
                broken = str(exc)
                rendered = Rendered(f"{about.kind}: {about.fact}", broken, "")
            for channel in wanted:
                self._row(session, about, member, channel, rendered, now,
                          explicit=channels is not None, broken=broken)
        return people

    def _values(self, about: About, member: Member) -> dict[str, Any]:
        run = about.run
        steps = {s.step_id: s for s in run.steps} if run is not None else {}
        rows = [{"id": sid, "title": steps[sid].title, "due": _when(steps[sid].due_at),
                 "assignee": steps[sid].assignee} for sid in about.step_ids if sid in steps]
        applicable = [s for s in steps.values() if s.status != StepStatus.NOT_APPLICABLE.value]
        done = sum(s.status in (StepStatus.DONE.value, StepStatus.SKIPPED.value)
                   for s in applicable)
        values: dict[str, Any] = {
            "brand": self.team.notifications.brand, "kind": about.kind,
            "recipient": {"id": member.id, "name": member.name}, "steps": rows,
            "link": about.link or (self.run_link(run) if run is not None else None),
            "run": None if run is None else {
                "id": run.id, "title": run.playbook_version.title, "playbook": run.playbook_id,
                "client": run.client.name or run.client.key, "done": done,
                "total": len(applicable)},
            "message": None, "event": {}}
        values.update(about.context)
        return values

    def _row(self, session: Session, about: About, member: Member, channel: Channel,
             rendered: Rendered, now: datetime, *, explicit: bool,
             broken: str | None = None) -> None:
        address = member.email if channel is Channel.EMAIL else None
        problem = None
        if channel is Channel.EMAIL and not address:
            problem = f"{member.id} has no email address in config/team.yaml"
        elif channel is not Channel.EMAIL and getattr(member.notify, channel.value) is None:
            problem = f"{member.id} has no {channel.value} webhook in config/team.yaml"
        if problem and not (explicit or "channels" in member.notify.model_fields_set):
            return  # the default channel of someone who never set one up: nobody to tell
        problem = broken or problem  # a template that fails: the reason, as a dead letter
        quiet = member.notify.quiet_hours
        later = quiet.until(now) if quiet is not None else None
        insert_ignore(session, Notification, {
            "fact": about.fact[:200], "kind": about.kind,
            "run_id": about.run.id if about.run is not None else None,
            "step_id": about.step_ids[0] if about.step_ids else None,
            "event_id": about.event_id, "recipient": member.id, "channel": channel.value,
            "address": address, "subject": rendered.subject, "body_text": rendered.text,
            "body_html": rendered.html,
            "link": about.link or (self.run_link(about.run) if about.run else None),
            # a channel that cannot work is a dead letter at once: visible, not retried
            "status": NoteStatus.DEAD.value if problem else NoteStatus.PENDING.value,
            "attempts": 0, "last_error": problem, "created_at": now,
            "next_attempt_at": later or now, "sent_at": None,
        }, ["fact", "recipient", "channel"])


def tell(ctx: HubContext, session: Session, kind: str, run: Run,
         step: str | Iterable[str] | None = None, *, to: Sequence[str] | None = None,
         fact: str | None = None, context: Mapping[str, Any] | None = None) -> list[str]:
    """:func:`notify` for a caller holding the hub's context (the time is the hub's clock).

    Approval requests need no call: the run service's sink tells the approving role's
    holders of every ``approval_requested`` fact.
    """
    return notify(Notifier(ctx.settings, ctx.team), session, kind, run, step, to=to,
                  fact=fact, now=ctx.clock(), context=context)


def notify(notifier: Notifier, session: Session, kind: str, run: Run,
           step: str | Iterable[str] | None = None, *, to: Sequence[str] | None = None,
           fact: str | None = None, now: datetime, context: Mapping[str, Any] | None = None,
           channels: Sequence[str] | None = None) -> list[str]:
    """Tell people about one fact of a run (the API other services call).

    Args:
        kind: assigned | due_soon | overdue | escalated | approval_requested | completed
            (the template set and team.yaml's ``send`` entry).
        step: the step id (or ids) concerned; its assignee is the ``assignee`` recipient.
        to: recipients; default: team.yaml's ``notifications.send[kind]``.
        fact: the unique name of the fact; default ``run/<id>/step/<step>/<kind>`` — pass
            one when the same kind can happen twice (a second approval request).

    Returns: the member ids told (each on their channels).
    """
    step_ids = (step,) if isinstance(step, str) else tuple(step or ())
    steps = {s.step_id: s for s in run.steps}
    first = steps.get(step_ids[0]) if step_ids else None
    about = About(kind=kind, fact=fact or f"run/{run.id}/step/{'+'.join(step_ids)}/{kind}",
                  client=run.client.key, run=run, step_ids=step_ids,
                  assignee=first.assignee if first is not None else None,
                  context=dict(context or {}))
    return notifier.queue(session, about, to=to, channels=channels, now=now)


class NotifyingSink:
    """The run service's note sink, plus the people's notifications of the same outcome:
    steps assigned (at launch, one message per person listing their steps; on
    reassignment, the new assignee), an approval requested (the approving role's holders
    who may approve) and the run completed."""

    def __init__(self, notes: NoteSink, notifier: Notifier) -> None:
        self.notes = notes
        self.notifier = notifier

    def __call__(self, session: Session, run: Run, outcome: Outcome,
                 entries: Sequence[AuditEntry]) -> None:
        self.notes(session, run, outcome, entries)
        for fact, entry in zip(outcome.facts, entries, strict=False):
            if fact.action == "assigned":
                self._assigned(session, run, fact.data, fact.step_id, fact.actor, entry)
            elif fact.action == "completed":
                notify(self.notifier, session, "completed", run, fact=f"audit/{entry.id}",
                       now=entry.at)
            elif fact.action == "approval_requested" and fact.step_id:
                notify(self.notifier, session, "approval_requested", run, fact.step_id,
                       to=self._approvers(run, fact.data), fact=f"audit/{entry.id}",
                       now=entry.at)

    def _approvers(self, run: Run, data: Mapping[str, Any]) -> list[str] | None:
        """Everyone holding the approving role for the client who may approve (with
        four-eyes, not those who did the approved steps); None: team.yaml's default."""
        role = data.get("role")
        if not role:
            return None
        did = {s.done_by for s in run.steps if s.step_id in set(data.get("approves") or ())}
        holders = [m for m in self.notifier.team.members_for(str(role), run.client.key)
                   if not (data.get("four_eyes", True) and f"user:{m}" in did)]
        return [f"person:{m}" for m in holders] or None

    def _assigned(self, session: Session, run: Run, data: Mapping[str, Any],
                  step_id: str | None, actor: str, entry: AuditEntry) -> None:
        if step_id is not None:  # a reassignment: the new assignee, unless they took it
            assignee = data.get("assignee")
            if assignee and actor != f"user:{assignee}":
                notify(self.notifier, session, "assigned", run, step_id,
                       fact=f"audit/{entry.id}", now=entry.at)
            return
        by_person: dict[str, list[str]] = {}
        for sid, member in dict(data.get("assignees") or {}).items():
            by_person.setdefault(str(member), []).append(str(sid))
        for member, step_ids in by_person.items():
            notify(self.notifier, session, "assigned", run, step_ids, to=[f"person:{member}"],
                   fact=f"audit/{entry.id}", now=entry.at)
