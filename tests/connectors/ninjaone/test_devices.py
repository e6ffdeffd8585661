"""The device → organization cache: batched device-filter lookups, deletions, expiry."""

from __future__ import annotations

import httpx
import respx

from connectors.http import RetryPolicy
from connectors.ninjaone.client import NinjaOneClient
from connectors.ninjaone.devices import DeviceCache

from .conftest import make_config


def test_unknown_devices_are_looked_up_in_batches_and_a_missing_one_is_remembered(
    ninja_api: respx.MockRouter
) -> None:
    """250 devices → 3 requests (id in (...)); an id the API lacks is cached as None."""
    def devices(request: httpx.Request) -> httpx.Response:
        df = request.url.params["df"]
        ids = [int(i) for i in df.removeprefix("id in (").removesuffix(")").split(",")]
        return httpx.Response(200, json=[{"id": i, "organizationId": 2} for i in ids
                                         if i != 13])

    ninja_api["devices"].mock(side_effect=devices)
    now = [0.0]
    cache = DeviceCache(NinjaOneClient(make_config(), source="t",
                                       retry=RetryPolicy(sleep=lambda _s: None)),
                        clock=lambda: now[0])

    cache.prefetch([*range(1, 251), 7, None, "x", True])
    cache.prefetch(range(1, 251))

    assert ninja_api["devices"].call_count == 3
    assert (cache.get(7) or {}).get("organizationId") == 2
    assert cache.get(13) is None and ninja_api["device"].call_count == 0
    # an hour later the entries are stale: the next lookup asks again
    now[0] = 3601.0
    cache.get(7)
    assert ninja_api["device"].call_count == 1


def test_a_fresh_read_always_asks_the_api(ninja_api: respx.MockRouter) -> None:
    """Webhooks re-read their device even when it is cached."""
    cache = DeviceCache(NinjaOneClient(make_config(), source="t",
                                       retry=RetryPolicy(sleep=lambda _s: None)))
    cache.get(7)
    cache.get(7)
    cache.get(7, fresh=True)

    assert ninja_api["device"].call_count == 2
