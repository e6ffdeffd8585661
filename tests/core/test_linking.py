"""Link suggestions and drift (pure): normalised names, hints, confidence and ambiguity."""

from __future__ import annotations

import random

import pytest

from hub.core.linking.drift import DriftKind, drift
from hub.core.linking.names import normalise, similarity
from hub.core.linking.proposals import (
    THRESHOLD,
    ClientCard,
    KnownLink,
    Record,
    Verdict,
    propose,
    suggest,
)

ACME = ClientCard("acme", "Acme Manufacturing", (
    KnownLink("cw-prod", "company", "ACME", "Acme Manufacturing Ltd", "connectwise"),
    KnownLink("at-prod", "company", "29683001", "Acme Manufacturing Ltd", "autotask"),
    KnownLink("datto", "site", "S-ACME", "Acme HQ", "datto-rmm"),
))
ACME_LOGISTICS = ClientCard("acme-logistics", "Acme Logistics")
GLOBEX = ClientCard("globex", "Globex Corporation", (
    KnownLink("cw-prod", "company", "19300", "Globex Corp", "connectwise"),
    KnownLink("at-prod", "company", "29683002", "Globex", "autotask"),
))
CARDS = [ACME, ACME_LOGISTICS, GLOBEX]


def site(name: str | None, *, hint: str | None = None, hint_name: str | None = None,
         vendor: str | None = "autotask", uid: str = "S-1") -> Record:
    """A Datto site as the connector lists it."""
    return Record("datto", "site", uid, name, vendor if hint or hint_name else None, hint,
                  hint_name)


@pytest.mark.parametrize(("raw", "expected"), [
    ("Acme Manufacturing Ltd", "acme manufacturing"),
    ("ACME MANUFACTURING LIMITED", "acme manufacturing"),
    ("Acme Pty. Ltd.", "acme"),
    ("Globex, Inc.", "globex"),
    ("Initech L.L.C.", "initech"),
    ("Müller Bau GmbH & Co. KG", "muller bau"),
    ("Smith & Jones", "smith jones"),
    ("Smith and Jones", "smith jones"),
    ("The Smith & Jones Co., L.L.C. - Head Office", "smith jones"),
    ("Acme Manufacturing (Leeds)", "acme manufacturing"),
    ("Acme HQ", "acme"),
    ("Office Solutions Ltd", "office solutions"),  # a site word that starts a name stays
    ("A.B.C. Plumbing", "abc plumbing"),
    ("O\u2019Brien\u2019s Bakery", "obriens bakery"),
    ("Company", "company"),  # a legal form alone is the whole name
    ("", ""),
    (None, ""),
])
def test_normalise_keeps_what_identifies_a_company(raw: str | None, expected: str) -> None:
    """Case, accents, punctuation, '&'/'and', legal forms and site words do not count."""
    assert normalise(raw) == expected


def test_similarity_equal_contained_and_unrelated_names() -> None:
    """Equal after normalising is 1.0; a contained name is 0.75-0.95; unrelated is low."""
    assert similarity("Globex Corp.", "Globex Corporation") == 1.0
    assert similarity("Glo-Bex", "Globex") == 1.0
    assert 0.75 <= similarity("Acme", "Acme Logistics") < 0.9
    assert similarity("Mueller Bau", "Müller Bau") > 0.9  # ue for u: difflib still close
    assert similarity("Wayne Enterprises", "Globex Corporation") < 0.5
    assert similarity(None, "Acme") == 0.0


def test_a_linked_psa_hint_is_the_strongest_signal() -> None:
    """A site whose Autotask company is Acme's is Acme, whatever the site is called."""
    proposal = propose(site("Server Room", hint="29683001"), CARDS)
    assert proposal.verdict is Verdict.SUGGESTED
    assert proposal.best is not None and proposal.best.client == "acme"
    assert proposal.confidence == 1.0
    assert "its autotask company 29683001 is linked to this client (at-prod)" in \
        proposal.best.reasons[0]


