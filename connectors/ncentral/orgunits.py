"""N-central's org units for one poll: customers, sites, what to poll, what exists (pure).

Org units: service organization → customer → site. Events name the **customer** (the hub
client); a device under a site is placed at the site's customer (``parentId``). Active
issues exist for customers and sites only, so service organizations and the system unit
are never polled.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from connectors.ncentral.client import Listing
from connectors.ncentral.config import NcentralConfig
from connectors.ncentral.events import Placement, org_unit_id

Record = dict[str, Any]


def is_customer(record: Record) -> bool:
    """True for a real customer (service organizations and the system unit have no issues)."""
    kind = str(record.get("orgUnitType") or "").upper()
    return not (record.get("isServiceOrg") is True or record.get("isSystem") is True
                or kind in ("SO", "SYSTEM", "SERVICE_ORGANIZATION"))


def _name(record: Record, key: str) -> str | None:
    value = record.get(key)
    return value if isinstance(value, str) else None


@dataclass(frozen=True)
class OrgMap:
    """The org units of one run: customers and sites by id, what to poll, what exists."""

    customers: dict[int, str | None]
    sites: dict[int, tuple[str | None, int | None]]  # site id → (name, customer id)
    targets: list[int]
    existing: set[int] | None
    server_time: datetime | None

    def placement(self, issue: Record, polled: int) -> Placement:
        """The issue's customer (and site): from its own ``orgUnitId``, else the polled one."""
        for unit in (org_unit_id(issue, "orgUnitId"), polled):
            if unit is None:
                continue
            if unit in self.sites:
                name, parent = self.sites[unit]
                if parent is not None:
                    return Placement(parent, self.customers.get(parent), unit, name)
            if unit in self.customers:
                return Placement(unit, self.customers[unit])
        return Placement(polled, None)


def build_org_map(customers: Listing, sites: Listing, config: NcentralConfig) -> OrgMap:
    """The run's org units from the customer and site listings and the configured scope.

    ``existing`` is what is polled when that is known for sure (configured ``org_units``,
    or complete listings); remembered issues of any other org unit — deleted, or out of
    scope since a config change — are then forgotten. With an incomplete listing it is
    None: nothing is forgotten.
    """
    by_customer = {cid: _name(c, "customerName") for c in customers.items
                   if is_customer(c)
                   and (cid := org_unit_id(c, "customerId", "orgUnitId")) is not None}
    by_site = {sid: (_name(s, "siteName"), org_unit_id(s, "parentId", "customerId"))
               for s in sites.items if (sid := org_unit_id(s, "siteId", "orgUnitId")) is not None}
    existing: set[int] | None = None
    if config.org_units is not None:
        targets = list(config.org_units)
        existing = set(targets)
    else:
        targets = ([*by_customer] if config.scope != "sites" else []) + \
                  ([*by_site] if config.scope != "customers" else [])
        if customers.complete and sites.complete:
            existing = set(targets)
    return OrgMap(by_customer, by_site, targets, existing,
                  customers.server_time or sites.server_time)
