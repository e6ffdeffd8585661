"""Link suggestions: which hub client an unlinked RMM site (or any vendor record) most likely
is, and how sure that is.

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

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from hub.core.linking.names import DICE_MIN, normalise, similar, trigrams

THRESHOLD = 0.8  # default confidence a proposal needs to be "suggested"
FLOOR = 0.6  # candidates below this are not shown at all (unrelated names score ~0.5)
MARGIN = 0.08  # the best candidate must beat the runner-up by this much
HINT_LINKED = 1.0
HINT_UNKNOWN_SOURCE = 0.85
HINT_NAME_WEIGHT = 0.95
NAME_WEIGHT = 0.9


class Verdict(StrEnum):
    """What the hub makes of a record's best candidate."""

    SUGGESTED = "suggested"  # confident and unambiguous: `msphub clients link` it
    AMBIGUOUS = "ambiguous"  # two clients score close together: an admin must choose
    WEAK = "weak"  # something matches, below the threshold
    NONE = "none"  # no client comes close



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



@dataclass(frozen=True)
class _Name:
    what: str  # "client name", "cw-prod company" …
    raw: str
    norm: str
    grams: frozenset[str]


def _names(card: ClientCard) -> list[_Name]:
    """The names a record's names are compared with: the client's name and its linked
    records' names (the key only when the client has neither)."""
    named = [("client name", card.name)] if card.name else []
    named += [(f"{x.source} {x.type}", x.name) for x in card.links if x.name]
    if not named:  # a short slug is a weak name: only when there is nothing better
        named.append(("client key", card.key.replace("-", " ").replace("_", " ")))
    out = []
    for what, raw in named:
        norm = normalise(str(raw))
        if norm:
            out.append(_Name(what, str(raw), norm, trigrams(norm)))
    return out




def hint_owners(cards: Iterable[ClientCard]) -> dict[str, list[tuple[ClientCard, KnownLink]]]:
    """PSA company id → the (client, company link) pairs that could be that company."""
    owners: dict[str, list[tuple[ClientCard, KnownLink]]] = {}
    for card in cards:
        for link in card.links:
            if link.type == "company":
                owners.setdefault(link.id, []).append((card, link))
    return owners


def hint_score(record: Record, link: KnownLink) -> float:
    """What a link to the company a record's PSA hint names is worth (0.0: another PSA's)."""
    if link.vendor is None:
        return HINT_UNKNOWN_SOURCE
    if record.psa_vendor is None or link.vendor == record.psa_vendor:
        return HINT_LINKED
    return 0.0  # an id of another PSA: the same number means nothing


class _Index:
    """The clients' names by word and by letter triple, and their PSA companies by id, so
    that each record is scored only against the clients that can score at all: a shared
    word, a triple overlap of at least ``DICE_MIN`` (below it ``similarity`` is 0.0), or
    the hint's company. The same result as scoring every client, which with difflib takes
    minutes for 2,000 sites and 1,000 clients."""

    def __init__(self, cards: Sequence[ClientCard]) -> None:
        self.cards = list(cards)
        self.names = [_names(card) for card in self.cards]
        self.owners = hint_owners(self.cards)
        self.by_word: dict[str, set[int]] = {}
        self.by_gram: dict[str, list[tuple[int, int]]] = {}
        for ci, names in enumerate(self.names):
            for ni, name in enumerate(names):
                for word in name.norm.split():
                    self.by_word.setdefault(word, set()).add(ci)
                for gram in name.grams:
                    self.by_gram.setdefault(gram, []).append((ci, ni))

    def candidates(self, record: Record) -> list[int]:
        """Positions of the clients worth scoring for this record."""
        found: set[int] = set()
        if record.psa_company_id:
            keys = {card.key for card, _ in self.owners.get(record.psa_company_id, [])}
            found |= {ci for ci, card in enumerate(self.cards) if card.key in keys}
        for text in (record.name, record.psa_company_name):
            norm = normalise(text)
            if not norm:
                continue
            for word in norm.split():
                found |= self.by_word.get(word, set())
            grams = trigrams(norm)
            hits: Counter[tuple[int, int]] = Counter()
            for gram in grams:
                hits.update(self.by_gram.get(gram, ()))
            for (ci, ni), shared in hits.items():
                if 2 * shared / (len(grams) + len(self.names[ci][ni].grams)) >= DICE_MIN:
                    # the same number names.dice gives: both count distinct triples
                    found.add(ci)
        return sorted(found)


def _score(record: Record, card: ClientCard, names: Sequence[_Name],
           owners: Mapping[str, list[tuple[ClientCard, KnownLink]]]) -> _Score:
    score = _Score()
    label = record.psa_vendor or "PSA"
    if record.psa_company_id:
        for owner, link in owners.get(record.psa_company_id, []):
            if owner.key == card.key:
                value = hint_score(record, link)
                if value:
                    known = "" if link.vendor else ", a source not configured here"
                    score.offer("hint", value, f"its {label} company {record.psa_company_id} "
                                f"is linked to this client ({link.source}{known})")
    hint_name, own_name = normalise(record.psa_company_name), normalise(record.name)
    for name in names:
        if hint_name:
            sim = similar(hint_name, name.norm)
            score.offer("hint_name", HINT_NAME_WEIGHT * sim,
                        f"{label} company name '{record.psa_company_name}' ~ {name.what} "
                        f"'{name.raw}' ({sim:.2f})")
        if own_name:
            sim = similar(own_name, name.norm)
            score.offer("name", NAME_WEIGHT * sim, f"{record.type} name '{record.name}' ~ "
                        f"{name.what} '{name.raw}' ({sim:.2f})")
    return score


def propose(record: Record, cards: Sequence[ClientCard], *, threshold: float = THRESHOLD,
            floor: float = FLOOR, index: _Index | None = None) -> Proposal:
    """The best client for one record, with close alternatives and a verdict.

    Without ``index`` every client is scored (``suggest`` passes one: the same result,
    scoring only the clients that could reach the floor).
    """
    if index is None:
        index = _Index(cards)
        positions: Iterable[int] = range(len(index.cards))
    else:
        positions = index.candidates(record)
    found: list[Candidate] = []
    for ci in positions:
        card = index.cards[ci]
        scored = _score(record, card, index.names[ci], index.owners)
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
    index = _Index(cards)
    proposals = [propose(r, cards, threshold=threshold, floor=floor, index=index)
                 for r in records]
    rank = {Verdict.SUGGESTED: 0, Verdict.AMBIGUOUS: 1, Verdict.WEAK: 2, Verdict.NONE: 3}
    return sorted(proposals, key=lambda p: (rank[p.verdict], -p.confidence,
                                            p.record.source, p.record.name or "", p.record.id))
