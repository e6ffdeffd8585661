"""Ticket types and statuses by name: cached, reloaded when stale or an id is unknown."""

from __future__ import annotations

import respx

from connectors.halopsa import HaloPSAConnector
from connectors.halopsa.lookups import HaloLookups

from .conftest import make_config


def test_names_are_cached_and_reloaded_for_unknown_ids_at_most_once_a_minute(
    halo_api: respx.MockRouter,
) -> None:
    """One load serves every poll; an unknown id reloads, but not more than once a minute."""
    now = [0.0]
    with HaloPSAConnector("halo", make_config()) as connector:
        lookups = HaloLookups(connector.client, ttl=600, clock=lambda: now[0])
        names = lookups.names()
        assert names.ticket_types[27] == "Leaver" and names.statuses[9] == "Closed"
        lookups.names(need_types=[27], need_statuses=[1])
        lookups.names(need_types=[99])  # unknown, but loaded a moment ago
        assert halo_api["types"].call_count == 1
        now[0] = 61.0
        lookups.names(need_types=[99])  # unknown and a minute old: reload once
        lookups.names(need_types=[27])
        assert halo_api["types"].call_count == 2
        now[0] = 700.0
        lookups.names()  # stale
        assert halo_api["types"].call_count == 3 and halo_api["statuses"].call_count == 3


def test_status_ids_are_per_ticket_type_and_refreshed_once_when_missing(
    halo_api: respx.MockRouter,
) -> None:
    """A status added since the last read is found after one refresh; a missing one is None."""
    with HaloPSAConnector("halo", make_config()) as connector:
        lookups = HaloLookups(connector.client)
        assert lookups.status_id("closed", 27) == 9
        assert lookups.status_id("Closed", 27) == 9  # cached
        assert halo_api["statuses"].call_count == 1
        assert lookups.status_id("Archived", 27) is None
        assert halo_api["statuses"].call_count == 2
