"""The device filter (df) builder and the sandbox's reading of it agree."""

from __future__ import annotations

from typing import Any

import pytest

from connectors.ninjaone.filters import device_filter
from connectors.ninjaone.sandbox_query import FilterError, device_matcher


@pytest.mark.parametrize(("kwargs", "expected"), [
    ({}, None),
    ({"organizations": [41]}, "org = 41"),
    ({"organizations": [2, 5]}, "org in (2,5)"),
    ({"organizations": [2], "classes": ["WINDOWS_SERVER", "WINDOWS_WORKSTATION"]},
     "org = 2 AND class in (WINDOWS_SERVER,WINDOWS_WORKSTATION)"),
    ({"locations": [3], "devices": [7, 8], "online": False},
     "loc = 3 AND id in (7,8) AND offline"),
])
def test_device_filters_use_the_documented_syntax(kwargs: dict[str, Any],
                                                  expected: str | None) -> None:
    """`field = v`, `field in (a,b)`, bare online/offline, joined by AND."""
    assert device_filter(**kwargs) == expected


@pytest.mark.parametrize("kwargs", [
    {"organizations": []}, {"organizations": [-1]}, {"classes": ["windows; DROP"]},
    {"organizations": [True]}, {"classes": ["WINDOWS SERVER"]},
])
def test_nothing_but_ids_and_enum_words_reaches_a_filter(kwargs: dict[str, Any]) -> None:
    """No typed text is pasted into the filter."""
    with pytest.raises(ValueError):
        device_filter(**kwargs)


def test_the_sandbox_reads_what_the_builder_writes() -> None:
    """The simulator's matcher accepts every clause the connector sends."""
    devices = [{"id": 7, "organizationId": 2, "locationId": 3, "nodeClass": "WINDOWS_SERVER",
                "offline": False},
               {"id": 8, "organizationId": 5, "locationId": 4, "nodeClass": "MAC",
                "offline": True}]
    df = device_filter(organizations=[2, 5], classes=["MAC"], online=False)

    assert [d["id"] for d in devices if device_matcher(df)(d)] == [8]
    assert [d["id"] for d in devices if device_matcher("org = 2")(d)] == [7]
    with pytest.raises(FilterError):
        device_matcher("name contains acme")
