"""The org units of one poll: what is polled, what exists, where a device's issue belongs."""

from __future__ import annotations

from typing import Any

import pytest

from connectors.ncentral.client import Listing
from connectors.ncentral.events import Placement
from connectors.ncentral.orgunits import build_org_map, is_customer

from .conftest import load_fixture, make_config


def _listings(*, complete: bool = True) -> tuple[Listing, Listing]:
    customers = Listing(load_fixture("customers.json")["data"], complete, None)
    sites = Listing(load_fixture("sites.json")["data"], True, None)
    return customers, sites


@pytest.mark.parametrize(("raw", "targets"), [
    ({}, [100, 200, 101]),
    ({"scope": "customers"}, [100, 200]),
    ({"scope": "sites"}, [101]),
    ({"org_units": [200]}, [200]),
])
def test_targets_follow_the_scope(raw: dict[str, Any], targets: list[int]) -> None:
    """Customers first, then sites; the service organization never."""
    org = build_org_map(*_listings(), make_config(**raw))

    assert org.targets == targets
    assert org.existing == set(targets)


def test_an_incomplete_listing_leaves_existence_unknown() -> None:
    """Nothing may be forgotten when the customer listing was cut short."""
    org = build_org_map(*_listings(complete=False), make_config())

    assert org.existing is None


def test_a_site_device_belongs_to_the_site_s_customer() -> None:
    """orgUnitId of the issue first, then the polled org unit, then the polled id alone."""
    org = build_org_map(*_listings(), make_config())

    assert org.placement({"orgUnitId": 101}, 100) == Placement(100, "Acme Corp", 101, "Acme HQ")
    assert org.placement({"orgUnitId": 200}, 100) == Placement(200, "Globex")
    assert org.placement({}, 101) == Placement(100, "Acme Corp", 101, "Acme HQ")
    assert org.placement({"orgUnitId": 999}, 777) == Placement(777, None)


@pytest.mark.parametrize(("record", "expected"), [
    ({"orgUnitType": "CUSTOMER"}, True),
    ({"orgUnitType": "SO"}, False),
    ({"orgUnitType": "SYSTEM"}, False),
    ({"isServiceOrg": True}, False),
    ({"isSystem": True}, False),
    ({}, True),
])
def test_only_customers_are_customers(record: dict[str, Any], expected: bool) -> None:
    """Service organizations and the system unit appear in /customers but have no issues."""
    assert is_customer(record) is expected
