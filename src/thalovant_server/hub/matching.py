"""Deterministic, fast intent matching: regex patterns first, then normalised token overlap.

Text is normalised once per utterance (lower case, punctuation to spaces, single spaces).
A regex pattern is searched in the normalised text and scores 1.0; its named groups become
slots. An example phrase scores the Dice coefficient of the content-token sets (stop words
removed). The best score at or above :data:`THRESHOLD` wins; ties go to the earlier
candidate, so the outcome depends only on the input and the skill order.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["THRESHOLD", "CompiledIntent", "Match", "content_tokens", "normalise"]

THRESHOLD = 0.5
"""Lowest overlap score that counts as a match."""

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
        for pattern in self.patterns:
            found = pattern.search(normalised)
            if found is not None:
                slots = {k: v.strip() for k, v in found.groupdict().items() if isinstance(v, str)}
                return Match(self.key, 1.0, slots)
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