def test_a_hint_from_another_psa_vendor_means_nothing() -> None:
    """Autotask's company 19300 is not ConnectWise's company 19300."""
    proposal = propose(site("Server Room", hint="19300"), CARDS)
    assert proposal.verdict is Verdict.NONE and proposal.best is None


def test_a_hint_to_an_unconfigured_source_counts_a_little_less() -> None:
    """The link's source is not configured here, so its vendor is unknown: 0.85."""
    unknown = ClientCard("initech", "Initech",
                         (KnownLink("at-old", "company", "77", "Initech", None),))
    proposal = propose(site("Server Room", hint="77"), [unknown, *CARDS])
    assert proposal.best is not None and proposal.best.client == "initech"
    assert proposal.confidence == 0.85 and proposal.verdict is Verdict.SUGGESTED


def test_two_agreeing_signals_raise_the_confidence() -> None:
    """Site name and PSA company name both say Globex: more than either alone."""
    alone = propose(site("Globex"), CARDS)
    both = propose(site("Globex", hint_name="Globex Corporation"), CARDS)
    assert alone.best is not None and both.best is not None
    assert alone.confidence == 0.9 and both.confidence > 0.95
    assert both.best.client == "globex" and len(both.best.reasons) == 2


def test_linked_records_names_count_as_the_client_s_names() -> None:
    """'Acme HQ' (the name of Acme's other Datto site) proposes Acme."""
    proposal = propose(site("Acme HQ", uid="S-2"), [ClientCard("acme", None, ACME.links)])
    assert proposal.best is not None and proposal.best.client == "acme"
    assert proposal.verdict is Verdict.SUGGESTED


def test_close_candidates_are_ambiguous_not_suggested() -> None:
    """A bare 'Acme' could be either Acme: both are shown, neither is suggested."""
    acme = ClientCard("acme", "Acme Manufacturing")
    proposal = propose(site("Acme"), [acme, ACME_LOGISTICS, GLOBEX])
    assert proposal.verdict is Verdict.AMBIGUOUS
    assert proposal.best is not None
    assert {proposal.best.client, proposal.alternatives[0].client} == {"acme", "acme-logistics"}


def test_a_name_sharing_one_word_is_weak() -> None:
    """'Acme Logistics Europe' vs 'Acme Logistics' is close, 'Umbrella Health' vs
    'Umbrella Corporation' only shares a word: weak, below the threshold."""
    umbrella = ClientCard("umbrella", "Umbrella Corporation")
    proposal = propose(site("Umbrella Health"), [umbrella])
    assert proposal.verdict is Verdict.WEAK and proposal.confidence < THRESHOLD


def test_the_threshold_is_the_callers() -> None:
    """A weak match becomes a suggestion when the admin lowers the threshold."""
    umbrella = ClientCard("umbrella", "Umbrella Corporation")
    assert propose(site("Umbrella Health"), [umbrella], threshold=0.7).verdict \
        is Verdict.SUGGESTED


def test_the_key_is_a_name_only_for_a_client_without_names() -> None:
    """A nameless client is found by its key; a named one is not matched on its slug."""
    nameless = ClientCard("wayne-enterprises")
    assert propose(site("Wayne Enterprises"), [nameless]).verdict is Verdict.SUGGESTED
    assert propose(site("Acme"), [ClientCard("acme", "Road Runner Traps")]).verdict \
        is Verdict.NONE


def test_suggest_orders_one_proposal_per_record_confident_first() -> None:
    """Every record gets exactly one proposal; suggested before ambiguous, weak, none."""
    records = [site("Wayne Enterprises", uid="1"), site("Acme Group", uid="2"),
               site("Globex Corp", uid="3"), site("x", hint="29683001", uid="4")]
    cards = [ClientCard("acme", "Acme Manufacturing", ACME.links[:2]), ACME_LOGISTICS, GLOBEX]
    proposals = suggest(records, cards)
    assert sorted(p.record.id for p in proposals) == ["1", "2", "3", "4"]
    assert [p.verdict for p in proposals] == [Verdict.SUGGESTED, Verdict.SUGGESTED,
                                              Verdict.AMBIGUOUS, Verdict.NONE]
    assert [p.record.id for p in proposals[:2]] == ["4", "3"]  # the hint (1.0) first


