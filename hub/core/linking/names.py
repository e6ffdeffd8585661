"""Company names reduced to what identifies them, and how alike two names are (pure).

Case, accents, punctuation, "&"/"and", bracketed qualifiers, legal forms (Ltd, Inc, LLC,
GmbH …) and trailing site words (HQ, Head Office …) do not count; equal names score 1.0,
one inside the other 0.75 to 0.95, others difflib's ratio unless they share neither a word
nor a quarter of their letter triples.
"""

from __future__ import annotations

import re
import unicodedata
from difflib import SequenceMatcher
from functools import lru_cache

DICE_MIN = 0.25  # letter-triple overlap below which names without a shared word are unrelated

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


@lru_cache(maxsize=16384)
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
    Logistics" is 0.85 — a different company, often); otherwise difflib's ratio — but 0.0
    for names with no word in common and a letter-triple overlap (Dice) under
    ``DICE_MIN``, where difflib finds scattered letters ("Stobre" and "Torne": 0.73).
    """
    return similar(normalise(a), normalise(b))


def similar(left: str, right: str) -> float:
    """``similarity`` of two names that are already normalised."""
    if not left or not right:
        return 0.0
    if left == right or left.replace(" ", "") == right.replace(" ", ""):
        return 1.0
    words_l, words_r = set(left.split()), set(right.split())
    common = len(words_l & words_r)
    if not common and dice(trigrams(left), trigrams(right)) < DICE_MIN:
        return 0.0  # no word and few letter triples in common: difflib's ratio is noise
    ratio = SequenceMatcher(None, left, right).ratio()
    if common and common == min(len(words_l), len(words_r)):
        ratio = max(ratio, 0.75 + 0.2 * common / max(len(words_l), len(words_r)))
    return round(ratio, 3)


def dice(a: frozenset[str], b: frozenset[str]) -> float:
    """Dice coefficient of two sets of letter triples."""
    return 2 * len(a & b) / (len(a) + len(b)) if a or b else 0.0


@lru_cache(maxsize=16384)
def trigrams(norm: str) -> frozenset[str]:
    """The letter triples of a normalised name, spaces removed, padded at both ends."""
    padded = f" {norm.replace(' ', '')} "
    return frozenset(padded[i:i + 3] for i in range(len(padded) - 2))
