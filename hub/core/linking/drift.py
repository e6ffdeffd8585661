"""Drift of stored links: what the vendor lists now against the names and PSA hints the
directory knows — a linked record renamed, deleted, or now mapped to another client's PSA
company (pure; changes nothing)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

from hub.core.linking.names import normalise
from hub.core.linking.proposals import ClientCard, KnownLink, Record, hint_owners, hint_score


class DriftKind(StrEnum):
    """How a stored link no longer matches what the vendor lists now."""

    RENAMED = "renamed"  # the record's name differs from the name seen at link time
    DELETED = "deleted"  # the vendor no longer lists the record
    MOVED = "moved"  # the record's PSA hint now names a company linked to another client



@dataclass(frozen=True)
class Drift:
    """One stored link that no longer matches the vendor's record."""

    kind: DriftKind
    client: str
    link: KnownLink
    detail: str
    now_name: str | None = None
    now_client: str | None = None



def drift(cards: Sequence[ClientCard], listed: Mapping[str, Sequence[Record]]) -> list[Drift]:
    """Links to records of the listed sources that the vendor now shows differently.

    Args:
        cards: every client with its links (links of other sources are left alone).
        listed: source name → every record that source lists now (complete listings only).
    """
    owners = hint_owners(cards)
    found: list[Drift] = []
    by_id = {source: {(r.type, r.id): r for r in records} for source, records in listed.items()}
    for card in cards:
        for link in card.links:
            records = by_id.get(link.source)
            if records is not None:
                found += _link_drift(card, link, records.get((link.type, link.id)), owners)
    return found


def _link_drift(card: ClientCard, link: KnownLink, now: Record | None,
                owners: Mapping[str, list[tuple[ClientCard, KnownLink]]]) -> list[Drift]:
    what = f"{link.source} {link.type} {link.id}"
    if now is None:
        return [Drift(DriftKind.DELETED, card.key, link,
                      f"{what} ({link.name or 'no name recorded'}) is no longer listed")]
    found: list[Drift] = []
    if link.name and now.name and normalise(link.name) != normalise(now.name):
        found.append(Drift(DriftKind.RENAMED, card.key, link,
                           f"{what} was '{link.name}' when linked, is '{now.name}' now",
                           now_name=now.name))
    if now.psa_company_id:
        holders = sorted({o.key for o, x in owners.get(now.psa_company_id, [])
                          if hint_score(now, x) > 0})
        if holders and card.key not in holders:
            found.append(Drift(DriftKind.MOVED, card.key, link,
                               f"{what} now maps to {now.psa_vendor or 'PSA'} company "
                               f"{now.psa_company_id}, which is linked to client "
                               f"'{holders[0]}'", now_name=now.name, now_client=holders[0]))
    return found
