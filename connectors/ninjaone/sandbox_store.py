"""The NinjaOne sandbox's records in vendor shapes: organizations, devices, activities,
active alerts and query-report rows (thread-safe)."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

Record = dict[str, Any]
# Called after an activity is recorded (the sandbox delivers it to the webhook).
ActivityHook = Callable[[Record], None]
# Activity ids are account-wide in NinjaOne and other tenants' activities take ids too:
# the sandbox leaves gaps, so an invented id between two real ones is simply unknown.
ID_STEP = 3


def seconds(when: datetime) -> float:
    """Epoch seconds with milliseconds, as NinjaOne puts timestamps on the wire."""
    return round(when.timestamp(), 3)


class SandboxStore:
    """One simulated NinjaOne account."""

    def __init__(self, *, clock: Callable[[], datetime] | None = None,
                 on_activity: ActivityHook | None = None) -> None:
        self.clock = clock or (lambda: datetime.now(UTC))
        self.on_activity = on_activity
        self.lock = threading.RLock()
        self.organizations: dict[int, Record] = {}
        self.locations: dict[int, Record] = {}
        self.devices: dict[int, Record] = {}
        self.activities: list[Record] = []  # oldest first
        self.alerts: dict[str, Record] = {}  # seriesUid → active alert
        self.backup_jobs: list[Record] = []
        self.antivirus: dict[int, Record] = {}
        self.patch_installs: list[Record] = []
        self.pending_patches: list[Record] = []
        self._next_id = 1000
        self._next_activity = 170_000

    def _id(self) -> int:
        self._next_id += 1
        return self._next_id

    # -- organizations and devices --------------------------------------------------------

    def create_organization(self, name: str, *, fields: Record | None = None,
                            description: str | None = None) -> Record:
        """An organization (normally one MSP client) with one location, "Main Office"."""
        with self.lock:
            org: Record = {"id": self._id(), "name": name, "description": description,
                           "nodeApprovalMode": "AUTOMATIC", "tags": [],
                           "fields": dict(fields or {}), "userData": {}}
            self.organizations[org["id"]] = org
            location = {"id": self._id(), "name": "Main Office", "organizationId": org["id"]}
            self.locations[location["id"]] = location
            return dict(org)

    def create_device(self, org_id: int, system_name: str, *,
                      node_class: str = "WINDOWS_SERVER", offline: bool = False) -> Record:
        """A device of ``org_id``; records its ``NODE_CREATED`` activity."""
        with self.lock:
            org = self.organizations[org_id]
            location = next(loc for loc in self.locations.values()
                            if loc["organizationId"] == org_id)
            now = seconds(self.clock())
            device: Record = {
                "id": self._id(), "uid": str(uuid.uuid4()), "parentDeviceId": None,
                "organizationId": org_id, "locationId": location["id"],
                "nodeClass": node_class, "nodeRoleId": 1, "rolePolicyId": 1, "policyId": 1,
                "approvalStatus": "APPROVED", "offline": offline,
                "displayName": system_name, "systemName": system_name,
                "dnsName": f"{system_name.lower()}.local", "created": now,
                "lastContact": now, "lastUpdate": now, "tags": [], "fields": {},
                "references": {"organization": {"id": org_id, "name": org["name"],
                                                "nodeApprovalMode": "AUTOMATIC"},
                               "location": {"id": location["id"], "name": location["name"]}},
            }
            self.devices[device["id"]] = device
        self.add_activity(device["id"], "SYSTEM", "NODE_CREATED", status="Node created",
                          message=f"Device {system_name} was registered")
        return dict(device)

    def device_view(self, device_id: int) -> Record | None:
        """A copy of a device, or None."""
        with self.lock:
            device = self.devices.get(device_id)
            return dict(device) if device is not None else None

    # -- activities and alerts ------------------------------------------------------------

    def add_activity(self, device_id: int | None, activity_type: str, status_code: str, *,
                     status: str | None = None, message: str = "", series_uid: str | None = None,
                     severity: str | None = None, priority: str | None = None,
                     result: str | None = None, data: Record | None = None,
                     source_name: str = "", notify: bool = True) -> Record:
        """Record one activity (and deliver it to the webhook)."""
        with self.lock:
            self._next_activity += ID_STEP
            activity: Record = {
                "id": self._next_activity, "activityTime": seconds(self.clock()),
                "deviceId": device_id, "seriesUid": series_uid or str(uuid.uuid4()),
                "activityType": activity_type, "statusCode": status_code,
                "status": status or status_code.replace("_", " ").title(),
                "sourceConfigUid": str(uuid.uuid4()), "sourceName": source_name,
                "subject": "", "message": message,
                "type": activity_type.replace("_", " ").title(),
                "data": dict(data or {}),
            }
            for key, value in (("severity", severity), ("priority", priority),
                               ("activityResult", result)):
                if value is not None:
                    activity[key] = value
            self.activities.append(activity)
            snapshot = dict(activity)
        if notify and self.on_activity is not None:
            self.on_activity(snapshot)
        return snapshot

    def backup_job(self, device_id: int, *, ok: bool = True,
                   plan_name: str = "Nightly image") -> Record:
        """A Ninja Backup job that completed (or failed): its activity and job row."""
        with self.lock:
            device = self.devices[device_id]
            now = seconds(self.clock())
            job = {"jobId": str(uuid.uuid4()), "jobStartTime": now - 600.0, "jobEndTime": now,
                   "jobStatus": "COMPLETED" if ok else "FAILED", "planGuid": str(uuid.uuid4()),
                   "planName": plan_name, "planType": "IMAGE", "totalActualStorageBytes": 10**9,
                   "organizationId": device["organizationId"],
                   "locationId": device["locationId"], "deviceId": device_id}
            self.backup_jobs.append(job)
        code = "NINJA_BACKUP_BACKUPJOB_COMPLETED" if ok else "NINJA_BACKUP_BACKUPJOB_FAILED"
        text = f"Backup job '{plan_name}' {'completed successfully' if ok else 'failed'}"
        return self.add_activity(device_id, "NINJA_BACKUP", code, message=text,
                                 series_uid=job["jobId"], result="SUCCESS" if ok else "FAILURE",
                                 severity=None if ok else "MAJOR", source_name=plan_name)

    def trigger_condition(self, device_id: int, message: str, *,
                          code: str = "agent_cond_disk_free_space",
                          source_type: str = "CONDITION_AGENT_DISK_FREE_SPACE",
                          severity: str = "MAJOR") -> Record:
        """A condition triggers: a ``TRIGGERED`` activity and an active alert."""
        series = str(uuid.uuid4())
        activity = self.add_activity(device_id, "CONDITION", "TRIGGERED", status="Triggered",
                                     message=message, series_uid=series, severity=severity,
                                     data={"message": {"code": code, "params": {}}})
        with self.lock:
            self.alerts[series] = {
                "uid": series, "deviceId": device_id, "message": message,
                "createTime": activity["activityTime"], "updateTime": activity["activityTime"],
                "sourceType": source_type, "sourceConfigUid": activity["sourceConfigUid"],
                "sourceName": "", "subject": "", "data": activity["data"],
            }
        return activity

    def reset_condition(self, series_uid: str) -> Record:
        """The condition clears: a ``RESET`` activity; the alert is no longer active."""
        with self.lock:
            alert = self.alerts.pop(series_uid)
        return self.add_activity(alert["deviceId"], "CONDITION", "RESET", status="Reset",
                                 message=f"Reset: {alert['message']}", series_uid=series_uid,
                                 data=alert["data"])

    def activity_list(self) -> list[Record]:
        """Every activity, newest first (as ``/v2/activities`` lists them)."""
        with self.lock:
            return [dict(a) for a in reversed(self.activities)]

    def last_activity_id(self) -> int | None:
        """The account's newest activity id."""
        with self.lock:
            return self.activities[-1]["id"] if self.activities else None

    # -- status rows ----------------------------------------------------------------------

    def set_antivirus(self, device_id: int, *, product: str = "Bitdefender",
                      state: str = "ON", definitions: str = "UP_TO_DATE") -> Record:
        """The antivirus report row of a device."""
        with self.lock:
            row = {"productName": product, "productState": state, "definitionStatus":
                   definitions, "version": "7.9", "deviceId": device_id,
                   "timestamp": seconds(self.clock())}
            self.antivirus[device_id] = row
            return dict(row)

    def add_patch_install(self, device_id: int, name: str, *, failed: bool = False,
                          kb: str = "KB5030211") -> Record:
        """An OS patch install (and its activity)."""
        with self.lock:
            row = {"id": str(uuid.uuid4()), "name": name, "severity": "CRITICAL",
                   "status": "FAILED" if failed else "INSTALLED", "type": "SECURITY_UPDATES",
                   "installedAt": seconds(self.clock()), "kbNumber": kb, "deviceId": device_id,
                   "timestamp": seconds(self.clock())}
            self.patch_installs.append(row)
        self.add_activity(device_id, "PATCH_MANAGEMENT", "PATCH_MANAGEMENT_INSTALL_FAILED"
                          if failed else "PATCH_MANAGEMENT_INSTALLED", message=f"{name} ({kb})",
                          result="FAILURE" if failed else "SUCCESS")
        return dict(row)

    def health_rows(self) -> list[Record]:
        """The device-health report, computed from the other rows."""
        with self.lock:
            rows = []
            for device in self.devices.values():
                ident = device["id"]
                failed = sum(1 for p in self.patch_installs
                             if p["deviceId"] == ident and p["status"] == "FAILED")
                pending = sum(1 for p in self.pending_patches if p["deviceId"] == ident)
                alerts = sum(1 for a in self.alerts.values() if a["deviceId"] == ident)
                rows.append({
                    "deviceId": ident, "offline": device["offline"], "parentOffline": False,
                    "healthStatus": "HEALTHY" if not (failed or pending or alerts)
                    else "NEEDS_ATTENTION",
                    "failedOSPatchesCount": failed, "pendingOSPatchesCount": pending,
                    "failedSoftwarePatchesCount": 0, "pendingSoftwarePatchesCount": 0,
                    "activeThreatsCount": 0, "quarantinedThreatsCount": 0,
                    "blockedThreatsCount": 0, "alertCount": alerts, "activeJobCount": 0,
                    "avInstallStatus": "INSTALLED" if ident in self.antivirus else None,
                    "pendingRebootReason": None, "installationIssuesCount": 0,
                })
            return rows