def test_drift_renamed_deleted_and_moved() -> None:
    """Against the listing now: one site renamed, one gone, one mapped to Globex's company."""
    acme = ClientCard("acme", "Acme", (
        KnownLink("datto", "site", "S-1", "Acme HQ", "datto-rmm"),
        KnownLink("datto", "site", "S-2", "Acme Leeds", "datto-rmm"),
        KnownLink("datto", "site", "S-3", "Acme Depot", "datto-rmm"),
        KnownLink("datto", "site", "S-4", "Acme Annex", "datto-rmm"),
        KnownLink("at-prod", "company", "29683001", "Acme", "autotask"),
        KnownLink("ninja", "organization", "9", "Acme", "ninjaone"),  # not listed: left alone
    ))
    listed = {"datto": [
        site("Acme Head Office Ltd", uid="S-1"),  # same company name after normalising
        site("Acme York", uid="S-2"),
        site("Acme Depot", hint="29683002", uid="S-3"),
        site("Acme Annex", hint="29683001", uid="S-4"),  # still Acme's own company
    ]}
    found = drift([acme, GLOBEX], listed)
    assert [(d.kind, d.link.id) for d in found] == [
        (DriftKind.RENAMED, "S-2"), (DriftKind.MOVED, "S-3")]
    assert found[0].detail == "datto site S-2 was 'Acme Leeds' when linked, is 'Acme York' now"
    assert found[1].now_client == "globex"
    gone = drift([acme], {"datto": []})
    assert {d.kind for d in gone} == {DriftKind.DELETED} and len(gone) == 4
    assert gone[0].detail == "datto site S-1 (Acme HQ) is no longer listed"


def _typo(rng: random.Random, name: str) -> str:
    """The name as someone typed it into the RMM: a swapped, dropped or doubled letter,
    a suffix, a site word, or different case."""
    i = rng.randrange(1, max(2, len(name) - 1))
    return rng.choice([
        name[:i - 1] + name[i] + name[i - 1] + name[i + 1:],
        name[:i] + name[i + 1:],
        name[:i] + name[i] + name[i:],
        name + rng.choice([" Ltd", " Inc.", " - HQ", " (Leeds)", " Group"]),
        name.upper(),
    ])


def test_the_index_scores_exactly_what_scoring_every_client_would() -> None:
    """`suggest` scores only the clients its word/trigram index finds; on names with
    typos, suffixes and unrelated names it proposes exactly what scoring all clients does
    (and typos still find their client)."""
    rng = random.Random(9)
    syllables = ["ac", "me", "glo", "bex", "ini", "tech", "um", "bre", "lla", "sto", "ne",
                 "ri", "ver", "tor", "win", "dal", "ka", "zen"]
    names = sorted({"".join(rng.choices(syllables, k=rng.randint(2, 4))).title()
                    + rng.choice(["", " Logistics", " Dental", " Partners", " Systems"])
                    for _ in range(150)})
    cards = [ClientCard(f"c{i}", name) for i, name in enumerate(names)]
    records = [site(_typo(rng, rng.choice(names)) if i % 4 else
                    "".join(rng.choices(syllables, k=3)), uid=str(i)) for i in range(160)]
    fast = {p.record.id: p for p in suggest(records, cards)}
    for record in records:
        slow = propose(record, cards)
        got = fast[record.id]
        assert (got.verdict, got.best, got.alternatives) == (
            slow.verdict, slow.best, slow.alternatives), record.name
    assert sum(p.verdict is Verdict.SUGGESTED for p in fast.values()) > 40
