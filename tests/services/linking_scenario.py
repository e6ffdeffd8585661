"""A small MSP's directory and Datto RMM account, for the link-suggestion tests.

The directory (``CLIENTS_YAML``) holds clients linked to their ConnectWise companies (with
the names ConnectWise shows) and, for some, Autotask companies (``at-prod``, the PSA
Datto's own integration maps sites to). The Datto sandbox gets ``SITES``: sites named the
way MSPs name them (legal forms, "HQ", a city in brackets, "&" for "and", an umlaut), two
integrated with Autotask, and traps — a bare "Acme" that two clients could be, an
"Umbrella Health" that is not Umbrella Corporation, a "Globe Express" that is not Globex.
"""

from __future__ import annotations

from dataclasses import dataclass

from connectors.datto_rmm.sandbox_store import SandboxStore

CLIENTS_YAML = """\
clients:
  acme:
    name: Acme Manufacturing
    links:
      - {source: cw-prod, type: company, id: ACME, name: Acme Manufacturing Ltd}
      - {source: at-prod, type: company, id: "29683001", name: Acme Manufacturing Ltd}
  acme-logistics:
    name: Acme Logistics
    links:
      - {source: cw-prod, type: company, id: ACMELOG, name: Acme Logistics LLC}
  globex:
    name: Globex Corporation
    links:
      - {source: cw-prod, type: company, id: "19300", name: Globex Corp}
  initech:
    name: Initech
    links:
      - {source: at-prod, type: company, id: "29683003", name: "Initech, Inc."}
  smith-jones:
    name: Smith & Jones Solicitors
    links:
      - {source: cw-prod, type: company, id: SMJ, name: Smith and Jones Solicitors LLP}
  mueller:
    name: Müller Bau GmbH
    links:
      - {source: cw-prod, type: company, id: MUELLER, name: "Mueller Bau GmbH & Co. KG"}
  umbrella:
    name: Umbrella Corporation
  stark:
    name: Stark Industries
  hooli:
    name: Hooli
"""


@dataclass(frozen=True)
class Site:
    """A Datto site to create and the client (if any) it should be suggested for."""

    name: str
    expect: str | None  # the client a confident suggestion must name (None: no suggestion)
    verdict: str
    autotask_id: str | None = None
    autotask_name: str | None = None


SITES = (
    Site("Acme Manufacturing - HQ", "acme", "suggested", "29683001", "Acme Manufacturing Ltd"),
    Site("Acme Manufacturing (Leeds)", "acme", "suggested"),
    Site("IT Dept", "initech", "suggested", "29683003", "Initech, Inc."),
    Site("Globex Corp.", "globex", "suggested"),
    Site("Smith & Jones Solicitors LLP", "smith-jones", "suggested"),
    Site("Mueller Bau", "mueller", "suggested"),
    Site("Stark Industries Inc", "stark", "suggested"),
    Site("Acme", None, "ambiguous"),  # acme or acme-logistics: an admin must choose
    Site("Umbrella Health", None, "weak"),  # shares a word with Umbrella Corporation only
    Site("Globe Express", None, "none"),
    Site("Wayne Enterprises", None, "none"),
)
LINKED_SITE = "Hooli HQ"  # linked to hooli already: never proposed
PROVISIONAL_SITE = "Stark Industries Inc"  # linked to a provisional client: still proposed


def seed_sites(store: SandboxStore) -> dict[str, str]:
    """Create ``SITES`` and the linked site in the sandbox; returns site name → uid."""
    uids = {}
    for site in SITES:
        made = store.create_site(site.name, autotask_company_id=site.autotask_id,
                                 autotask_company_name=site.autotask_name)
        uids[site.name] = str(made["uid"])
    uids[LINKED_SITE] = str(store.create_site(LINKED_SITE)["uid"])
    return uids
