"""NinjaOne webhook bodies → thin events (pure): the body only names an activity.

NinjaOne POSTs one activity per delivery (plus the expanded device when asked). Nothing
in it is trusted: the event it becomes is *thin* (no client, keyed ``activity:{id}`` like
the poll), and the connector re-reads the activity and its device from the API before
any rule runs.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime

from connectors import payload as bounded
from connectors.base import THIN, MalformedPayload
from connectors.ninjaone.events import UUID, VENDOR, Outcome, Record, activity_id, outcome
from hub.core.events import Event, EventKind, SubjectRef


@dataclass(frozen=True)
class WebhookActivity:
    """A parsed webhook body: the activity it names and the series it claims."""

    activity_id: int
    series_uid: str | None
    claimed: Outcome | None
    raw: Record
    digest: str


def parse_webhook(body: bytes) -> WebhookActivity:
    """Parse an activity webhook body (bounded); only an integer ``id`` is required.

    Raises:
        MalformedPayload: not a JSON object, or no usable activity ``id``.
    """
    raw = bounded.loads(body)
    if not isinstance(raw, dict):
        raise MalformedPayload("body is not a JSON object")
    ident = activity_id(raw)
    series = raw.get("seriesUid")
    claimed = outcome(raw) if isinstance(raw.get("statusCode"), str) else None
    return WebhookActivity(
        activity_id=ident,
        series_uid=series if isinstance(series, str) and UUID.fullmatch(series) else None,
        claimed=claimed, raw=raw, digest=hashlib.sha256(body).hexdigest()[:16])


def webhook_event(source: str, hook: WebhookActivity, *, received_at: datetime) -> Event | None:
    """One thin event naming the activity; nothing acts on it before ``enrich`` re-reads it.

    The key is the activity's own (``activity:{id}``), so the webhook and the poll collide.
    The body's device and organization are not trusted: the event names no client yet.
    None when the body claims an activity the hub does not act on.
    """
    if hook.claimed is None:
        return None
    if hook.claimed.kind in (EventKind.DEVICE_ADDED, EventKind.DEVICE_REMOVED):
        raw_id = hook.raw.get("deviceId")
        device_id = raw_id if isinstance(raw_id, int) and not isinstance(raw_id, bool) else None
        subject = SubjectRef(type="device", id=str(device_id)) if device_id is not None \
            else SubjectRef(type="activity", id=str(hook.activity_id))
    elif hook.series_uid is not None:
        subject = SubjectRef(type="alert", id=hook.series_uid)
    else:
        subject = SubjectRef(type="activity", id=str(hook.activity_id))
    return Event(
        source=source, vendor=VENDOR, kind=hook.claimed.kind,
        dedupe_key=f"activity:{hook.activity_id}", occurred_at=received_at, subject=subject,
        data={THIN: True, "webhook": {"activity_id": hook.activity_id,
                                      "series_uid": hook.series_uid}},
        raw=hook.raw)
