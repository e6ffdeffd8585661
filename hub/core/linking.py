"""Link suggestions and drift: which hub client an unlinked RMM site (or any vendor record)
most likely is, how sure that is, and which stored links no longer match the vendor.

Pure: the caller lists the vendor's records and the directory; nothing here links. Scores
are in [0, 1] and explainable — every candidate carries its reasons:

* a **PSA hint** — the RMM's own PSA integration maps the site to a PSA company (Datto's
  ``autotaskCompanyId``) that is linked to the client: 1.0 when the link's source is of the
  hint's PSA vendor, 0.85 when that source is not configured (its vendor is unknown);
* the **PSA company name** the RMM gives, compared with the client's names: 0.95 * similarity;
* the **record's own name** against the client's name and linked records' names:
  0.9 * similarity. A name alone never scores like a hint.

Two signals for the same client raise its score (``conf = a + (1 - a) * b / 2``). A proposal
is *suggested* only at or above the threshold **and** clear of the runner-up by
``MARGIN``; otherwise it is *ambiguous* (both shown) or *weak*.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from difflib import SequenceMatcher
from enum import StrEnum

THRESHOLD = 0.8  # default confidence a proposal needs to be "suggested"
FLOOR = 0.6  # candidates below this are not shown at all (unrelated names score ~0.5)
MARGIN = 0.08  # the best candidate must beat the runner-up by this much
HINT_LINKED = 1.0
HINT_UNKNOWN_SOURCE = 0.85
HINT_NAME_WEIGHT = 0.95
NAME_WEIGHT = 0.9

# Legal forms dropped from the end of a name ("Acme Pty Ltd" → "acme").
LEGAL_SUFFIXES = frozenset({
    "ltd", "limited", "inc", "incorporated", "llc", "llp", "lp", "plc", "corp",
    "corporation", "co", "company", "gmbh", "mbh", "ag", "kg", "ug", "sa", "sas", "sarl",
    "srl", "spa", "bv", "nv", "pty", "pte", "ab", "as", "asa", "oy", "oyj", "kk", "ulc",
    "pc", "pllc", "lda", "sl", "cic", "group", "holdings",
})
# Words that describe a site rather than a company ("Acme - Head Office" is Acme).
SITE_WORDS = frozenset({
    "hq", "headquarters", "head", "main", "office", "offices", "site", "branch",
    "campus", "location", "primary",
})
FILLER = frozenset({"and", "the", "of"})
_NON_WORD = re.compile(r"[^0-9a-z]+")
_BRACKETS = re.compile(r"\([^)]*\)|\[[^\]]*\]")  # "(London)" qualifies, not names


class Verdict(StrEnum):
    """What the hub makes of a record's best candidate."""

    SUGGESTED = "suggested"  # confident and unambiguous: `msphub clients link` it
    AMBIGUOUS = "ambiguous"  # two clients score close together: an admin must choose
    WEAK = "weak"  # something matches, below the threshold
    NONE = "none"  # no client comes close


class DriftKind(StrEnum):
    """How a stored link no longer matches what the vendor lists now."""

    RENAMED = "renamed"  # the record's name differs from the name seen at link time
    DELETED = "deleted"  # the vendor no longer lists the record
    MOVED = "moved"  # the record's PSA hint now names a company linked to another client


@dataclass(frozen=True)
class Record:
    """A vendor record that could be linked (see ``connectors.base.Linkable``)."""

    source: str
    type: str
    id: str
    name: str | None = None
    psa_vendor: str | None = None
    psa_company_id: str | None = None
    psa_company_name: str | None = None


@dataclass(frozen=True)
class KnownLink:
    """A stored link of a client; ``vendor`` of its source when that source is configured."""

    source: str
    type: str
    id: str
    name: str | None = None
    vendor: str | None = None


@dataclass(frozen=True)
class ClientCard:
    """A hub client as matching sees it: its names and its links."""

    key: str
    name: str | None = None
    links: tuple[KnownLink, ...] = ()


@dataclass(frozen=True)
class Candidate:
    """One client a record may be, with the score and the reasons for it."""

    client: str
    client_name: str | None
    confidence: float
    reasons: tuple[str, ...]


@dataclass(frozen=True)
class Proposal:
    """The best client for one record (and the close alternatives)."""

    record: Record
    verdict: Verdict
    best: Candidate | None = None
    alternatives: tuple[Candidate, ...] = ()

    @property
    def confidence(self) -> float:
        return self.best.confidence if self.best else 0.0


