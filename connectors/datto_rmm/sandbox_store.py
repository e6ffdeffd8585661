"""The Datto RMM sandbox's records: sites, devices and alerts in vendor shapes (thread-safe)."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

Record = dict[str, Any]
# Called after an alert is raised or resolved: (state "triggered" | "resolved", alert).
AlertHook = Callable[[str, Record], None]


def millis(when: datetime) -> int:
    """Epoch milliseconds, as Datto puts every timestamp on the wire."""
    return int(when.timestamp() * 1000)


class SandboxStore:
    """Sites, devices and alerts of one simulated account."""

    def __init__(self, *, clock: Callable[[], datetime] | None = None,
                 on_alert: AlertHook | None = None) -> None:
        self.clock = clock or (lambda: datetime.now(UTC))
        self.on_alert = on_alert
        self.lock = threading.RLock()
        self.account_uid = uuid.uuid4().hex[:8]
        self.sites: dict[str, Record] = {}
        self.devices: dict[str, Record] = {}
        self.alerts: dict[str, Record] = {}
        self._next_id = 100

    def _id(self) -> int:
        self._next_id += 1
        return self._next_id

    def create_site(self, name: str, *, autotask_company_id: str | None = None,
                    autotask_company_name: str | None = None, uid: str | None = None) -> Record:
        """A site (a Datto site is normally one MSP client)."""
        with self.lock:
            site: Record = {
                "id": self._id(), "uid": uid or str(uuid.uuid4()), "accountUid": self.account_uid,
                "name": name, "description": None, "notes": None, "onDemand": False,
                "splashtopAutoInstall": False, "proxySettings": None,
                "devicesStatus": {"numberOfDevices": 0, "numberOfOnlineDevices": 0,
                                  "numberOfOfflineDevices": 0},
                "autotaskCompanyName": autotask_company_name,
                "autotaskCompanyId": autotask_company_id,
                "portalUrl": None,
            }
            self.sites[site["uid"]] = site
            return dict(site)

    def create_device(self, site_uid: str, hostname: str, *, online: bool = True,
                      **fields: Any) -> Record:
        """A device of ``site_uid`` (shape of ``fixtures/device.json``)."""
        with self.lock:
            site = self.sites[site_uid]
            now = millis(self.clock())
            device: Record = {
                "id": self._id(), "uid": str(uuid.uuid4()), "siteId": site["id"],
                "siteUid": site_uid, "siteName": site["name"],
                "deviceType": {"category": "Desktop", "type": "Desktop"},
                "hostname": hostname, "operatingSystem": "Windows 11 Pro",
                "cagVersion": "10.1.0", "online": online, "suspended": False,
                "deleted": False, "rebootRequired": False, "lastSeen": now,
                "lastReboot": now, "lastAuditDate": now, "creationDate": now,
                "deviceClass": "device", "udf": {},
                "antivirus": {"antivirusProduct": "Windows Defender",
                              "antivirusStatus": "RunningAndUpToDate"},
                "patchManagement": {"patchStatus": "FullyPatched",
                                    "patchesApprovedPending": 0, "patchesNotApproved": 0,
                                    "patchesInstalled": 10},
                **fields,
            }
            self.devices[device["uid"]] = device
            status = site["devicesStatus"]
            status["numberOfDevices"] += 1
            status["numberOfOnlineDevices" if online else "numberOfOfflineDevices"] += 1
            return dict(device)

    def raise_alert(self, site_uid: str, *, device_uid: str | None = None,
                    context: Record | None = None, priority: str = "High",
                    diagnostics: str | None = None, notify: bool = True) -> Record:
        """Open an alert on a site (and device); sends the "triggered" webhook."""
        with self.lock:
            site = self.sites[site_uid]
            device = self.devices.get(device_uid or "") or next(
                (d for d in self.devices.values() if d["siteUid"] == site_uid), None)
            alert: Record = {
                "alertUid": str(uuid.uuid4()), "priority": priority,
                "diagnostics": diagnostics, "resolved": False, "resolvedBy": None,
                "resolvedOn": None, "muted": False, "ticketNumber": None,
                "timestamp": millis(self.clock()),
                "alertMonitorInfo": {"sendsEmails": False, "createsTicket": False},
                "alertContext": dict(context or {"@class": "backup_management_ctx",
                                                 "errorMessage": "Backup failed",
                                                 "timeout": 0}),
                "alertSourceInfo": {
                    "deviceUid": device["uid"] if device else None,
                    "deviceName": device["hostname"] if device else None,
                    "siteUid": site_uid, "siteName": site["name"],
                },
                "responseActions": [], "autoresolveMins": None,
            }
            self.alerts[alert["alertUid"]] = alert
            snapshot = dict(alert)
        if notify and self.on_alert is not None:
            self.on_alert("triggered", snapshot)
        return snapshot

    def resolve_alert(self, alert_uid: str, *, by: str = "sandbox",
                      notify: bool = True) -> Record:
        """Resolve an open alert; sends the "resolved" webhook."""
        with self.lock:
            alert = self.alerts[alert_uid]
            alert.update(resolved=True, resolvedBy=by, resolvedOn=millis(self.clock()))
            snapshot = dict(alert)
        if notify and self.on_alert is not None:
            self.on_alert("resolved", snapshot)
        return snapshot

    def alert_list(self, *, resolved: bool, site_uid: str | None = None) -> list[Record]:
        """Alerts in the given state (optionally of one site), oldest first."""
        with self.lock:
            return [dict(a) for a in self.alerts.values()
                    if bool(a["resolved"]) == resolved
                    and (site_uid is None or a["alertSourceInfo"]["siteUid"] == site_uid)]

    def device_list(self, site_uid: str | None = None) -> list[Record]:
        """Devices of the account or of one site."""
        with self.lock:
            return [dict(d) for d in self.devices.values()
                    if site_uid is None or d["siteUid"] == site_uid]

    def site_list(self) -> list[Record]:
        """Every site."""
        with self.lock:
            return [dict(s) for s in self.sites.values()]
