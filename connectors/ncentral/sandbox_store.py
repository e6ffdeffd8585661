"""The N-central sandbox's records: customers, sites, devices and active issues in the
shapes of N-central's OpenAPI document (thread-safe)."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

Record = dict[str, Any]
SO_ID = 50  # the service organization every sandbox customer belongs to
SO_NAME = "Sandbox MSP"


def iso(when: datetime) -> str:
    """ISO-8601 UTC with milliseconds, as N-central writes ``transitionTime``."""
    utc = when.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


class SandboxStore:
    """Org units, devices and the currently active issues of one simulated server.

    A device belongs to one customer or site org unit. An issue is a device's monitoring
    task (``taskId``) in a failing state; clearing it removes it from the active list, and
    the same monitor failing again reuses the task with a new ``transitionTime``.
    """

    def __init__(self, *, clock: Callable[[], datetime] | None = None) -> None:
        self.clock = clock or (lambda: datetime.now(UTC))
        self.lock = threading.RLock()
        self.customers: dict[int, Record] = {}
        self.sites: dict[int, Record] = {}
        self.devices: dict[int, Record] = {}
        self.issues: dict[int, Record] = {}  # active issues by taskId
        self._tasks: dict[tuple[int, str], int] = {}
        self._org_ids = itertools.count(100)
        self._device_ids = itertools.count(987_600)
        self._task_ids = itertools.count(55_500)

    # -- org units and devices ------------------------------------------------------------

    def create_customer(self, name: str, *, external_id: str | None = None) -> Record:
        """A customer under the sandbox's service organization (one MSP client)."""
        with self.lock:
            cid = next(self._org_ids)
            customer: Record = {
                "customerId": cid, "customerName": name, "orgUnitType": "CUSTOMER",
                "parentId": SO_ID, "externalId": external_id, "externalId2": None,
                "contactFirstName": None, "contactLastName": None, "contactEmail": None,
                "city": None, "country": None, "isSystem": False, "isServiceOrg": False,
            }
            self.customers[cid] = customer
            return dict(customer)

    def create_site(self, customer_id: int, name: str) -> Record:
        """A site of ``customer_id`` (a location of that client)."""
        with self.lock:
            if customer_id not in self.customers:
                raise KeyError(customer_id)
            sid = next(self._org_ids)
            site: Record = {"siteId": sid, "siteName": name, "orgUnitType": "SITE",
                            "parentId": customer_id, "externalId": None, "city": None}
            self.sites[sid] = site
            return dict(site)

    def create_device(self, org_unit_id: int, name: str, **fields: Any) -> Record:
        """A device under a customer or a site (the spec's ``Device`` shape)."""
        with self.lock:
            site = self.sites.get(org_unit_id)
            customer_id = site["parentId"] if site else org_unit_id
            customer = self.customers[customer_id]
            did = next(self._device_ids)
            device: Record = {
                "deviceId": did, "uri": "10.0.0.17", "remoteControlUri": "", "sourceUri": "",
                "longName": name, "discoveredName": name,
                "deviceClass": "Workstations - Windows",
                "deviceClassLabel": "Workstations - Windows", "description": "",
                "isProbe": False, "osId": "winnt", "supportedOs": "Microsoft Windows 11 Pro",
                "supportedOsLabel": "Microsoft Windows 11 Pro", "lastLoggedInUser": "-",
                "stillLoggedIn": "", "licenseMode": "Professional", "orgUnitId": org_unit_id,
                "soId": SO_ID, "soName": SO_NAME, "customerId": customer_id,
                "customerName": customer["customerName"],
                "siteId": site["siteId"] if site else None,
                "siteName": site["siteName"] if site else None, "applianceId": did + 1,
                "lastApplianceCheckinTime": iso(self.clock()), **fields,
            }
            self.devices[did] = device
            return dict(device)

    def remove_device(self, device_id: int) -> Record:
        """Delete a device (and its active issues) from the server."""
        with self.lock:
            for task in [t for t, i in self.issues.items() if i["deviceId"] == device_id]:
                del self.issues[task]
            return self.devices.pop(device_id)

    # -- issues ---------------------------------------------------------------------------

    def raise_issue(self, device_id: int, service_name: str = "Backup Manager", *,
                    service_type: str = "AMP", notification_state: int = 5) -> Record:
        """Make ``service_name`` on a device fail (a new occurrence of its task)."""
        with self.lock:
            device = self.devices[device_id]
            task = self._tasks.setdefault((device_id, service_name), next(self._task_ids))
            customer = self.customers[device["customerId"]]
            issue: Record = {
                "orgUnitId": device["orgUnitId"], "deviceId": device_id,
                "notificationState": notification_state, "serviceId": 400 + len(service_name),
                "serviceName": service_name, "serviceType": service_type, "taskId": task,
                "serviceItemId": 36_000 + task % 1000,
                "_extra": {
                    "deviceName": device["longName"], "transitionTime": iso(self.clock()),
                    "customerTree": ["System", SO_NAME, customer["customerName"]],
                    "soCustomerID": SO_ID, "deviceClassValue": None, "deviceClassLabel": None,
                    "acknowledgedBy": "", "psaTicketDetails": "", "probe": False,
                    "monitoringDisabled": False, "numberOfActiveNotification": 0,
                    "licenseMode": "Professional",
                },
            }
            self.issues[task] = issue
            return dict(issue)

    def clear_issue(self, task_id: int) -> Record:
        """The task is back to normal: it leaves the active list."""
        with self.lock:
            return self.issues.pop(task_id)

    def issue_list(self, org_unit_id: int) -> list[Record]:
        """Active issues of devices directly under ``org_unit_id`` (a customer's list does
        not include its sites' devices: the strictest reading), oldest task first."""
        with self.lock:
            return [dict(i) for t, i in sorted(self.issues.items())
                    if i["orgUnitId"] == org_unit_id]

    def device_list(self, org_unit_id: int | None = None) -> list[Record]:
        """Devices of the server or directly under one org unit."""
        with self.lock:
            return [dict(d) for d in self.devices.values()
                    if org_unit_id is None or d["orgUnitId"] == org_unit_id]