@dataclass(frozen=True)
class Drift:
    """One stored link that no longer matches the vendor's record."""

    kind: DriftKind
    client: str
    link: KnownLink
    detail: str
    now_name: str | None = None
    now_client: str | None = None


@dataclass
class _Score:
    signals: dict[str, float] = field(default_factory=dict)
    reasons: dict[str, str] = field(default_factory=dict)

    def offer(self, kind: str, score: float, reason: str) -> None:
        if score > self.signals.get(kind, 0.0):
            self.signals[kind], self.reasons[kind] = score, reason

    def confidence(self, floor: float) -> float:
        ranked = sorted(self.signals.values(), reverse=True)
        if not ranked:
            return 0.0
        best = ranked[0]
        if len(ranked) > 1 and ranked[1] >= floor:
            best += (1 - best) * ranked[1] / 2  # a second, independent signal agrees
        return round(min(best, 1.0), 3)


# ---- names -----------------------------------------------------------------------------


def normalise(name: str | None) -> str:
    """A company name reduced to what identifies it: case, accents, punctuation, "&"/"and",
    bracketed qualifiers, legal forms (Ltd, Inc, LLC, GmbH …) and trailing site words (HQ,
    Head Office …) removed.

    >>> normalise("The Smith & Jones Co., L.L.C. — Head Office")
    'smith jones'
    """
    words = _words(_BRACKETS.sub(" ", name or "")) or _words(name)
    words = [w for w in words if w not in FILLER] or words
    while len(words) > 1 and (words[-1] in LEGAL_SUFFIXES or words[-1] in SITE_WORDS):
        words.pop()  # trailing only: "Office Solutions" keeps its "office"
    return " ".join(words[:1] + [w for w in words[1:] if w not in LEGAL_SUFFIXES])


def _words(name: str | None) -> list[str]:
    """Lower-case ASCII words; runs of single letters joined ("L.L.C." → "llc")."""
    if not name:
        return []
    text = unicodedata.normalize("NFKD", name)
    text = "".join(c for c in text if not unicodedata.combining(c)).casefold()
    text = text.replace("&", " and ").replace("+", " and ").replace("'", "").replace("\u2019", "")
    words = [w for w in _NON_WORD.split(text) if w]
    out: list[str] = []
    run: list[str] = []
    for word in [*words, ""]:
        if len(word) == 1 and word.isalpha():
            run.append(word)
            continue
        if run:
            out.append("".join(run))
            run = []
        if word:
            out.append(word)
    return out


def similarity(a: str | None, b: str | None) -> float:
    """How alike two names are after ``normalise``, in [0, 1].

    Equal (also ignoring spaces: "Glo-Bex" and "Globex") is 1.0; one name's words all in
    the other's is 0.75 to 0.95 by how much of the longer one they cover ("Acme" in "Acme
    Logistics" is 0.85 — a different company, often); otherwise difflib's ratio.
    """
    left, right = normalise(a), normalise(b)
    if not left or not right:
        return 0.0
    if left == right or left.replace(" ", "") == right.replace(" ", ""):
        return 1.0
    ratio = SequenceMatcher(None, left, right).ratio()
    words_l, words_r = set(left.split()), set(right.split())
    common = len(words_l & words_r)
    if common and common == min(len(words_l), len(words_r)):
        ratio = max(ratio, 0.75 + 0.2 * common / max(len(words_l), len(words_r)))
    return round(ratio, 3)


def _names(card: ClientCard) -> list[tuple[str, str]]:
    """(what, name) pairs a record's name is compared with: the client's name and its linked
    records' names (the key only when the client has neither)."""
    named = [("client name", card.name)] if card.name else []
    named += [(f"{x.source} {x.type}", x.name) for x in card.links if x.name]
    if not named:  # a short slug is a weak name: only when there is nothing better
        named.append(("client key", card.key.replace("-", " ").replace("_", " ")))
    return [(what, str(name)) for what, name in named]


# ---- suggestions -----------------------------------------------------------------------


