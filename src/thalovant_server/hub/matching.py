"""Deterministic, fast intent matching: regex patterns first, then normalised token overlap.

Text is normalised once per utterance (lower case, punctuation to spaces, single spaces).
A regex pattern is searched in the normalised text and scores 1.0; its named groups become
slots. An example phrase scores the Dice coefficient of the content-token sets (stop words
removed). The best score at or above :data:`THRESHOLD` wins; ties go to the earlier
candidate, so the outcome depends only on the input and the skill order.

:meth:`CompiledIntent.score` defines one intent's score; :class:`IntentIndex` scores an
utterance against all of a hub's intents at once and gives the same matches, reaching only
the examples that share a content token with the utterance. The matches of a text depend on
nothing but the text and the index, so :meth:`IntentIndex.match_text` remembers them for the
texts it saw last (a hub hears the same requests again and again).
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

__all__ = ["THRESHOLD", "CompiledIntent", "IntentIndex", "Match", "content_tokens", "normalise"]

THRESHOLD = 0.5
"""Lowest overlap score that counts as a match."""

MEMO_ENTRIES = 256
"""How many texts :meth:`IntentIndex.match_text` remembers the matches of (least recently used
forgotten first)."""

MEMO_TEXT = 200
"""Longest text (characters) whose matches are remembered."""

_NON_WORD = re.compile(r"[\W_]+")

STOP_WORDS = frozenset(
    {
        "a", "an", "the", "please", "me", "us", "to", "of", "some", "i", "you", "your", "my",
        "is", "are", "was", "be", "it", "its", "that", "just", "now", "hey", "hi", "ok", "okay",
        "could", "would", "will", "shall", "for", "on", "in", "at", "and", "or", "so", "very", "s", "t",
        "d", "ll", "re", "ve", "m",
    }
)  # fmt: skip


def normalise(text: str) -> str:
    """Lower case, punctuation as spaces, single spaces, stripped."""
    return " ".join(_NON_WORD.sub(" ", text.casefold()).split())


def content_tokens(normalised: str) -> frozenset[str]:
    """The tokens of a normalised text without stop words (all tokens if only stop words)."""
    tokens = normalised.split()
    content = frozenset(t for t in tokens if t not in STOP_WORDS)
    return content or frozenset(tokens)


@dataclass(frozen=True, slots=True)
class Match:
    """A scored candidate: ``key`` identifies the intent, ``slots`` come from regex groups."""

    key: object
    score: float
    slots: dict[str, str]


class CompiledIntent:
    """One intent's examples and patterns, prepared for repeated matching."""

    __slots__ = ("examples", "key", "patterns")

    def __init__(self, key: object, examples: Iterable[str], patterns: Iterable[str]) -> None:
        self.key = key
        self.examples = tuple(content_tokens(normalise(e)) for e in examples)
        self.patterns = tuple(re.compile(p) for p in patterns)

    def score(self, normalised: str, tokens: frozenset[str]) -> Match | None:
        """Score one normalised utterance (and its content tokens); ``None`` below threshold."""
        found = self.pattern_match(normalised)
        if found is not None:
            return found
        best = 0.0
        size = len(tokens)
        for example in self.examples:
            if not example or not size:
                continue
            common = len(example & tokens)
            if common:
                best = max(best, 2.0 * common / (len(example) + size))
        if best >= THRESHOLD:
            return Match(self.key, best, {})
        return None

    def pattern_match(self, normalised: str) -> Match | None:
        """The match of the first pattern found in ``normalised`` (score 1.0), else ``None``."""
        for pattern in self.patterns:
            found = pattern.search(normalised)
            if found is not None:
                slots = {k: v.strip() for k, v in found.groupdict().items() if isinstance(v, str)}
                return Match(self.key, 1.0, slots)
        return None


class IntentIndex:
    """Compiled intents, in order, prepared for scoring one utterance against all of them.

    :meth:`matches` gives exactly the matches :meth:`CompiledIntent.score` gives for each
    intent, in the intents' order; an example sharing no content token with the utterance
    costs nothing (an inverted index from token to examples). :class:`Match` objects it gives
    out are shared: their ``slots`` are not to be changed.
    """

    __slots__ = ("_memo", "_owners", "_patterned", "_postings", "_sizes", "intents")

    def __init__(self, intents: Sequence[CompiledIntent]) -> None:
        self.intents = tuple(intents)
        self._patterned = tuple(
            (position, compiled) for position, compiled in enumerate(self.intents) if compiled.patterns
        )
        owners: list[int] = []
        sizes: list[int] = []
        postings: dict[str, list[int]] = {}
        for position, compiled in enumerate(self.intents):
            for example in compiled.examples:
                if not example:
                    continue  # scores nothing, as in CompiledIntent.score
                for token in example:
                    postings.setdefault(token, []).append(len(owners))
                owners.append(position)
                sizes.append(len(example))
        self._owners = tuple(owners)
        self._sizes = tuple(sizes)
        self._postings = {token: tuple(ids) for token, ids in postings.items()}
        self._memo: OrderedDict[str, tuple[Match, ...]] = OrderedDict()

    def match_text(self, text: str) -> tuple[Match, ...]:
        """:meth:`matches` of the normalised ``text`` (none when it normalises to nothing);
        remembered for the last :data:`MEMO_ENTRIES` texts of up to :data:`MEMO_TEXT` characters."""
        memo = self._memo
        found = memo.get(text)
        if found is not None:
            memo.move_to_end(text)
            return found
        normalised = normalise(text)
        found = tuple(self.matches(normalised, content_tokens(normalised))) if normalised else ()
        if len(text) <= MEMO_TEXT:
            memo[text] = found
            if len(memo) > MEMO_ENTRIES:
                memo.popitem(last=False)
        return found

    def matches(self, normalised: str, tokens: frozenset[str]) -> list[Match]:
        """The match of every intent scoring at least :data:`THRESHOLD`, in the intents' order."""
        common: dict[int, int] = {}
        postings = self._postings
        for token in tokens:
            for example in postings.get(token, ()):
                common[example] = common.get(example, 0) + 1
        size = len(tokens)
        owners, sizes = self._owners, self._sizes
        best: dict[int, float] = {}
        for example, shared in common.items():
            score = 2.0 * shared / (sizes[example] + size)
            position = owners[example]
            if score > best.get(position, 0.0):
                best[position] = score
        found: dict[int, Match] = {}
        for position, compiled in self._patterned:
            hit = compiled.pattern_match(normalised)
            if hit is not None:
                found[position] = hit
        for position, score in best.items():
            if score >= THRESHOLD and position not in found:
                found[position] = Match(self.intents[position].key, score, {})
        return [found[position] for position in sorted(found)]