def _hint_owners(cards: Iterable[ClientCard]) -> dict[str, list[tuple[ClientCard, KnownLink]]]:
    """PSA company id → the (client, company link) pairs that could be that company."""
    owners: dict[str, list[tuple[ClientCard, KnownLink]]] = {}
    for card in cards:
        for link in card.links:
            if link.type == "company":
                owners.setdefault(link.id, []).append((card, link))
    return owners


def _hint_score(record: Record, link: KnownLink) -> float:
    if link.vendor is None:
        return HINT_UNKNOWN_SOURCE
    if record.psa_vendor is None or link.vendor == record.psa_vendor:
        return HINT_LINKED
    return 0.0  # an id of another PSA: the same number means nothing


def _score(record: Record, card: ClientCard,
           owners: Mapping[str, list[tuple[ClientCard, KnownLink]]]) -> _Score:
    score = _Score()
    label = record.psa_vendor or "PSA"
    if record.psa_company_id:
        for owner, link in owners.get(record.psa_company_id, []):
            if owner.key == card.key:
                value = _hint_score(record, link)
                if value:
                    known = "" if link.vendor else ", a source not configured here"
                    score.offer("hint", value, f"its {label} company {record.psa_company_id} "
                                f"is linked to this client ({link.source}{known})")
    for what, name in _names(card):
        if record.psa_company_name:
            sim = similarity(record.psa_company_name, name)
            score.offer("hint_name", HINT_NAME_WEIGHT * sim,
                        f"{label} company name '{record.psa_company_name}' ~ {what} "
                        f"'{name}' ({sim:.2f})")
        if record.name:
            sim = similarity(record.name, name)
            score.offer("name", NAME_WEIGHT * sim,
                        f"{record.type} name '{record.name}' ~ {what} '{name}' ({sim:.2f})")
    return score


def propose(record: Record, cards: Sequence[ClientCard], *, threshold: float = THRESHOLD,
            floor: float = FLOOR,
            owners: Mapping[str, list[tuple[ClientCard, KnownLink]]] | None = None) -> Proposal:
    """The best client for one record, with close alternatives and a verdict."""
    owners = _hint_owners(cards) if owners is None else owners
    found: list[Candidate] = []
    for card in cards:
        scored = _score(record, card, owners)
        conf = scored.confidence(floor)
        if conf >= floor:
            order = sorted(scored.signals, key=lambda k: -scored.signals[k])
            found.append(Candidate(card.key, card.name, conf,
                                   tuple(scored.reasons[k] for k in order
                                         if scored.signals[k] >= floor)))
    if not found:
        return Proposal(record, Verdict.NONE)
    found.sort(key=lambda c: (-c.confidence, c.client))
    best, rest = found[0], tuple(found[1:4])
    close = bool(rest) and best.confidence - rest[0].confidence < MARGIN
    if close:
        verdict = Verdict.AMBIGUOUS
    elif best.confidence >= threshold:
        verdict = Verdict.SUGGESTED
    else:
        verdict = Verdict.WEAK
    return Proposal(record, verdict, best, rest)


def suggest(records: Iterable[Record], cards: Sequence[ClientCard], *,
            threshold: float = THRESHOLD, floor: float = FLOOR) -> list[Proposal]:
    """One proposal per record (none links anything), the most confident first."""
    owners = _hint_owners(cards)
    proposals = [propose(r, cards, threshold=threshold, floor=floor, owners=owners)
                 for r in records]
    rank = {Verdict.SUGGESTED: 0, Verdict.AMBIGUOUS: 1, Verdict.WEAK: 2, Verdict.NONE: 3}
    return sorted(proposals, key=lambda p: (rank[p.verdict], -p.confidence,
                                            p.record.source, p.record.name or "", p.record.id))


# ---- drift -----------------------------------------------------------------------------


def drift(cards: Sequence[ClientCard], listed: Mapping[str, Sequence[Record]]) -> list[Drift]:
    """Links to records of the listed sources that the vendor now shows differently.

    Args:
        cards: every client with its links (links of other sources are left alone).
        listed: source name → every record that source lists now (complete listings only).
    """
    owners = _hint_owners(cards)
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
                          if _hint_score(now, x) > 0})
        if holders and card.key not in holders:
            found.append(Drift(DriftKind.MOVED, card.key, link,
                               f"{what} now maps to {now.psa_vendor or 'PSA'} company "
                               f"{now.psa_company_id}, which is linked to client "
                               f"'{holders[0]}'", now_name=now.name, now_client=holders[0]))
    return found
